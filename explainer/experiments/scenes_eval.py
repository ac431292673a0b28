"""How well a model draws the scenes world, GenEval-style: unseen prompts by category, read by the scenes judge.

Categories (as GenEval's, plus the world's ground and sky): single object, two objects, counting, colour, position,
relation, colour attribution, ground, sky. Prompts are canonical captions of scenes with seeds ≥ `EVAL_SEED` (never
in training); each prompt is drawn once per seed, and intervals resample prompts (the unit that was drawn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import validation as V
from ..generation import run_pipeline
from ..latents import to_uint8
from ..text import cosine_similarity, encode_prompts
from ..verdicts import Interval, bootstrap_difference, bootstrap_spearman, wilson
from ..words import prompt_words
from ..worlds.scenes import EVAL_SEED, NAMES, THINGS, Scene, sample_scene
from ..worlds.scenes_judge import check, read, thing_losses  # noqa: F401 (thing_losses: with thing_study)
from ..worlds.scenes_render import render
from .latents import round_trip

#: the article's prompts, and the scene whose truth each is judged against
ARTICLE_PROMPTS: tuple[str, ...] = (
    "a red fox sitting in autumn leaves", "a fox", "a forest at dawn", "a forest at dusk", "a beach", "a mountain",
    "a cat left of a tree under the sun", "a boat on the sea at night", "two balloons above a house",
)
CATEGORIES = ("object", "two_objects", "counting", "color", "position", "relation", "color_attribution", "ground",
              "sky")


def article_scene(prompt: str) -> Scene:
    """The scene a prompt of `ARTICLE_PROMPTS` asks for: the first evaluation scene whose canonical caption starts
    with the prompt's words for its things (only the questions the prompt asks are checked, see `article_checks`)."""
    from ..worlds.scenes import Thing

    def one(kind, things, ground="grass", sky="day", **kw):
        return Scene(kind=kind, things=tuple(things), ground=ground, sky=sky, caption=prompt, **kw)

    table = {
        "a red fox sitting in autumn leaves": one("single", [Thing("fox", "red", "large", 32, 44, 24, 24)], "leaves"),
        "a fox": one("single", [Thing("fox", "red", "large", 32, 44, 24, 24)]),
        "a forest at dawn": one("forest", [], sky="dawn"),
        "a forest at dusk": one("forest", [], sky="dusk"),
        "a beach": one("beach", [], "sand"),
        "a mountain": one("mountain", [Thing("mountain", None, "large", 32, 24, 44, 34)]),
        "a cat left of a tree under the sun": one("pair", [Thing("cat", None, "large", 20, 44, 24, 24),
                                                           Thing("tree", None, "large", 44, 44, 24, 24),
                                                           Thing("sun", None, "small", 40, 10, 15, 15)],
                                                  relation="left of", under="sun"),
        "a boat on the sea at night": one("single", [Thing("boat", None, "large", 32, 48, 24, 24)], "water", "night"),
        "two balloons above a house": one("count", [Thing("balloon", "red", "small", 20, 12, 15, 15),
                                                    Thing("balloon", "red", "small", 44, 12, 15, 15),
                                                    Thing("house", None, "large", 32, 46, 24, 24)],
                                          relation="above"),
    }
    return table[prompt]


ARTICLE_ASKS = {  # which checks each article prompt asks (a prompt that names no sky does not ask for one)
    "a red fox sitting in autumn leaves": ("object", "ground"), "a fox": ("object",),
    "a forest at dawn": ("object", "sky"), "a forest at dusk": ("object", "sky"), "a beach": ("ground",),
    "a mountain": ("object",), "a cat left of a tree under the sun": ("two_objects", "relation", "sun"),
    "a boat on the sea at night": ("object", "ground", "sky"), "two balloons above a house": ("counting", "house"),
}


