"""Numbers read out of a Trace (duck-typed: settings, steps): a setting, chosen step indices, the denoising
trajectory through latent space, final latents, and the size and place of the CFG delta at each step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .arrays import to_numpy


def trace_setting(tr: Any, name: str, default: Any = None) -> Any:
    """A value of `tr.settings` (dict or object); falls back to a plain attribute (e.g. tr.prompt)."""
    s = getattr(tr, "settings", None)
    if isinstance(s, dict) and name in s:
        return s[name]
    if s is not None and not isinstance(s, dict) and hasattr(s, name):
        return getattr(s, name)
    value = getattr(tr, name, default)
    return value if isinstance(value, (str, int, float, type(None))) else default


def pick_steps(tr: Any, steps: Sequence[int] | None, n: int) -> list[int]:
    """Step indices to show: the given ones (negative counts from the end) or `n` spread evenly over the trace."""
    from .validation import check_positive_int

    total = len(tr.steps)
    if steps is None:
        n = check_positive_int(n, "n")
        return sorted({round(x) for x in np.linspace(0, total - 1, min(n, total))})
    if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__") or len(steps) == 0:
        raise ValueError(f"steps must be None (spread n over the trace) or a non-empty list of step indices in "
                         f"0..{total - 1}, got {steps!r}")
    out = []
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not -total <= s < total:
            raise ValueError(f"steps must hold step indices in 0..{total - 1}, got {s!r}")
        out.append(int(s) % total)
    return out


def final_latents(traces: Sequence[Any]) -> np.ndarray:
    """The last latents (after the final step) of each trace, stacked: (n, c, h, w)."""
    return np.stack([to_numpy(tr.steps[-1].latents_next)[0] if to_numpy(tr.steps[-1].latents_next).ndim == 4
                     else to_numpy(tr.steps[-1].latents_next) for tr in traces])


def trajectory(tr: Any, common_scale: bool = True) -> np.ndarray:
    """One trace's path through latent space: x_t before every step, then the final latents: (steps + 1, ...).

    Samplers keep x_t in one of two conventions: DDIM/DPM++ as sqrt(abar)·x0 + sqrt(1 - abar)·noise (spread ~1),
    Euler/Heun as x0 + sigma·noise (spread ~sigma, ~15 at the start). With `common_scale` the latter are divided by
    sqrt(sigma² + 1), which is exactly what their `scale_model_input` hands the U-Net, so paths of different samplers
    start at the same noise and can share one map.
    """
    steps = list(tr.steps)
    ve = trace_setting(tr, "latent_space") == "ve"
    lat = []
    for s in steps:
        x = to_numpy(s.latents)
        lat.append(x / math.sqrt(float(s.sigma) ** 2 + 1) if (ve and common_scale) else x)
    lat.append(to_numpy(steps[-1].latents_next))  # sigma 0: both conventions agree on the final latents
    return np.stack([x[0] if x.ndim == 4 else x for x in lat])


def cfg_delta_norms(tr: Any) -> np.ndarray:
    """L2 norm of the CFG delta (cond \u2212 uncond) at every step; raises if the trace has no unconditional pass."""
    need_uncond(tr)
    return np.array([float(torch.linalg.vector_norm(s.cfg_delta.float())) for s in tr.steps])


def cfg_delta_map(tr: Any, step: int) -> np.ndarray:
    """(h, w): the CFG delta's L2 norm over latent channels at each latent position, at `step`."""
    need_uncond(tr)
    i = pick_steps(tr, [step], 1)[0]
    return to_numpy(torch.linalg.vector_norm(tr.steps[i].cfg_delta.float(), dim=0))


def need_uncond(tr: Any) -> None:
    if not getattr(tr, "has_uncond", True) or tr.steps[0].cfg_delta is None:
        raise ValueError("this trace has no CFG delta: it was made with cfg <= 1, so the pipeline made no "
                         "unconditional pass; trace again with cfg > 1")
