"""Retrain the judge's shape classifier: `python -m explainer.train --stage judge`.

A 3-layer MLP over 16x16 patches of segmented objects (rendered at random radius, colour, background and offset,
three in four degraded by blur, noise, colour shift or JPEG: `judge._training_patches`), cross-entropy, AdamW with a
cosine schedule. It writes `judge.safetensors` (the names `explainer.judge` reads: w1, b1, w2, b2, w3, b3, with the
held-out accuracy in its metadata) into --out; `--into-package` replaces the shipped one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import judge as J
from . import flags
from .common import Stage, fit

HIDDEN = 64
FILE = "judge.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--stage judge (not in all): the judge's shape classifier")
    g.add_argument("--judge-n", type=int, default=20_000, help="training patches (held-out: a tenth, at least 100)")
    g.add_argument("--judge-steps", type=int, default=4_740, help="updates of batch 256 (60 passes over 20,000)")
    g.add_argument("--judge-lr", type=float, default=3e-3)


def check_arguments(args: argparse.Namespace, error: flags.Error) -> None:
    flags.check_checkpoint(args, error, "judge")


def build_classifier() -> torch.nn.Sequential:
    side = J._PATCH * J._PATCH
    return torch.nn.Sequential(torch.nn.Linear(side, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN),
                               torch.nn.ReLU(), torch.nn.Linear(HIDDEN, len(J.SHAPES)))


class JudgeStage(Stage):
    name = "judge"

    def __init__(self, n: int, seed: int, batch: int = 256):
        self.n, self.seed, self.batch = n, seed, batch

    def setup(self, device) -> None:
        self.device = device
        x, y = J._training_patches(self.n, self.seed)
        xv, yv = J._training_patches(max(100, self.n // 10), self.seed + 1)
        self.x, self.y = torch.from_numpy(x).flatten(1), torch.from_numpy(y)
        self.xv, self.yv = torch.from_numpy(xv).flatten(1), torch.from_numpy(yv)

    def model(self):
        return build_classifier()

    def batches(self, generator):
        while True:
            idx = torch.randint(0, len(self.x), (self.batch,), generator=generator)
            yield self.x[idx], self.y[idx]

    def loss(self, batch):
        x, y = batch
        return F.cross_entropy(self.prepared(x), y), {}

    def evaluate(self, model) -> dict[str, float]:
        pred = model(self.xv.to(self.device)).argmax(1).cpu()
        return {"val_accuracy": float((pred == self.yv).float().mean())}

    def save(self, model, out: Path) -> None:
        from safetensors.torch import save_file

        acc = self.evaluate(model)["val_accuracy"]
        names = ("w1", "b1", "w2", "b2", "w3", "b3")
        params = [p.detach().cpu().contiguous() for p in model.parameters()]
        out.mkdir(parents=True, exist_ok=True)
        save_file(dict(zip(names, params, strict=True)), str(out / FILE),
                  metadata={"val_accuracy": f"{acc:.4f}", "seed": str(self.seed)})
        if (out / FILE).resolve() == J.WEIGHTS_PATH.resolve():
            J._WEIGHTS = None  # the judge reads the new weights next time


def run(args: argparse.Namespace):
    """--stage judge: fit the classifier and write judge.safetensors into --out (the package's assets with
    --into-package)."""
    out = args.out if args.out is not None else (flags.ASSETS if args.into_package else args.work / "judge-model")
    cfg = flags.fit_config(args, "judge", args.judge_steps, args.judge_lr, out, weight_decay=1e-4, grad_clip=None)
    result = fit(JudgeStage(args.judge_n, args.seed), cfg)
    print(f"saved {result.out / FILE}: held-out accuracy {result.evaluation.get('val_accuracy')}")
    return result