def article_checks(reading, prompt: str) -> dict[str, bool]:
    """The checks `prompt` asks, on one reading."""
    got = check(reading, article_scene(prompt))
    got["sun"] = reading.has("sun")
    got["house"] = reading.has("house")
    return {k: got[k] for k in ARTICLE_ASKS[prompt]}


def prompt_sets(n: int, start: int = EVAL_SEED) -> dict[str, list[Scene]]:
    """About `n` unseen scenes per kind asked: single things, pairs, counts, forests / mountains / beaches."""
    sets: dict[str, list[Scene]] = {"single": [], "pair": [], "count": [], "landscape": []}
    seed = start
    while min(len(v) for v in sets.values()) < n:
        s = sample_scene(seed)
        key = s.kind if s.kind in sets else "landscape" if s.kind in ("forest", "mountain", "beach") else None
        if key and len(sets[key]) < n:
            sets[key].append(s)
        seed += 1
    return sets


@dataclass
class Adherence:
    """Per category: hits per prompt (one image per prompt), and the share with its 95 % interval."""

    hits: dict[str, list[bool]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self) -> dict[str, dict[str, float]]:
        out = {}
        for k in CATEGORIES:
            v = self.hits.get(k, [])
            if v:
                ci = wilson(int(sum(v)), len(v))
                out[k] = {"share": float(np.mean(v)), "n": len(v), "low": ci.low, "high": ci.high}
        return out


def generate(pipe: Any, prompts: Sequence[str], seeds: Sequence[int], steps: int, cfg: float,
             batch: int = 16) -> np.ndarray:
    """uint8 pictures of `prompts` (one per prompt, its own seed), in batches."""
    images = []
    for i in range(0, len(prompts), batch):
        out = run_pipeline(pipe, list(prompts[i:i + batch]), list(seeds[i:i + batch]), steps, cfg, output_type="pt")
        images.append(to_uint8(np.stack([o.numpy() if hasattr(o, "numpy") else o for o in out]) * 2 - 1))
    return np.concatenate(images)


def adherence(pipe: Any, scenes: Sequence[Scene], steps: int = 20, cfg: float = 7.5, seed: int = 0,
              judge: Any = None) -> Adherence:
    """Draw each scene's canonical caption once (seed `seed` + index) and check it with the judge (default: the
    shipped scenes judge)."""
    images = generate(pipe, [s.caption for s in scenes], [seed + i for i in range(len(scenes))], steps, cfg)
    result = Adherence(settings={"steps": steps, "cfg": cfg, "n_prompts": len(scenes)})
    for r, s in zip(read(images, judge), scenes, strict=True):
        for k, v in check(r, s).items():
            result.hits.setdefault(k, []).append(bool(v))
    return result


def article_grid(pipe: Any, seeds: Sequence[int], steps: int = 20, cfg: float = 7.5, judge: Any = None
                 ) -> dict[str, Any]:
    """The article's prompts × `seeds`: the pictures and, per prompt, the share of seeds the judge reads right
    (every question the prompt asks right)."""
    prompts = [p for p in ARTICLE_PROMPTS for _ in seeds]
    images = generate(pipe, prompts, list(seeds) * len(ARTICLE_PROMPTS), steps, cfg)
    readings = read(images, judge)
    per_prompt: dict[str, list[bool]] = {}
    for prompt, r in zip(prompts, readings, strict=True):
        per_prompt.setdefault(prompt, []).append(all(article_checks(r, prompt).values()))
    return {"images": images.reshape(len(ARTICLE_PROMPTS), len(seeds), *images.shape[1:]), "seeds": list(seeds),
            "right": {p: float(np.mean(v)) for p, v in per_prompt.items()}, "readings": readings}


THING_STUDY_SEED = EVAL_SEED + 500_000  # the by-thing study's scenes: unseen, and apart from `prompt_sets`'


