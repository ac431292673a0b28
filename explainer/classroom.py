"""The classroom app: the playground notebook served by Voila as a web page with no code showing.

    python -m explainer.classroom                 # http://127.0.0.1:8866/ and opens a browser tab
    python -m explainer.classroom --port 9000 --no-browser
    python -m explainer.classroom --model path/to/stable-diffusion-folder     # any diffusers pipeline folder
    python -m explainer.classroom --model shapes-dit                         # another shipped model

The page is the playground: prompt, negative prompt, seed, CFG, steps, sampler and Generate; the image with its step
slider, a word's attention and the CFG curve; on the shipped shapes model also a control map (ControlNet: edges or
segmentation of a scene drawn from a seed, or of the last image as the judge reads it, and its scale), shown beside
the image it made, and the run's warnings as notes.

It runs the shipped shapes model on the CPU by default (no GPU needed); --model picks another (the page also has
a model menu listing the shipped models; each tab remembers its choice) and listens on this machine only
(127.0.0.1) unless --host says otherwise; to let a room of students reach it, pass --host 0.0.0.0 on a network you
trust. Every browser tab gets its own kernel, so students do not disturb each other. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "playground.ipynb"
DEFAULT_PORT = 8866


def voila_argv(notebook: str | os.PathLike = NOTEBOOK, port: int = DEFAULT_PORT, host: str = "127.0.0.1",
               open_browser: bool = True) -> list[str]:
    """The command line that serves `notebook` with Voila (what `main` runs)."""
    argv = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={host}"]
    if not open_browser:
        argv.append("--no-browser")
    return argv


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explainer.classroom",
                                description="Serve the playground (prompt, seed, CFG, steps, sampler, Generate; the "
                                            "image with its step slider, a word's attention and the CFG curve; on "
                                            "the shapes model a ControlNet control map and its scale) as a web page "
                                            "with Voila.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.add_argument("--notebook", default=str(NOTEBOOK), help="notebook to serve (default: the playground)")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="a diffusers pipeline folder or a shipped model's name (shapes-sd, shapes-dit); "
                        "default: the shipped shapes model")
    return p


def check_model(model: str | None) -> str | None:
    """None, a shipped model's name present in this install, or a folder holding a diffusers pipeline; else a
    ValueError saying which are allowed (checked before Voila starts, not in every student's tab)."""
    if model is None:
        return None
    from .models import SHIPPED_MODELS, available_models

    if model in SHIPPED_MODELS:
        if model not in available_models():
            raise ValueError(f"--model {model!r} is not in this install (available: {available_models()})")
        return model
    path = Path(model).expanduser()
    if not (path / "model_index.json").is_file():
        raise ValueError(f"--model {model!r} must be a folder holding a diffusers pipeline (model_index.json) or one "
                         f"of the shipped models {available_models()}")
    return str(path.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    if not Path(args.notebook).is_file():
        parser.error(f"{args.notebook} not found (the classroom app runs from a source checkout of explainer)")
    if importlib.util.find_spec("voila") is None:
        parser.error("Voila is not installed: pip install -e '.[classroom]'")
    try:
        model = check_model(args.model)
    except ValueError as err:
        parser.error(str(err))
    if model is not None:
        os.environ["EXPLAINER_MODEL"] = model  # every kernel Voila starts inherits it: playground() loads it
    cmd = voila_argv(args.notebook, args.port, args.host, open_browser=not args.no_browser)
    print(f"Serving the playground at http://{args.host}:{args.port}/ with {model or 'the shipped shapes model'} "
          "(Ctrl-C to stop)", flush=True)
    os.execv(cmd[0], cmd)  # voila replaces this process: Ctrl-C and signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
