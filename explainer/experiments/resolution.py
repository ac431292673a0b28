"""Lesson 11, resolution, aspect ratio and memory: latent size against image size; measured time and peak memory
against resolution; what a model trained at 32x32 draws at 64x64 and at 32x64.

How memory is measured: the process's peak resident memory (Linux VmHWM), reset just before the generation by
writing 5 to /proc/self/clear_refs, minus the resident memory at that moment. Why not tracemalloc: it only sees memory
that Python's own allocator hands out, and torch allocates tensor memory in C++ outside it (the lesson shows
tracemalloc's tiny number beside the real one). Why not ru_maxrss: it is the peak over the whole process lifetime and
cannot be reset. What the number means: memory newly made resident during the call. Memory the C allocator kept
from earlier work and reuses is not counted again, so runs go from small to large and the figure is a lower bound.
"""

from __future__ import annotations

import re
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..judge import judge, judge_against
from .guidance import generate_many

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def latent_table(pipe: Any, sizes: Sequence[tuple[int, int]] = ((32, 32), (64, 64), (32, 64), (128, 128),
                                                                  (512, 512))) -> list[dict]:
    """Image size -> latent shape, number of values, compression, and the finest attention level's token count."""
    f = int(pipe.vae_scale_factor)
    c = int(pipe.unet.config.in_channels)
    rows = []
    for h, w in sizes:
        lh, lw = h // f, w // f
        rows.append({"image": f"{h}x{w}", "pixels x 3": h * w * 3, "latent": f"{c}x{lh}x{lw}",
                     "latent values": c * lh * lw,
                     "compression": h * w * 3 / (c * lh * lw), "tokens at finest attention": lh * lw,
                     "self-attention pairs": (lh * lw) ** 2})
    return rows


def memory_supported() -> bool:
    return _STATUS.exists() and _CLEAR.exists()


def _kb(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", _STATUS.read_text()).group(1)) * 1024


def peak_memory(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run fn; return (result, seconds, peak resident memory growth in bytes; NaN where Linux /proc is missing)."""
    if not memory_supported():
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0, float("nan")
    _CLEAR.write_text("5")  # reset the peak (VmHWM) to the current resident size
    base = _kb("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    return out, dt, float(_kb("VmHWM") - base)


def tracemalloc_peak(fn: Callable[[], Any]) -> float:
    """What tracemalloc reports as the peak for the same call (bytes): Python-level allocations only."""
    tracemalloc.start()
    try:
        fn()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


@dataclass
class Cost:
    size: tuple[int, int]
    latent: tuple[int, int]
    seconds: float
    peak_bytes: float


def cost_vs_resolution(pipe: Any, sizes: Sequence[tuple[int, int]] = ((32, 32), (64, 64), (96, 96), (128, 128)),
                       steps: int = 10, prompt: str = "a red circle") -> list[Cost]:
    """Time and peak memory of one generation at each size (small to large; a tiny warm-up run first)."""
    generate_many(pipe, [prompt], [0], steps=2)  # warm-up: first-call costs should not land on the first size
    out = []
    f = int(pipe.vae_scale_factor)
    for h, w in sorted(sizes, key=lambda s: s[0] * s[1]):
        _, dt, peak = peak_memory(lambda h=h, w=w: generate_many(pipe, [prompt], [0], steps=steps, height=h, width=w))
        out.append(Cost((h, w), (h // f, w // f), dt, peak))
    return out


@dataclass
class OffSize:
    sizes: list[tuple[int, int]]
    prompts: list[str]
    adherence: dict[tuple[int, int], float]  # judged 'all' (image resized to 32x32 for the judge)
    colour: dict[tuple[int, int], float]  # judged colour right
    one_object: dict[tuple[int, int], float]  # share with exactly one object, as asked
    mean_objects: dict[tuple[int, int], float]
    images: dict[tuple[int, int], list[Any]] = field(repr=False)
    seconds: float = 0.0

OFF_SIZE_PROMPTS = ("a large red circle on the left", "a small blue square at the top",
                    "a large yellow star in the center", "a small green cross at the bottom",
                    "a large white triangle on the right", "a small orange circle on the left")


def off_size(pipe: Any, prompts: Sequence[str] = OFF_SIZE_PROMPTS,
             sizes: Sequence[tuple[int, int]] = ((32, 32), (64, 64), (32, 64)), seed: int = 0,
             steps: int = 25) -> OffSize:
    """The same one-object prompts at each size; judged after resizing to the judge's 32x32 (a 32x64 image is squeezed
    to 32x32, which distorts shapes but keeps colours and counts)."""
    t0 = time.perf_counter()
    prompts = list(prompts)
    res = OffSize(list(sizes), prompts, {}, {}, {}, {}, {})
    for h, w in sizes:
        ims = generate_many(pipe, prompts, [seed] * len(prompts), steps=steps, height=h, width=w)
        verdicts = [judge_against(im, p) for im, p in zip(ims, prompts, strict=True)]
        counts = [judge(im).count for im in ims]
        res.images[(h, w)] = ims
        res.adherence[(h, w)] = float(np.mean([bool(v["all"]) for v in verdicts]))
        res.colour[(h, w)] = float(np.mean([bool(v["color"]) for v in verdicts]))
        res.one_object[(h, w)] = float(np.mean([c == 1 for c in counts]))
        res.mean_objects[(h, w)] = float(np.mean(counts))
    res.seconds = time.perf_counter() - t0
    return res
