"""Lesson 2: words become numbers.

* `wording_similarity`: how far the text embedding moves when the wording changes a little (a synonym), changes the
  meaning (another colour), or is a different prompt altogether.
* `meaning_map`: embeddings of many captions; does an embedding's nearest neighbours share its colour / shape /
  position (leave-one-out k-nearest-neighbour accuracy against chance)?
* `clip_retrieval`: our CLIP's image <-> caption similarity on fresh scenes it never saw; retrieval accuracy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import shapes
from ..shapes import EVAL_SEED  # noqa: E402 (one definition, in the shapes world: never used in training)
from ..text import cosine_similarity, prompt_embeddings


def _one_object(seed: int) -> shapes.Scene:
    return shapes.sample_scene(seed, two_object_p=0.0)


def _caption(color: str, shape: str, size: str, position: str, size_word: str | None = None,
             place: str | None = None) -> str:
    size_word = size_word or size
    art = "an" if size_word[0] in "aeiou" else "a"
    return f"{art} {size_word} {color} {shape} {place or shapes.POSITION_PHRASES[position][0]}"


def wording_variants(n: int = 40, seed: int = EVAL_SEED) -> dict[str, list[tuple[str, str]]]:
    """Prompt pairs in four groups, from a small change of wording to a different scene.

    same meaning: a synonym ("large" -> "big", "on the left" -> "at the left");  one word changed: the colour, or the
    shape, or the position;  unrelated: the caption of another random scene.
    """
    rng = random.Random(seed)
    groups: dict[str, list[tuple[str, str]]] = {"same meaning (synonym)": [], "other colour": [], "other shape": [],
                                                "other position": [], "unrelated scene": []}
    for i in range(n):
        o = _one_object(seed + i).objects[0]
        base = _caption(o.color, o.shape, o.size, o.position)
        syn = _caption(o.color, o.shape, o.size, o.position, size_word=rng.choice(shapes.SIZE_WORDS[o.size][1:]),
                       place=rng.choice(shapes.POSITION_PHRASES[o.position][1:]))
        colour = rng.choice([c for c in shapes.COLORS if c != o.color])
        shape = rng.choice([s for s in shapes.SHAPES if s != o.shape])
        pos = rng.choice([p for p in shapes.POSITIONS if p != o.position])
        groups["same meaning (synonym)"].append((base, syn))
        groups["other colour"].append((base, _caption(colour, o.shape, o.size, o.position)))
        groups["other shape"].append((base, _caption(o.color, shape, o.size, o.position)))
        groups["other position"].append((base, _caption(o.color, o.shape, o.size, pos)))
        other = _one_object(seed + 100_000 + i).objects[0]
        while other.color == o.color or other.shape == o.shape or other.position == o.position:
            other = _one_object(rng.randrange(10**9)).objects[0]
        groups["unrelated scene"].append((base, _caption(other.color, other.shape, other.size, other.position)))
    return groups


def wording_similarity(pipe: Any, n: int = 40, seed: int = EVAL_SEED, kind: str = "tokens") -> dict[str, float]:
    """Mean cosine similarity of the text embeddings of each group's prompt pairs.

    kind: "tokens" (the full token x dimension matrix the U-Net reads; padding included) or "pooled" (one vector).
    """
    groups = wording_variants(n, seed)
    out = {}
    for name, pairs in groups.items():
        emb = prompt_embeddings(pipe, [p for pair in pairs for p in pair])
        x = emb["hidden"] if kind == "tokens" else emb["pooled"]
        a, b = x[0::2].reshape(len(pairs), -1), x[1::2].reshape(len(pairs), -1)
        sims = (cosine_similarity(a, b)).diagonal()
        out[name] = float(sims.mean())
    return out


@dataclass
class MeaningMap:
    prompts: list[str]
    labels: dict[str, list[str]]  # attribute -> label per prompt
    embeddings: np.ndarray  # (n, D) pooled
    knn_accuracy: dict[str, float]  # attribute -> leave-one-out k-NN accuracy
    chance: dict[str, float]  # attribute -> accuracy of always guessing the commonest label


def knn_accuracy(x: np.ndarray, labels: list[str], k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (cosine similarity, majority vote, ties to the nearest)."""
    sim = cosine_similarity(x)
    np.fill_diagonal(sim, -np.inf)
    lab = np.asarray(labels)
    hits = 0
    for i in range(len(x)):
        nn = np.argsort(-sim[i])[:k]
        votes: dict[str, int] = {}
        for j in nn:
            votes[lab[j]] = votes.get(lab[j], 0) + 1
        best = max(votes.values())
        guess = next(lab[j] for j in nn if votes[lab[j]] == best)
        hits += guess == lab[i]
    return hits / len(x)


def meaning_map(pipe: Any, n: int = 150, seed: int = EVAL_SEED, k: int = 5) -> MeaningMap:
    """Captions of `n` random one-object scenes (canonical wording), their pooled embeddings, and how well
    neighbours in embedding space agree on each attribute."""
    scenes = [_one_object(seed + i) for i in range(n)]
    prompts = [shapes.caption_for(s) for s in scenes]
    labels = {"colour": [s.objects[0].color for s in scenes], "shape": [s.objects[0].shape for s in scenes],
              "position": [s.objects[0].position for s in scenes], "size": [s.objects[0].size for s in scenes]}
    emb = prompt_embeddings(pipe, prompts)["pooled"]
    acc = {a: knn_accuracy(emb, lab, k) for a, lab in labels.items()}
    chance = {a: max(lab.count(v) for v in set(lab)) / n for a, lab in labels.items()}
    return MeaningMap(prompts, labels, emb, acc, chance)


@dataclass
class Retrieval:
    images: np.ndarray  # (n, 32, 32, 3) uint8
    captions: list[str]
    similarity: np.ndarray  # (n images, n captions)
    image_to_caption: float  # share of images whose most similar caption is (a caption identical to) their own
    caption_to_image: float
    chance: float
    matched_mean: float  # mean similarity of matching pairs (the diagonal)
    unmatched_mean: float


def clip_retrieval(clip: Any, n: int = 64, seed: int = EVAL_SEED + 500, tokenizer: Any = None) -> Retrieval:
    """Our CLIP on `n` scenes it never saw (one or two objects), with their full captions."""
    from ..text import clip_similarity

    images, _, scenes = shapes.make_dataset(n, start_seed=seed)
    captions = [shapes.caption_for(s, full=True) for s in scenes]
    sim = clip_similarity(clip, images, captions, tokenizer)
    cap = np.asarray(captions)
    i2c = float(np.mean(cap[sim.argmax(axis=1)] == cap))
    c2i = float(np.mean(cap[sim.argmax(axis=0)] == cap))
    off = ~np.eye(n, dtype=bool)
    return Retrieval(images, captions, sim, i2c, c2i, 1.0 / n, float(sim.diagonal().mean()), float(sim[off].mean()))