def thing_study(pipe: Any, per_thing: int = 16, steps: int = 20, cfg: float = 7.5, judge: Any = None
                ) -> dict[str, dict[str, Any]]:
    """Which things the model draws: `per_thing` unseen single-object prompts for each thing, one image each, read by
    the judge; and, for the same scenes, their renders and their VAE round trips (what the decoder brings back from the
    encoder's own latents). Per thing: n, the shares drawn / round trip / render, the Wilson interval of drawn, and the
    paired difference round trip − drawn with its 95 % interval over prompts (above 0: the U-Net loses the thing more
    than the decoder does).
    """
    per_thing = V.check_int(per_thing, "per_thing", 1, 200)
    steps, cfg = V.check_steps(steps), V.check_cfg(cfg)
    by_thing: dict[str, list[Scene]] = {t: [] for t in THINGS}
    seed = THING_STUDY_SEED
    while min(len(v) for v in by_thing.values()) < per_thing:
        s = sample_scene(seed)
        if s.kind == "single" and len(by_thing[s.things[0].name]) < per_thing:
            by_thing[s.things[0].name].append(s)
        seed += 1
    scenes = [s for v in by_thing.values() for s in v]
    near = name_neighbours(pipe)
    drawn = read(generate(pipe, [s.caption for s in scenes], list(range(len(scenes))), steps, cfg), judge)
    renders = np.stack([render(s)[0] for s in scenes])
    trips = read(round_trip(pipe, renders).decoded, judge)
    rendered = read(renders, judge)
    out: dict[str, dict[str, Any]] = {}
    for i, t in enumerate(by_thing):
        part = slice(i * per_thing, (i + 1) * per_thing)
        hit = {name: np.array([r.has(t) for r in rs[part]], float)
               for name, rs in (("drawn", drawn), ("round_trip", trips), ("render", rendered))}
        ci, gap = wilson(int(hit["drawn"].sum()), per_thing), bootstrap_difference(hit["round_trip"], hit["drawn"])
        out[t] = {"n": per_thing, **{k: float(v.mean()) for k, v in hit.items()}, "low": ci.low, "high": ci.high,
                  "gap": gap.estimate, "gap_low": gap.low, "gap_high": gap.high, "too_few": gap.too_few,
                  "text_nearest": near[t][0], "text_cosine": near[t][1]}
    return out


def name_neighbours(pipe: Any, things: Sequence[str] = THINGS) -> dict[str, tuple[str, float]]:
    """For each thing, the other thing whose name the pipeline's text encoder reads most alike, and how alike: the
    cosine between the mean states of the name's words in "a <name>" (what the U-Net's cross-attention reads for it,
    every piece of a split word included). Names read almost alike leave the U-Net little to tell them apart by."""
    if len(things) < 2:
        raise ValueError(f"things must name at least two things, got {list(things)}")
    prompts = [f"a {NAMES[t][0]}" for t in things]
    e = encode_prompts(pipe, prompts)
    hidden = next(iter(e.hidden_states.values()))
    rows = []
    for i, (prompt, toks) in enumerate(zip(prompts, e.tokens, strict=True)):
        name = [p for w in prompt_words(prompt, toks)[1:] for p in w.positions]  # past the article: "pine tree"
        rows.append(hidden[i, name].float().mean(0))
    sim = cosine_similarity(np.stack([r.numpy() for r in rows]))
    np.fill_diagonal(sim, -np.inf)
    return {t: (things[int(sim[i].argmax())], float(sim[i].max())) for i, t in enumerate(things)}


def text_confusion(things: dict[str, dict[str, Any]]) -> Interval:
    """Spearman's rank correlation over things (`thing_study`'s) between how alike the text encoder reads a thing's
    name and its nearest other thing's, and how often the thing is drawn, with a bootstrap interval over things.
    Below 0: the names the text encoder confuses are the things the model fails to draw."""
    return bootstrap_spearman([r["text_cosine"] for r in things.values()], [r["drawn"] for r in things.values()])
