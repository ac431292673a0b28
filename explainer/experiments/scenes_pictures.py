"""Pictures of the scenes world for the lessons: unseen scenes of a kind, a scene with one thing changed, renders.

Every scene comes from a seed at or above `EVAL_SEED` (never in training) and is drawn by the world's own renderer,
so a picture here is what the world says the prompt looks like -- not what a model drew.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from ..worlds.scenes import EVAL_SEED, Scene, caption_for, sample_scene
from ..worlds.scenes_render import render

MAX_TRIES = 200_000  # seeds scanned before a search gives up


def find_scenes(keep: Callable[[Scene], bool], n: int, start: int = EVAL_SEED) -> list[Scene]:
    """The first `n` unseen scenes (seeds from `start` on) that `keep` accepts."""
    out: list[Scene] = []
    for seed in range(start, start + MAX_TRIES):
        s = sample_scene(seed)
        if keep(s):
            out.append(s)
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} of {n} scenes found in {MAX_TRIES} seeds from {start}")


def recaption(scene: Scene, **changes: object) -> Scene:
    """`scene` with some of its truth changed (ground, sky, things ...) and its canonical caption rewritten."""
    s = replace(scene, **changes)
    return replace(s, caption=caption_for(s))


def render_all(scenes: Sequence[Scene]) -> np.ndarray:
    """uint8 pictures (n, 64, 64, 3) of `scenes`."""
    return np.stack([render(s)[0] for s in scenes])


def landscapes(kind: str, n: int, sky: str | None = None, start: int = EVAL_SEED) -> list[Scene]:
    """`n` unseen scenes of `kind` ("forest", "beach", "mountain"); with `sky`, each is lit by that sky (its
    trees, ground and horizon stay those of its seed). Forests keep only trees (no animal), as "a forest" asks."""
    def keep(s: Scene) -> bool:
        return s.kind == kind and not s.under and all(t.name in ("tree", "pine", "mountain") for t in s.things)

    found = find_scenes(keep, n, start)
    return [recaption(s, sky=sky) for s in found] if sky else found


def foxes_in_leaves(n: int, start: int = EVAL_SEED) -> list[Scene]:
    """`n` unseen scenes of one red fox (anywhere, any size, any light), set in autumn leaves."""
    found = find_scenes(lambda s: s.kind == "single" and s.things[0].name == "fox" and not s.under, n, start)
    return [recaption(s, ground="leaves") for s in found]
