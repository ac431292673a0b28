"""Flags every training stage shares, their checks, and the step from flags to a `FitConfig`.

Every check runs before any data is rendered or model loaded; each error names its flag and the allowed range.
Training writes into the package's own assets (the shipped models) only with `--into-package`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import torch

from .. import validation as V
from ..shapes import EVAL_SEED
from .common import FitConfig

ASSETS = Path(__file__).resolve().parents[1] / "assets"
COUNTS = ("_steps", "_every", "_n", "_layers", "_heads", "_dim")  # integer flags that must be >= 1
RATES = ("_lr", "_mult")  # float flags that must be finite and > 0
Error = Callable[[str], NoReturn]


def add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("every stage")
    g.add_argument("--work", type=Path, default=Path("runs/train"),
                   help="scratch folder: checkpoints, log.jsonl and intermediate parts of each stage")
    g.add_argument("--out", type=Path, default=None,
                   help="where the finished model is written (default: a folder under --work, or with --into-package "
                        "the shipped folder)")
    g.add_argument("--into-package", action="store_true",
                   help="allow writing into explainer/assets (replaces a shipped model); off by default")
    g.add_argument("--resume", action="store_true",
                   help="continue the checkpoint a stage left under --work (without it an existing checkpoint is an "
                        "error, never silently reused)")
    g.add_argument("--max-minutes", type=float, default=None,
                   help="the stop clock: each stage checkpoints, evaluates and saves once it has run this long")
    g.add_argument("--stop-at", type=int, default=None,
                   help="stop after this update of the stage's --*-steps schedule (checkpoint, evaluate, save); "
                        "--resume without it continues the same schedule")
    g.add_argument("--ema", type=float, default=None,
                   help="EMA decay of the trained weights, in [0, 1); 0 = no EMA (default: the stage's recipe)")
    g.add_argument("--data-seed", type=int, default=0, help="first scene seed of the training data")
    g.add_argument("--two-object-p", type=float, default=0.5, help="share of two-object scenes in the training data")
    g.add_argument("--cond-dropout", type=float, default=0.1,
                   help="share of empty captions (unet, controlnet, dit), in [0, 1]")
    g.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--log-every", type=int, default=50, help="log (and sync with the device) every N updates")
    g.add_argument("--checkpoint-every", type=int, default=250, help="write a resumable checkpoint every N updates")


def checked(error: Error, args: argparse.Namespace, name: str, check: Callable, *limits, **kw) -> None:
    """Check flag `name` (unless None) with a function of the one validation path (`explainer.validation`); its
    ValueError becomes the parser's error, naming --flag."""
    value = getattr(args, name)
    if value is None:
        return
    try:
        check(value, "--" + name.replace("_", "-"), *limits, **kw)
    except ValueError as e:
        error(str(e))


def _inside_assets(path: Path) -> bool:
    try:
        path.resolve().relative_to(ASSETS)
        return True
    except ValueError:
        return False


def check_counts(args: argparse.Namespace, error: Error) -> None:
    """Every stage's counts and rates by their names: *_images and *_batch from 1 to EVAL_SEED (training scenes stay
    below the evaluation seeds); *_steps, *_every, ... from 1; *_lr and *_mult finite and > 0 (--text-lr >= 0)."""
    for name in vars(args):
        if name.endswith(("_images", "_batch")):
            checked(error, args, name, V.check_positive_int, EVAL_SEED)
        elif name.endswith(COUNTS):
            checked(error, args, name, V.check_positive_int)
        elif name == "text_lr":  # 0 = the text encoder frozen (as Stable Diffusion 1.x trains)
            checked(error, args, name, V.check_number, 0)
        elif name.endswith(RATES):
            checked(error, args, name, V.check_number, 0, low_open=True)


def check_common(args: argparse.Namespace, error: Error) -> None:
    """The shared flags, before any heavy work."""
    check_counts(args, error)
    for name in ("threads", "log_every", "checkpoint_every"):
        checked(error, args, name, V.check_positive_int)
    for name in ("seed", "data_seed"):
        checked(error, args, name, V.check_seed)
    checked(error, args, "ema", V.check_number, 0, 1, high_open=True)  # [0, 1): 1 would never move the average
    for name in ("cond_dropout", "two_object_p"):
        checked(error, args, name, V.check_number, 0, 1)
    checked(error, args, "max_minutes", V.check_number, 0, low_open=True)
    checked(error, args, "stop_at", V.check_positive_int)
    device = str(args.device)
    if device not in ("cpu", "cuda", "mps"):
        error(f"--device must be cpu, cuda or mps, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        error("--device cuda: this PyTorch sees no CUDA GPU (torch.cuda.is_available() is False); use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        error("--device mps: this machine has no MPS (Apple GPU) backend; use --device cpu")
    for name in ("work", "out"):
        path = getattr(args, name)
        if path is not None and path.exists() and not path.is_dir():
            error(f"--{name} must be a folder, got an existing file {path}")
    if _inside_assets(args.work):
        error(f"--work must be outside the package's assets ({ASSETS}), got {args.work}")
    if args.out is not None and _inside_assets(args.out) and not args.into_package:
        error(f"--out {args.out} is inside the package's assets ({ASSETS}): pass --into-package to replace a "
              "shipped model, or choose another --out")


def out_folder(args: argparse.Namespace, product: str) -> Path:
    """Where a stage's finished model goes: --out, else the shipped folder with --into-package, else --work/product."""
    if args.out is not None:
        return args.out
    return ASSETS / product if args.into_package else args.work / product


def check_checkpoint(args: argparse.Namespace, error: Error, run: str) -> None:
    """An existing checkpoint under --work is continued only when asked to (--resume)."""
    ckpt = args.work / run / "checkpoint"
    if ckpt.exists() and not args.resume:
        error(f"--work {args.work} already holds a checkpoint of {run!r} ({ckpt}): pass --resume to continue it, "
              "or choose another --work")


def fit_config(args: argparse.Namespace, run: str, steps: int, lr: float, out: Path, ema: float | None = None,
               **kw) -> FitConfig:
    """The FitConfig of stage `run` from the shared flags; `ema` is the stage's recipe unless --ema overrides it."""
    decay = ema if args.ema is None else args.ema
    stop = args.stop_at if args.stop_at is not None and args.stop_at < steps else None  # a shorter schedule just ends
    return FitConfig(steps=steps, lr=lr, run_dir=args.work / run, out=out, ema_decay=decay or None, stop_at=stop,
                     max_minutes=args.max_minutes, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                     seed=args.seed, device=args.device, **kw)
