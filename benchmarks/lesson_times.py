"""Seconds each lesson notebook takes to run headless, top to bottom, against the 90 s budget (issues #5, #6).

    python benchmarks/lesson_times.py                    # every notebook in notebooks/
    python benchmarks/lesson_times.py 05_how_it_learned  # some of them

Each notebook runs in a fresh kernel (kernel start, imports and model load included), as a learner's "Run All" does.
Run it on an otherwise idle machine: on 2 cores a second busy process doubles the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 90.0


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="notebook stems (default: all)")
    p.add_argument("--json", type=Path, default=None, help="also write {name: seconds} here")
    args = p.parse_args()
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        paths = [q for q in paths if q.stem in args.names]
    print(f"{os.cpu_count()} CPUs; budget {BUDGET_S:.0f} s per lesson")
    times = {}
    for q in paths:
        times[q.stem] = s = run(q)
        verdict = "ok" if s <= BUDGET_S else "OVER"
        print(f"{q.stem:<24} {s:6.1f} s   {s / BUDGET_S:4.2f} of budget   {verdict}", flush=True)
    print(f"{'total':<24} {sum(times.values()):6.1f} s; over budget: {[k for k, v in times.items() if v > BUDGET_S]}")
    if args.json:
        args.json.write_text(json.dumps(times, indent=1))


if __name__ == "__main__":
    main()
