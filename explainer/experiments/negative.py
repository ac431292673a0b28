"""Lesson 8, negative prompts: the unconditional branch, replaced. Shown on a trace's recorded embeddings and
predictions, and measured as judged colour frequencies over many seeds with and without the negative prompt."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..judge import judge, judge_against
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


def what_negative_is(pipe: Any, prompt: str = "a circle", negative: str = "red", seed: int = 0,
                     steps: int = 25, cfg: float = 7.5) -> tuple[WhatNegativeIs, Any, Any]:
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


@dataclass
class NegativeEffect:
    prompt: str
    negative: str
    seeds: list[int]
    colours_without: dict[str, int]  # judged colour of the main object -> count ("none" when nothing found)
    colours_with: dict[str, int]
    asked_kept_without: float  # share of images that still match the prompt (judge_against 'all')
    asked_kept_with: float
    images_without: list[Any] = field(repr=False)
    images_with: list[Any] = field(repr=False)
    seconds: float = 0.0

    def share(self, colour: str, with_negative: bool) -> float:
        c = self.colours_with if with_negative else self.colours_without
        return c.get(colour, 0) / len(self.seeds)

def _colour(image: Any) -> str:
    j = judge(image)
    return j.objects[0].color if j.objects else "none"


def negative_effect(pipe: Any, prompt: str = "a circle", negative: str = "red", seeds: Sequence[int] = range(24),
                    cfg: float = 7.5, steps: int = 25) -> NegativeEffect:
    """Generate the prompt for every seed with and without the negative prompt; judge the colour each time."""
    t0 = time.perf_counter()
    seeds = list(seeds)
    ps = [prompt] * len(seeds)
    without = generate_many(pipe, ps, seeds, cfg=cfg, steps=steps)
    with_neg = generate_many(pipe, ps, seeds, cfg=cfg, steps=steps, negative_prompt=negative)

    def kept(ims: list[Any]) -> float:
        return float(np.mean([bool(judge_against(im, prompt)["all"]) for im in ims]))

    return NegativeEffect(prompt, negative, seeds, dict(Counter(_colour(i) for i in without)),
                          dict(Counter(_colour(i) for i in with_neg)), kept(without), kept(with_neg), without,
                          with_neg, time.perf_counter() - t0)
