"""Command line: `python -m explainer explain "a red circle left of a blue square" --out DIR`.

Writes DIR/index.html, a self-contained page (every image inlined) with all panels for one prompt, for a projector
without Jupyter; each figure is also saved beside it as PNG (and the denoising as GIF).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from .schedulers import SCHEDULERS

EXIT_USAGE = 2


def _int_in(name: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number from {lo} to {hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be from {lo} to {hi}, got {value}")
        return value

    return parse


def _cfg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cfg must be a number >= 0 such as 7.5, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"cfg must be a finite number >= 0 such as 7.5, got {text!r}")
    return value


def _scheduler(text: str) -> str:
    if text.lower() not in SCHEDULERS:
        raise argparse.ArgumentTypeError(f"unknown scheduler {text!r}; choose one of: {', '.join(SCHEDULERS)}")
    return text.lower()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explainer",
        description="Open up a text-to-image diffusion model and watch every part of it work.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser(
        "explain", help="trace one prompt and write an HTML page with every panel",
        description="Trace one generation and write OUT/index.html: a self-contained page (images inlined, works "
                    "offline) with the pipeline at a glance, tokens and embeddings, the denoising filmstrip and "
                    "animations, classifier-free guidance, cross-attention, noise schedules, the U-Net's anatomy and "
                    "latent trajectories. Each figure is also written to OUT as a PNG.",
        epilog='example: python -m explainer explain "a red circle left of a blue square" --out out/red-circle '
               "--seed 3 --steps 25 --cfg 7.5 --scheduler dpm++2m",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ex.add_argument("prompt", help="what to draw, in quotes (the shipped model knows the shapes world: colours, "
                                   "shapes, sizes, positions)")
    ex.add_argument("--out", required=True, type=Path, metavar="DIR",
                    help="folder to write index.html (and the PNG/GIF files) into; created if missing")
    ex.add_argument("--seed", type=_int_in("seed", 0, 2**63 - 1), default=0,
                    help="random seed of the starting noise; the same seed gives the same image")
    ex.add_argument("--steps", type=_int_in("steps", 1, 1000), default=25, help="number of denoising steps")
    ex.add_argument("--cfg", type=_cfg, default=7.5,
                    help="classifier-free guidance scale; 1 or less turns guidance off (no CFG panels then)")
    ex.add_argument("--scheduler", type=_scheduler, default=None, metavar="NAME",
                    help=f"sampler, one of: {', '.join(SCHEDULERS)}; default: the model's own scheduler (the one "
                         "its folder ships; DPM++ 2M for the shapes model; this used to default to dpm++2m)")
    ex.add_argument("--negative-prompt", default=None, metavar="TEXT",
                    help="what to steer away from; replaces the empty prompt in the unconditional branch")
    ex.add_argument("--model", default=None, metavar="PATH",
                    help="a shipped model's name (shapes-sd, shapes-dit), a diffusers pipeline folder or a cached hub "
                         "id; default: the shipped shapes model")
    ex.add_argument("--trajectories", type=_int_in("trajectories", 0, 16), default=3, metavar="N",
                    help="extra seeds traced for the latent-trajectory map (0 skips that panel)")
    ex.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    ex.add_argument("--threads", type=_int_in("threads", 1, 256), default=None, metavar="N",
                    help="torch CPU threads (default: torch's choice)")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(explain_parser=ex)
    return parser


def _fail(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # bad flags / values: argparse prints the usage and exits with 2
    if args.command != "explain":
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    sub = args.explain_parser  # its usage line heads the errors below
    if not args.prompt.strip():
        return _fail(sub, "the prompt is empty: give a description in quotes, e.g. \"a red circle\"")
    if args.out.exists() and not args.out.is_dir():
        return _fail(sub, f"--out {str(args.out)!r} is a file; give a folder")
    from .models import SHIPPED_MODELS

    if (args.model is not None and args.model not in SHIPPED_MODELS and not Path(args.model).expanduser().exists()
            and args.model.count("/") != 1):
        return _fail(sub, f"--model {args.model!r}: no such folder (and not a hub id like 'owner/name')")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from .models import load_pipeline
    from .report import explain_to_html

    t0 = time.time()
    try:
        if not args.quiet:
            print("loading the pipeline ...", file=sys.stderr, flush=True)
        pipe = load_pipeline(args.model, device=args.device)
        page = explain_to_html(pipe, args.prompt, args.out, seed=args.seed, steps=args.steps, cfg=args.cfg,
                               scheduler=args.scheduler, negative_prompt=args.negative_prompt,
                               trajectories=args.trajectories, progress=not args.quiet)
    except (ValueError, FileNotFoundError, OSError) as err:
        return _fail(sub, str(err))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"wrote {page} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
