"""The classroom app's entry point (fast), and the page it serves built headless (the app itself is driven in a real
browser in test_browser.py)."""

import ast
import json
import subprocess
import sys

import numpy as np
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


def _served_page():
    """What the served notebook's code cells build (the value of the last cell's last line), run as Voila runs it."""
    nb = json.loads(classroom.NOTEBOOK.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    tree = ast.parse(code)
    last = tree.body.pop()
    assert isinstance(last, ast.Expr), "the notebook should end with the widget as its last line"
    env: dict = {}
    exec(compile(tree, str(classroom.NOTEBOOK), "exec"), env)
    return eval(compile(ast.Expression(last.value), str(classroom.NOTEBOOK), "eval"), env)


def test_the_served_page_offers_a_control_map_and_it_works(monkeypatch, shipped_pipe):
    from explainer import shapes
    from explainer import widgets as wd
    from explainer.models import CONTROLNETS

    if not (CONTROLNETS["edges"] / "config.json").exists():
        pytest.skip("the shipped edges ControlNet is not there yet")
    monkeypatch.delenv("EXPLAINER_MODEL", raising=False)
    from explainer import models

    monkeypatch.delenv("EXPLAINER_WORKER", raising=False)  # this test builds the page in-process
    monkeypatch.setattr(models, "_SESSION", {"pipes": {"shapes-sd": shipped_pipe}})  # a fresh tab, the model loaded
    pg = _served_page()
    assert isinstance(pg, wd.Playground) and pg.pipe is shipped_pipe
    assert pg.control_panel.layout.display is None and pg.control.value is None  # offered, off until chosen
    pg.steps.value = 4
    pg.control.value = "edges"
    pg.run()
    assert pg.message.value == "" and pg.status.value.startswith("done")
    assert pg.trace.settings["model_id"] == "explainer/shapes-sd+controlnet-edges"
    assert pg.control_used_box.layout.display is None
    used = np.asarray(pg.trace._t["control.image"])
    assert np.array_equal(used, np.asarray(shapes.render_edges(shapes.sample_scene(wd.CONTROL_SCENE_SEED))))
