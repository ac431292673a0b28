"""The classroom app: the playground notebook served by Voila as a web page with no code showing.

    python -m explainer.classroom                 # http://127.0.0.1:8866/ and opens a browser tab
    python -m explainer.classroom --port 9000 --no-browser

It runs the shipped model on the CPU (no GPU needed) and listens on this machine only (127.0.0.1) unless
--host says otherwise; to let a room of students reach it, pass --host 0.0.0.0 on a network you trust.
Every browser tab gets its own kernel, so students do not disturb each other. Stop it with Ctrl-C.
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
                                            "image with its step slider, a word's attention and the CFG curve) as a "
                                            "web page with Voila.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.add_argument("--notebook", default=str(NOTEBOOK), help="notebook to serve (default: the playground)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    if not Path(args.notebook).is_file():
        parser.error(f"{args.notebook} not found (the classroom app runs from a source checkout of explainer)")
    if importlib.util.find_spec("voila") is None:
        parser.error("Voila is not installed: pip install -e '.[classroom]'")
    cmd = voila_argv(args.notebook, args.port, args.host, open_browser=not args.no_browser)
    print(f"Serving the playground at http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    os.execv(cmd[0], cmd)  # voila replaces this process: Ctrl-C and signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
