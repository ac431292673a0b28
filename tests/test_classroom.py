"""The classroom app's entry point (fast; the app itself is driven in a real browser in test_browser.py)."""

import subprocess
import sys

import pytest

from explainer import classroom


def test_voila_command_serves_the_playground_on_loopback():
    argv = classroom.voila_argv(port=9001, open_browser=False)
    assert argv[:3] == [sys.executable, "-m", "voila"]
    assert argv[3].endswith("notebooks/playground.ipynb")
    assert "--port=9001" in argv and "--Voila.ip=127.0.0.1" in argv and "--no-browser" in argv
    assert classroom.NOTEBOOK.is_file()


@pytest.mark.parametrize("args, words", [(["--port", "0"], "--port must be"),
                                         (["--notebook", "nope.ipynb"], "not found")])
def test_bad_arguments_give_a_readable_message(args, words, capsys):
    with pytest.raises(SystemExit) as e:
        classroom.main(args)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_help_documents_every_flag():
    out = subprocess.run([sys.executable, "-m", "explainer.classroom", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--port", "--host", "--no-browser", "--notebook"):
        assert flag in out
