"""Lesson 11, resolution, aspect ratio and memory: latent size against image size (read from the pipeline's config);
measured time and peak memory against resolution. What the scenes model draws at sizes it never saw is
`scenes_resolution`.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .guidance import generate_many

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def attention_divisor(pipe: Any) -> int | None:
    """How many times the U-Net has halved the latent before its first (finest) attention block: 2 ** the index of
    the first down block with attention (None: a U-Net without attention, or a denoiser without down blocks)."""
    kinds = list(getattr(pipe.unet.config, "down_block_types", None) or [])
    first = next((k for k, b in enumerate(kinds) if "Attn" in b), None)
    return None if first is None else 2 ** first


def latent_table(pipe: Any, sizes: Sequence[tuple[int, int]] = ((64, 64), (64, 128), (128, 128), (256, 256),
                                                                  (512, 512))) -> list[dict]:
    """Image size (h, w) -> latent shape (channels from the U-Net's config), number of values, compression, and the
    finest attention level's positions and self-attention pairs."""
    f = int(pipe.vae_scale_factor)
    c = int(pipe.unet.config.in_channels)
    a = attention_divisor(pipe)
    rows = []
    for h, w in sizes:
        lh, lw = h // f, w // f
        tokens = (lh // a) * (lw // a) if a else 0
        rows.append({"image": f"{h}x{w}", "pixels x 3": h * w * 3, "latent": f"{c}x{lh}x{lw}",
                     "latent values": c * lh * lw, "compression": h * w * 3 / (c * lh * lw),
                     "latent positions": lh * lw, "tokens at finest attention": tokens,
                     "self-attention pairs": tokens ** 2})
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
    steps: int = 0  # the settings of the timed call (0: not recorded)
    cfg: float = 7.5
    scheduler: str = "dpm++2m"
    device: str = "cpu"


def cost_vs_resolution(pipe: Any, sizes: Sequence[tuple[int, int]] = ((32, 32), (64, 64), (96, 96), (128, 128)),
                       steps: int = 10, prompt: str = "a red circle", cfg: float = 7.5,
                       scheduler: str = "dpm++2m") -> list[Cost]:
    """Time and peak memory of one generation at each size (small to large; a tiny warm-up run first)."""
    generate_many(pipe, [prompt], [0], steps=2)  # warm-up: first-call costs should not land on the first size
    out = []
    f = int(pipe.vae_scale_factor)
    for h, w in sorted(sizes, key=lambda s: s[0] * s[1]):
        _, dt, peak = peak_memory(lambda h=h, w=w: generate_many(pipe, [prompt], [0], cfg=cfg, steps=steps,
                                                                 scheduler=scheduler, height=h, width=w))
        out.append(Cost((h, w), (h // f, w // f), dt, peak, steps, cfg, scheduler,
                        str(getattr(pipe, "device", "cpu")).split(":")[0]))
    return out
