"""Lesson 8, negative prompts: the unconditional branch, replaced. Shown on a trace's recorded embeddings and
predictions, and measured as judged frequencies (of the background, or the object's colour or size) over many seeds
with and without the negative prompt."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..judge import judge, judge_against
from ..shapes import BACKGROUNDS, COLORS, SIZES
from .guidance import generate_many


@dataclass
class WhatNegativeIs:
    prompt: str
    negative: str
    negative_tokens: list[str]  # what the trace recorded for the unconditional branch
    plain_uncond_tokens: list[str]  # the same without a negative prompt: the empty prompt ""
    uncond_vs_negative_encoding: float  # max |recorded uncond embeddings - encode(negative)|
    uncond_vs_empty_encoding: float  # max |recorded uncond embeddings (no negative) - encode("")|
    cond_same: float  # max |cond embeddings with - without negative|: the prompt's side does not change
    formula_error: float  # max |neg + cfg (cond - neg) - guided| over all steps
    moved_away: float  # mean cosine between (guided - cond) and (cond - neg): +1 = straight away from the negative


def _encode(pipe: Any, text: str) -> torch.Tensor:
    with torch.no_grad():
        emb, _ = pipe.encode_prompt(text, pipe.device, 1, False)
    return emb[0]


def what_negative_is(pipe: Any, prompt: str = "a large red circle in the center", negative: str = "brown background",
                     seed: int = 0, steps: int = 25, cfg: float = 7.5) -> tuple[WhatNegativeIs, Any, Any]:
    """Trace the prompt with and without the negative prompt; compare the recorded unconditional branch with the
    text encoder's output for the negative prompt (and for "") and check the guidance formula. Returns
    (numbers, trace with negative, trace without)."""
    from ..trace import trace

    with_neg = trace(pipe, prompt, seed=seed, steps=steps, cfg=cfg, negative_prompt=negative, attention=False)
    plain = trace(pipe, prompt, seed=seed, steps=steps, cfg=cfg, attention=False)
    enc = next(iter(with_neg.text_embeddings))
    e_neg = with_neg.text_embeddings[enc]
    e_plain = plain.text_embeddings[enc]
    err, cos = 0.0, []
    for st in with_neg.steps:
        g = st.noise_uncond.double() + cfg * (st.noise_cond.double() - st.noise_uncond.double())
        err = max(err, float((g - st.noise_guided.double()).abs().max()))
        push = (st.noise_guided - st.noise_cond).flatten().double()
        away = (st.noise_cond - st.noise_uncond).flatten().double()
        cos.append(float(push @ away / (push.norm() * away.norm()).clamp_min(1e-12)))
    res = WhatNegativeIs(
        prompt, negative, [str(t) for t in with_neg.negative_tokens], [str(t) for t in plain.negative_tokens],
        float((e_neg["uncond"] - _encode(pipe, negative)).abs().max()),
        float((e_plain["uncond"] - _encode(pipe, "")).abs().max()),
        float((e_neg["cond"] - e_plain["cond"]).abs().max()), err, float(np.mean(cos)))
    return res, with_neg, plain


#: what the judge reads, per attribute a negative prompt can push away from: attribute -> its possible values
ATTRIBUTES: dict[str, tuple[str, ...]] = {"background": tuple(BACKGROUNDS), "color": tuple(COLORS) + ("none",),
                                          "size": SIZES + ("none",)}


@dataclass
class NegativeEffect:
    prompt: str
    negative: str
    attribute: str  # what the judge reads in each image: "background", "color" or "size" (of the main object)
    target: str  # the value of `attribute` the negative prompt names, e.g. "brown"
    seeds: list[int]
    judged_without: dict[str, int]  # judged value of `attribute` -> count ("none" when no object was found)
    judged_with: dict[str, int]
    asked_kept_without: float  # share of images that still match the prompt (judge_against 'all')
    asked_kept_with: float
    images_without: list[Any] = field(repr=False)
    images_with: list[Any] = field(repr=False)
    steps: int = 25
    cfg: float = 7.5
    scheduler: str = "dpm++2m"
    seconds: float = 0.0

    @property
    def values(self) -> tuple[str, ...]:
        """Every value the judge can read for `attribute` ("none": no object found)."""
        return ATTRIBUTES[self.attribute]

    def share(self, value: str, with_negative: bool) -> float:
        c = self.judged_with if with_negative else self.judged_without
        return c.get(value, 0) / len(self.seeds)


def judged(image: Any, attribute: str) -> str:
    """The judge's reading of `attribute` in one image: the background, or the main object's colour or size."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {sorted(ATTRIBUTES)}, got {attribute!r}")
    j = judge(image)
    if attribute == "background":
        return j.background
    return getattr(j.objects[0], attribute) if j.objects else "none"


def _target(negative: str, attribute: str) -> str:
    hits = [w for w in negative.lower().split() if w in ATTRIBUTES[attribute] and w != "none"]
    if not hits:
        raise ValueError(f"the negative prompt {negative!r} names no {attribute} ({', '.join(ATTRIBUTES[attribute])})")
    return hits[0]


def negative_effect(pipe: Any, prompt: str = "a large red circle in the center", negative: str = "brown background",
                    attribute: str = "background", seeds: Sequence[int] = range(24), cfg: float = 7.5,
                    steps: int = 25, scheduler: str = "dpm++2m") -> NegativeEffect:
    """Generate the prompt for every seed with and without the negative prompt; judge `attribute` each time (the
    background, or the main object's colour or size). The negative prompt must name one value of it ("brown
    background"): that is the `target` it should push away from."""
    target = _target(negative, attribute)
    t0 = time.perf_counter()
    seeds = list(seeds)
    ps = [prompt] * len(seeds)
    without = generate_many(pipe, ps, seeds, cfg=cfg, steps=steps, scheduler=scheduler)
    with_neg = generate_many(pipe, ps, seeds, cfg=cfg, steps=steps, scheduler=scheduler, negative_prompt=negative)

    def kept(ims: list[Any]) -> float:
        return float(np.mean([bool(judge_against(im, prompt)["all"]) for im in ims]))

    return NegativeEffect(prompt, negative, attribute, target, seeds,
                          dict(Counter(judged(i, attribute) for i in without)),
                          dict(Counter(judged(i, attribute) for i in with_neg)), kept(without), kept(with_neg),
                          without, with_neg, steps, cfg, scheduler, time.perf_counter() - t0)
