"""Lesson 4: noise in, picture out. Does structure come first and detail later?

`structure_then_detail` generates several one-object scenes with a trace, decodes the predicted clean image x0 at
every step, and measures two things:

* frequency bands: how far each step's decoded x0 still is from the final image, split into coarse structure (a
  4x4-pixel blur: where the blobs are and what colour) and fine detail (what the blur removes: edges and corners);
  the step at which each band's error falls below 10 % of where it started;
* judged attributes: the step from which the judge's reading of x0 (position, colour, shape of the largest object)
  no longer changes until the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import judge as J
from .. import shapes
from ..trace import trace_batch
from .latents import decode

EVAL_SEED = 10_000_000


def one_object_prompts(n: int, seed: int = EVAL_SEED + 3000) -> list[str]:
    """Canonical captions of n random one-object scenes (colour, shape, size and position all named)."""
    return [shapes.caption_for(shapes.sample_scene(seed + i, two_object_p=0.0)) for i in range(n)]


def band_errors(frames: np.ndarray, blur: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """frames (steps, h, w, 3) uint8, the last one final. Returns (coarse, fine) RMS error to the final frame per step:
    coarse = difference blurred with a blur x blur box filter; fine = the rest of the difference."""
    x = torch.from_numpy(frames.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    d = x - x[-1:]
    low = F.interpolate(F.avg_pool2d(d, blur), scale_factor=blur, mode="nearest")
    high = d - low
    rms = lambda t: t.pow(2).mean(dim=(1, 2, 3)).sqrt().numpy()  # noqa: E731
    return rms(low), rms(high)


def settle_step(curve: np.ndarray, frac: float = 0.1) -> int:
    """First step (1-based) from which the error stays below `frac` of its value at step 1."""
    thresh = frac * curve[0]
    above = np.nonzero(curve > thresh)[0]
    return int(above[-1] + 2) if len(above) else 1


def lock_step(readings: list[Any]) -> int:
    """First step (1-based) from which the reading equals the final one until the end."""
    final = readings[-1]
    k = len(readings)
    while k > 0 and readings[k - 1] == final:
        k -= 1
    return k + 1


@dataclass
class StructureResult:
    prompts: list[str]
    seeds: list[int]
    steps: int
    x0_frames: np.ndarray  # (n, steps, h, w, 3) decoded predicted x0, one row per prompt
    coarse: np.ndarray  # (n, steps) RMS error to the final image, coarse band
    fine: np.ndarray  # (n, steps) fine band
    coarse_settle: float  # mean step at which the coarse error is below 10 % of its start
    fine_settle: float
    lock: dict[str, float]  # attribute -> mean step from which the judged attribute stops changing
    lock_each: dict[str, list[int]]
    adherence: float  # share of final images the judge says follow the prompt entirely
    traces: list[Any]


def structure_then_detail(pipe: Any, n: int = 8, steps: int = 25, cfg: float = 7.5, seed: int = 0,
                          prompts: list[str] | None = None) -> StructureResult:
    prompts = prompts or one_object_prompts(n)
    seeds = [seed + i for i in range(len(prompts))]
    traces = trace_batch(pipe, prompts, seeds, steps=steps, cfg=cfg, attention=False)
    x0 = torch.stack([torch.stack([s.x0 for s in tr.steps]) for tr in traces])  # (n, S, C, h, w)
    n_, s_ = x0.shape[:2]
    decoded = decode(pipe, x0.flatten(0, 1))
    frames = decoded.reshape(n_, s_, *decoded.shape[1:])
    coarse, fine = zip(*(band_errors(f) for f in frames), strict=True)
    coarse, fine = np.stack(coarse), np.stack(fine)
    lock_each: dict[str, list[int]] = {"position": [], "colour": [], "shape": []}
    for f in frames:
        reads = [J.judge(im) for im in f]
        top = [r.objects[0] if r.objects else None for r in reads]
        lock_each["position"].append(lock_step([o.position if o else None for o in top]))
        lock_each["colour"].append(lock_step([o.color if o else None for o in top]))
        lock_each["shape"].append(lock_step([o.shape if o else None for o in top]))
    adherence = float(np.mean([bool(J.judge_against(tr.image, p)["all"]) for tr, p in zip(traces, prompts,
                                                                                              strict=True)]))
    return StructureResult(
        prompts, seeds, steps, frames, coarse, fine,
        float(np.mean([settle_step(c) for c in coarse])), float(np.mean([settle_step(c) for c in fine])),
        {k: float(np.mean(v)) for k, v in lock_each.items()}, lock_each, adherence, traces)
