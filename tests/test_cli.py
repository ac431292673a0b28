"""The CLI: `python -m explainer explain PROMPT --out DIR` writes a self-contained page whose images decode."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from explainer.__main__ import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tiny_sd, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny-sd"
    tiny_sd.save_pretrained(path, safe_serialization=True)
    return path


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    explain = build_parser().parse_args(["explain", "x", "--out", "o"]).explain_parser
    for action in explain._actions:
        for flag in action.option_strings:
            assert flag in text
        if action.dest != "help":
            assert action.help and len(action.help) > 10
    assert "dpm++2m" in text and "example:" in text


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "steps must be from 1 to 1000"),
    (["--steps", "many"], "steps must be a whole number"),
    (["--cfg", "nan"], "cfg must be a finite number"),
    (["--cfg", "-1"], "cfg must be a finite number"),
    (["--seed", "-3"], "seed must be from 0"),
    (["--scheduler", "fast"], "unknown scheduler 'fast'; choose one of: ddim"),
])
def test_bad_values_exit_2_with_a_readable_message(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "a red circle", "--out", str(tmp_path)] + args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_model_and_empty_prompt(capsys, tmp_path):
    assert main(["explain", "a red circle", "--out", str(tmp_path), "--model", str(tmp_path / "nope")]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["explain", "  ", "--out", str(tmp_path)]) == 2
    assert "prompt is empty" in capsys.readouterr().err
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["explain", "a red circle", "--out", str(f)]) == 2


def test_no_traceback_in_a_real_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "explainer", "explain", "a red circle", "--out", str(tmp_path),
                        "--cfg", "inf"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "cfg must be" in r.stderr and "Traceback" not in r.stderr


def test_explain_writes_a_page_whose_images_decode(model_dir, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["explain", "a red circle left of a blue square", "--out", str(out), "--model", str(model_dir),
               "--steps", "3", "--seed", "2", "--negative-prompt", "a green star", "--trajectories", "1", "--quiet"])
    assert rc == 0
    page = out / "index.html"
    assert str(page) in capsys.readouterr().out
    html = page.read_text()
    assert "src='http" not in html and 'src="http' not in html  # self-contained
    blobs = re.findall(r"src='data:(image/(?:png|gif));base64,([A-Za-z0-9+/=]+)'", html)
    assert len(blobs) >= 15
    for mime, b64 in blobs:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            im.load()
            assert im.format == mime.split("/")[1].upper() and im.width > 10
    gifs = [b for m, b in blobs if m == "image/gif"]
    with Image.open(io.BytesIO(base64.b64decode(gifs[0]))) as im:
        assert im.n_frames == 3 + 1
    for title in ("Pipeline at a glance", "Filmstrip", "CFG delta per step", "Where each word looks",
                  "Noise schedules", "U-Net anatomy", "Trajectories"):
        assert title in html
    assert "could not be drawn" not in html
    assert "a green star" in html and "seed 2" in html
    assert (out / "filmstrip.png").exists() and (out / "denoising_x0.gif").exists()
