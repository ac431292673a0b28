"""Inside the U-Net: what a position looks at. The self-attention probe and its layers (lesson 6 reads them on the
scenes model in `scenes_attention`), and two read-outs of a trace.

* `record_self_attention` / `self_attention_layers`: self-attention probabilities of one layer, recorded with a small
  attention processor that leaves the layer's output untouched.
* `self_attention_at`: on the shapes model, where the judge knows each object's exact disc, the map of one query
  position (the centre of the first named object) and its shares on its own object, the other one and far away.
* `text_effect_per_step`: how much the text changes the U-Net's prediction at each step, ||eps_cond - eps_uncond|| /
  ||eps_uncond||, from a trace; `text_push_per_step`: the same as a change in the predicted x0.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import judge as J
from .. import shapes
from ..generation import run_pipeline
from ..probes import SelfAttentionProbe


# ------------------------------------------------------------------------------------------- self-attention
@contextmanager
def record_self_attention(unet: Any, layer: str, n: int):
    """Install the probe on `layer` (a module name inside the U-Net, e.g.
    'up_blocks.2.attentions.0.transformer_blocks.0.attn1'); restore the original processor afterwards."""
    attn = unet.get_submodule(layer)
    original = attn.processor
    probe = SelfAttentionProbe(original, n)
    attn.set_processor(probe)
    try:
        yield probe
    finally:
        attn.set_processor(original)


def self_attention_layers(unet: Any) -> list[str]:
    """Names of the U-Net's self-attention layers (attn1 of every transformer block)."""
    return [name for name, _ in unet.named_modules() if name.endswith("attn1")]


@dataclass
class SelfAttention:
    prompt: str
    seed: int
    layer: str
    size: tuple[int, int]  # (h, w) of the layer's grid
    query: tuple[int, int]  # (row, col) of the query position
    maps: torch.Tensor  # (steps, h, w): attention of the query position over every position, per step
    image: Any
    own_object_share: float  # attention mass (mean over steps) on positions covered by the query's object
    own_object_area: float  # share of positions covered by that object (what uniform attention would give)
    other_object_share: float
    other_object_area: float
    far_share: float  # mass more than 2 positions away from the query (Chebyshev distance)
    uniform_far_share: float = float("nan")  # what a uniform map gives: the share of positions more than 2 away


def _object_mask(obj: Any, h: int, w: int, grow: float = 1.0) -> torch.Tensor:
    """Positions of an (h, w) grid whose cell centre lies within the judged object's radius (plus `grow` pixels)."""
    r = (obj.area / np.pi) ** 0.5 + grow
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) * shapes.IMAGE_SIZE / h,
                            (torch.arange(w) + 0.5) * shapes.IMAGE_SIZE / w, indexing="ij")
    return ((xs - obj.x) ** 2 + (ys - obj.y) ** 2).sqrt() <= r


def self_attention_at(pipe: Any, prompt: str = "a red circle left of a blue square", seed: int = 0, steps: int = 20,
                      cfg: float = 7.5, layer: str | None = None,
                      query: tuple[int, int] | None = None) -> SelfAttention:
    """Self-attention of one layer at one query position. query None: the position at the centre of the first named
    object (as the judge finds it in the final image)."""
    unet = pipe.unet
    layer = layer or self_attention_layers(unet)[0]
    with record_self_attention(unet, layer, 1) as probe:
        image = run_pipeline(pipe, prompt, seed, steps, cfg)[0]
    probs = torch.stack([c[0] for c in probe.calls])  # (calls, N, N)
    npos = probs.shape[-1]
    h = w = int(round(npos ** 0.5))
    spec = J.parse_prompt(prompt)
    j = J.judge(image)
    first = j.find(color=spec.objects[0].color) if spec.objects else None
    second = j.find(color=spec.objects[1].color) if len(spec.objects) > 1 else None
    if query is None:
        if first is None:
            query = (h // 2, w // 2)
        else:
            query = (min(h - 1, int(first.y * h / shapes.IMAGE_SIZE)), min(w - 1, int(first.x * w / shapes.IMAGE_SIZE)))
    qi = query[0] * w + query[1]
    maps = probs[:, qi, :].reshape(-1, h, w)
    mean = maps.mean(0)
    own = _object_mask(first, h, w) if first is not None else torch.zeros(h, w, dtype=torch.bool)
    other = _object_mask(second, h, w) if second is not None else torch.zeros(h, w, dtype=torch.bool)
    other &= ~own
    rr, cc = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    far = torch.maximum((rr - query[0]).abs(), (cc - query[1]).abs()) > 2
    return SelfAttention(prompt, seed, layer, (h, w), query, maps, image, float(mean[own].sum()),
                         float(own.float().mean()), float(mean[other].sum()), float(other.float().mean()),
                         float(mean[far].sum()), float(far.float().mean()))


# ------------------------------------------------------------------------------------------- conditioning
def text_effect_per_step(tr: Any) -> np.ndarray:
    """||eps_cond - eps_uncond|| / ||eps_uncond|| at every step of a trace made with cfg > 1."""
    return np.array([float(s.cfg_delta.norm() / s.noise_uncond.norm()) for s in tr.steps])


def text_push_per_step(tr: Any) -> np.ndarray:
    """How far the text moves the clean-image estimate at each step: sigma_i * ||eps_cond - eps_uncond|| (the change
    in predicted x0 that the prompt causes), normalised to sum to 1 over the steps."""
    v = np.array([float(s.sigma) * float(s.cfg_delta.norm()) for s in tr.steps])
    return v / v.sum()
