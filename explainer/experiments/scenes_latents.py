"""Lesson 3 on the scenes world: the VAE's latent space, and CLIP's, measured on the world's own pictures.

* `reconstruction`: a VAE round trip of unseen scenes (per-scene PSNR: the scene is the unit drawn).
* `near_far`: "a forest at dawn" beside "a forest at dusk" (neighbours), "a beach" beside "a mountain" (far apart),
  and two forests at dawn (the same prompt drawn twice), as distances between VAE latents and as CLIP similarities of
  the pictures -- one value per pair of independently drawn scenes -- and of the prompts in CLIP's text space.
* `change_one_thing`: the same scene with one thing changed (moved a pixel, another thing, another ground, another
  light) or an unrelated scene: latent distance beside pixel distance, scene by scene.
* `walks`: straight lines between the latents of a beach and a mountain, decoded, beside the pixel cross-fades.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..worlds import scenes
from ..worlds.scenes import EVAL_SEED
from .latents import Interpolation, Reconstruction, decode, encode, round_trip
from .scenes_clip import image_features, text_features
from .scenes_pictures import find_scenes, landscapes, recaption, render_all
from .summaries import walk_difference

#: the article's near and far prompts, and a second draw of the first (the spread of one prompt)
NEAR, FAR = ("a forest at dawn", "a forest at dusk"), ("a beach", "a mountain")
SECOND_DRAW = EVAL_SEED + 400_000  # where the second scene of each pair is drawn from


def reconstruction(pipe: Any, n: int = 32, start: int = EVAL_SEED) -> Reconstruction:
    """Encode and decode `n` unseen scenes of every kind; the error per scene and pooled."""
    return round_trip(pipe, render_all(find_scenes(lambda s: True, n, start)))


@dataclass
class NearFar:
    """Per pair kind ("same prompt", "neighbours", "far apart"): the two pictures of each pair, the latent distance
    and the CLIP image similarity of each pair; and the CLIP text similarity of the prompts."""

    pairs: dict[str, tuple[str, str]]  # kind -> (prompt of the first picture, prompt of the second)
    images: dict[str, tuple[np.ndarray, np.ndarray]]  # kind -> (first pictures, second pictures), uint8
    latent_distance: dict[str, np.ndarray]  # kind -> (n,) Euclidean distance between the two latents
    clip_similarity: dict[str, np.ndarray]  # kind -> (n,) cosine similarity of CLIP image vectors
    text_similarity: dict[str, float]  # kind -> cosine similarity of the two prompts' CLIP text vectors
    latent_scale: float  # the mean latent distance between unrelated scenes, for reading the others


def _pictures(prompt: str, n: int, start: int) -> list[scenes.Scene]:
    kind, _, sky = prompt.removeprefix("a ").partition(" at ")
    return landscapes(kind, n, sky or None, start)


def near_far(pipe: Any, clip: Any, n: int = 12) -> NearFar:
    """`n` independently drawn pairs of pictures for each kind of pair (see the module's doc)."""
    pairs = {"same prompt": (NEAR[0], NEAR[0]), "neighbours": NEAR, "far apart": FAR}
    images, dist, sim, text = {}, {}, {}, {}
    for kind, (a, b) in pairs.items():
        ia = render_all(_pictures(a, n, EVAL_SEED))
        ib = render_all(_pictures(b, n, SECOND_DRAW))
        za, zb = encode(pipe, ia), encode(pipe, ib)
        images[kind] = (ia, ib)
        dist[kind] = (za - zb).flatten(1).norm(dim=1).double().numpy()
        sim[kind] = (image_features(clip, ia) * image_features(clip, ib)).sum(1)
        ta, tb = text_features(clip, [a, b])
        text[kind] = float(ta @ tb)
    unrelated = encode(pipe, render_all(find_scenes(lambda s: True, 2 * n, EVAL_SEED + 700)))
    scale = float((unrelated[:n] - unrelated[n:]).flatten(1).norm(dim=1).mean())
    return NearFar(pairs, images, dist, sim, text, scale)


CHANGES = ("moved 1 pixel", "other thing", "other ground", "other light", "unrelated scene")


def _variants(s: scenes.Scene, other: scenes.Scene, rng: random.Random) -> dict[str, scenes.Scene]:
    t = s.things[0]
    thing = rng.choice([x for x in scenes.GROUND_THINGS if x != t.name])
    return {"moved 1 pixel": recaption(s, things=(replace(t, x=t.x + rng.choice((-1.0, 1.0))),)),
            "other thing": recaption(s, things=(replace(t, name=thing, color=None),)),
            "other ground": recaption(s, ground=rng.choice([g for g in scenes.GROUNDS[:4] if g != s.ground])),
            "other light": recaption(s, sky=rng.choice([k for k in scenes.SKIES if k != s.sky])),
            "unrelated scene": other}


@dataclass
class ChangeOneThing:
    changes: tuple[str, ...]
    latent: np.ndarray  # (n scenes, changes) latent distance to the scene
    pixel: np.ndarray  # (n scenes, changes) pixel distance (RMS over values 0..1, times sqrt of their number)
    examples: list[tuple[str, np.ndarray]]  # (change, picture) for the first scene, the scene itself first

    def mean(self, which: str = "latent") -> dict[str, float]:
        x = self.latent if which == "latent" else self.pixel
        return {c: float(x[:, i].mean()) for i, c in enumerate(self.changes)}

    def rank_agreement(self) -> np.ndarray:
        """Per scene, Spearman's rank correlation between the latent and the pixel distances of its changes."""
        def ranks(v: np.ndarray) -> np.ndarray:
            return np.argsort(np.argsort(v)).astype(np.float64)

        return np.array([np.corrcoef(ranks(a), ranks(b))[0, 1] for a, b in zip(self.latent, self.pixel, strict=True)])


def change_one_thing(pipe: Any, n: int = 16, start: int = EVAL_SEED + 1000) -> ChangeOneThing:
    """`n` unseen one-thing scenes (a thing standing on the ground), each with one thing changed, and an unrelated
    scene; distances from the scene's latent and picture."""
    base = find_scenes(lambda s: s.kind == "single" and s.things[0].name in scenes.GROUND_THINGS
                       and s.ground != "water" and not s.under, n, start)
    others = find_scenes(lambda s: True, n, start + 50_000)
    rng = random.Random(start)
    variants = [_variants(s, o, rng) for s, o in zip(base, others, strict=True)]
    img0 = render_all(base)
    z0 = encode(pipe, img0)
    lat, pix, examples = np.zeros((n, len(CHANGES))), np.zeros((n, len(CHANGES))), [("the scene", img0[0])]
    for j, c in enumerate(CHANGES):
        img = render_all([v[c] for v in variants])
        lat[:, j] = (encode(pipe, img) - z0).flatten(1).norm(dim=1).double().numpy()
        pix[:, j] = np.linalg.norm((img.astype(np.float64) - img0).reshape(n, -1) / 255.0, axis=1)
        examples.append((c, img[0]))
    return ChangeOneThing(CHANGES, lat, pix, examples)


def walk(pipe: Any, a_img: np.ndarray, b_img: np.ndarray, frames: int = 7) -> Interpolation:
    """Decode (1 - a) z_A + a z_B for a in 0..1, next to the pixel cross-fade (1 - a) A + a B."""
    za, zb = encode(pipe, np.stack([a_img, b_img]))
    alphas = [float(a) for a in np.linspace(0, 1, frames)]
    lat = decode(pipe, torch.stack([(1 - a) * za + a * zb for a in alphas]))
    pix = np.stack([((1 - a) * a_img.astype(np.float64) + a * b_img).round().astype(np.uint8) for a in alphas])
    inner = slice(1, frames - 1)
    return Interpolation(alphas, lat, pix, float(np.abs(lat[inner].astype(np.float64) - pix[inner]).mean()))


def walks(pipe: Any, nf: NearFar, kind: str = "far apart", frames: int = 7) -> list[Interpolation]:
    """A latent walk for every pair of `kind` in `nf`."""
    a, b = nf.images[kind]
    return [walk(pipe, x, y, frames) for x, y in zip(a, b, strict=True)]


def worst_off_line(paths: list[Interpolation]) -> list[float]:
    """Per walk, the share of pixels of its worst inner frame that take a colour in neither end."""
    return [walk_difference(p)["worst_off_line"] for p in paths]
