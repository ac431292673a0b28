"""Lesson 2 on the scenes world: words become numbers.

* `causal_prefix`: two prompts' embedding tables, position by position; CLIP's text encoder is causal, so the
  positions before the first different token are the same numbers in both.
* `wording_variants` / `wording_similarity`: how far the text embedding moves, prompt by prompt, when the wording
  changes but not the meaning (a synonym), when one word of meaning changes (the thing, the ground, the light), and
  for an unrelated scene.
* `meaning_map`: the end-token vectors of many unseen captions; do a caption's nearest neighbours share its thing,
  ground or light (leave-one-out k-nearest-neighbour agreement against chance)?
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..text import cosine_similarity, prompt_embeddings
from ..worlds import scenes
from ..worlds.scenes import EVAL_SEED
from .words import knn_accuracy

CHANGES = ("same meaning (synonym)", "other thing", "other ground", "other light", "unrelated scene")


@dataclass
class Prefix:
    """Two prompts' embedding tables compared position by position (up to the shorter prompt's end token)."""

    prompts: tuple[str, str]
    tokens: tuple[list[str], list[str]]
    first_different: int  # the first position whose token differs
    cosine: list[float]  # per position, cosine similarity of the two token vectors
    max_abs_before: float  # largest |difference| over the positions before `first_different`


def causal_prefix(pipe: Any, a: str, b: str) -> Prefix:
    """Compare the token vectors of prompts `a` and `b` at each position both hold a real token."""
    emb = prompt_embeddings(pipe, [a, b])
    ta, tb = emb["tokens"][0][:emb["n_real"][0]], emb["tokens"][1][:emb["n_real"][1]]
    n = min(len(ta), len(tb))
    first = next((i for i in range(n) if ta[i] != tb[i]), n)
    ha, hb = emb["hidden"][0, :n].astype(np.float64), emb["hidden"][1, :n].astype(np.float64)
    cos = [float(cosine_similarity(ha[i:i + 1], hb[i:i + 1])[0, 0]) for i in range(n)]
    before = float(np.abs(ha[:first] - hb[:first]).max()) if first else 0.0
    return Prefix((a, b), (ta, tb), first, cos, before)


def _caption(thing: str, size: str, ground: str, sky: str, size_word: str | None = None,
             ground_phrase: str | None = None, sky_phrase: str | None = None) -> str:
    word = size_word or size
    name = scenes.NAMES[thing][0]
    return (f"{'an' if word[0] in 'aeiou' else 'a'} {word} {name} {ground_phrase or scenes.GROUND_PHRASES[ground][0]} "
            f"{sky_phrase or scenes.SKY_PHRASES[sky][0]}")


def _other(options: tuple[str, ...], not_this: str, rng: random.Random) -> str:
    return rng.choice([o for o in options if o != not_this])


def wording_variants(n: int = 40, seed: int = EVAL_SEED) -> dict[str, list[tuple[str, str]]]:
    """`n` base prompts ("a large cat on the grass at dusk"), each paired with a synonym wording ("a big cat in the
    grass at sunset": other words, same meaning), with one word of meaning changed (the thing, the ground, the light)
    and with an unrelated scene (another thing on another ground under another light). Base prompts are drawn from
    `seed` on (evaluation seeds: never in training)."""
    rng = random.Random(seed)
    groups: dict[str, list[tuple[str, str]]] = {k: [] for k in CHANGES}
    grounds = scenes.GROUNDS[:4]  # the sea only carries boats and fish
    for _ in range(n):
        thing, size = rng.choice(scenes.GROUND_THINGS), rng.choice(scenes.SIZES)
        ground, sky = rng.choice(grounds), rng.choice(scenes.SKIES)
        base = _caption(thing, size, ground, sky)
        syn_sky = scenes.SKY_PHRASES[sky][1:]
        groups["same meaning (synonym)"].append((base, _caption(
            thing, size, ground, sky, size_word=scenes.SIZE_WORDS[size][1],
            ground_phrase=rng.choice(scenes.GROUND_PHRASES[ground][1:]),
            sky_phrase=rng.choice(syn_sky) if syn_sky else None)))
        groups["other thing"].append((base, _caption(_other(scenes.GROUND_THINGS, thing, rng), size, ground, sky)))
        groups["other ground"].append((base, _caption(thing, size, _other(grounds, ground, rng), sky)))
        groups["other light"].append((base, _caption(thing, size, ground, _other(scenes.SKIES, sky, rng))))
        groups["unrelated scene"].append((base, _caption(_other(scenes.GROUND_THINGS, thing, rng), size,
                                                         _other(grounds, ground, rng), _other(scenes.SKIES, sky, rng))))
    return groups


def wording_similarity(pipe: Any, n: int = 40, seed: int = EVAL_SEED, kind: str = "tokens") -> dict[str, np.ndarray]:
    """Per group of `wording_variants`, the cosine similarity of each pair's text embeddings (one value per base
    prompt, in the same order in every group, so groups can be compared prompt by prompt).

    kind: "tokens" (the full token x dimension table the U-Net reads, padding included) or "pooled" (one vector).
    """
    if kind not in ("tokens", "pooled"):
        raise ValueError(f"kind must be 'tokens' or 'pooled', got {kind!r}")
    out = {}
    for name, pairs in wording_variants(n, seed).items():
        emb = prompt_embeddings(pipe, [p for pair in pairs for p in pair])
        x = emb["hidden"] if kind == "tokens" else emb["pooled"]
        a, b = x[0::2].reshape(len(pairs), -1), x[1::2].reshape(len(pairs), -1)
        out[name] = cosine_similarity(a, b).diagonal().copy()
    return out


@dataclass
class MeaningMap:
    prompts: list[str]
    labels: dict[str, list[str]]  # attribute -> label per prompt
    embeddings: np.ndarray  # (n, D) sentence vectors
    knn_accuracy: dict[str, float]  # attribute -> leave-one-out k-NN agreement
    chance: dict[str, float]  # attribute -> share of the commonest label


def end_token_vectors(pipe: Any, prompts: list[str]) -> np.ndarray:
    """Each prompt's vector at its end token (n, D): the one position that has seen every word (the encoder is
    causal), the sentence vector CLIP is meant to compare."""
    emb = prompt_embeddings(pipe, prompts)
    return np.stack([emb["hidden"][i, n - 1] for i, n in enumerate(emb["n_real"])])


def _what(s: scenes.Scene) -> str:
    return s.things[0].name if s.kind in ("single", "pair", "count") else s.kind


def meaning_map(pipe: Any, n: int = 150, seed: int = EVAL_SEED, k: int = 5) -> MeaningMap:
    """Canonical captions of `n` distinct unseen scenes, their sentence vectors, and how often a caption's `k`
    nearest neighbours (cosine) share its subject (the thing, or the kind of landscape), its ground and its light."""
    chosen: list[scenes.Scene] = []
    seen: set[str] = set()
    i = 0
    while len(chosen) < n:
        s = scenes.sample_scene(seed + i)
        i += 1
        if s.caption not in seen:  # a repeated caption is its own nearest neighbour: leave repeats out
            seen.add(s.caption)
            chosen.append(s)
    prompts = [s.caption for s in chosen]
    labels = {"subject": [_what(s) for s in chosen], "ground": [s.ground for s in chosen],
              "light": [s.sky for s in chosen]}
    emb = end_token_vectors(pipe, prompts)
    acc = {a: knn_accuracy(emb, lab, k) for a, lab in labels.items()}
    chance = {a: max(lab.count(v) for v in set(lab)) / n for a, lab in labels.items()}
    return MeaningMap(prompts, labels, emb, acc, chance)
