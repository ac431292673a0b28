"""Lesson 3: the latent space of the VAE.

* `encode` / `decode`: pixels <-> scaled latents, exactly as the pipeline uses them (latents x scaling_factor).
* `reconstruction`: how much a round trip through the VAE loses, on scenes it never saw.
* `change_one_thing`: latent distance when one attribute of a scene changes (shift by a pixel, size, colour, shape,
  position, background), against the distance to an unrelated scene.
* `latent_neighbours`: do nearby latents share colour / shape / position (k-NN accuracy against chance)?
* `interpolate`: walk in a straight line between two latents, decode every stop; compare with a pixel cross-fade.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .. import shapes
from ..adapters import get_adapter
from ..latents import decode as decode_latents
from ..latents import encode as encode_latents
from ..latents import to_pixels, to_uint8
from ..shapes import EVAL_SEED  # noqa: E402 (one definition, in the shapes world: never used in training)


def compression(pipe: Any) -> dict[str, int | float]:
    """Numbers of values in one image and in its latent."""
    adapter = get_adapter(pipe)
    f, size = adapter.vae_factor, adapter.default_size()[0]
    c = int(pipe.vae.config.latent_channels)
    pixels = 3 * size * size
    latent = c * (size // f) ** 2
    return {"image_size": size, "pixel_values": pixels, "latent_shape": (c, size // f, size // f),
            "latent_values": latent, "factor": pixels / latent}


@torch.no_grad()
def encode(pipe: Any, images: np.ndarray | list, batch: int = 256) -> torch.Tensor:
    """uint8 (n, h, w, 3) or PIL images -> latents (n, 4, h/f, w/f), scaled as the U-Net sees them."""
    return encode_latents(pipe, to_pixels(images), batch)


@torch.no_grad()
def decode(pipe: Any, latents: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Scaled latents -> uint8 images (n, h, w, 3)."""
    return to_uint8(torch.cat([decode_latents(pipe, latents[i:i + batch]).float().cpu()
                               for i in range(0, len(latents), batch)]))


@dataclass
class Reconstruction:
    originals: np.ndarray
    decoded: np.ndarray
    latents: torch.Tensor
    mse: float  # mean squared error, pixel values in 0..1
    psnr: float  # dB
    mean_abs_255: float  # mean absolute error in 0..255 units
    worst_index: int


def reconstruction(pipe: Any, n: int = 64, seed: int = EVAL_SEED) -> Reconstruction:
    images, _, _ = shapes.make_dataset(n, start_seed=seed)
    return round_trip(pipe, images)


def round_trip(pipe: Any, images: np.ndarray) -> Reconstruction:
    """Encode and decode uint8 `images`; the error per picture and pooled."""
    z = encode(pipe, images)
    dec = decode(pipe, z)
    err = (dec.astype(np.float64) - images.astype(np.float64)) / 255.0
    per_image = (err ** 2).mean(axis=(1, 2, 3))
    mse = float(per_image.mean())
    return Reconstruction(images, dec, z, mse, float(10 * np.log10(1.0 / mse)), float(np.abs(err).mean() * 255),
                          int(per_image.argmax()))


def _variants(scene: shapes.Scene, rng: random.Random) -> dict[str, shapes.Scene]:
    """The scene with exactly one thing changed (single-object scenes)."""
    o = scene.objects[0]
    out = {}
    out["moved 1 pixel"] = replace(scene, objects=(replace(o, x=o.x + rng.choice([-1.0, 1.0])),))
    out["other size"] = replace(scene, objects=(replace(o, size="small" if o.size == "large" else "large"),))
    out["other colour"] = replace(scene, objects=(replace(o, color=rng.choice([c for c in shapes.COLORS
                                                                                 if c != o.color])),))
    out["other shape"] = replace(scene, objects=(replace(o, shape=rng.choice([s for s in shapes.SHAPES
                                                                               if s != o.shape])),))
    pos = rng.choice([p for p in shapes.POSITIONS if p != o.position])
    ax, ay = shapes.ANCHORS[pos]
    out["other position"] = replace(scene, objects=(replace(o, x=ax + (o.x - shapes.ANCHORS[o.position][0]),
                                                            y=ay + (o.y - shapes.ANCHORS[o.position][1])),))
    out["other background"] = replace(scene, background=rng.choice([b for b in shapes.BACKGROUNDS
                                                                    if b != scene.background]))
    return out


@dataclass
class ChangeOneThing:
    latent: dict[str, float]  # change -> mean latent L2 distance to the original
    pixel: dict[str, float]  # change -> mean pixel L2 distance (0..1 units) to the original
    examples: list[tuple[str, np.ndarray, np.ndarray]]  # (change, original image, changed image) for one scene


def change_one_thing(pipe: Any, n: int = 48, seed: int = EVAL_SEED + 1000) -> ChangeOneThing:
    """Mean distance (latent and pixel) between a scene and the same scene with one thing changed, and between two
    unrelated scenes. Single-object scenes."""
    rng = random.Random(seed)
    base = [shapes.sample_scene(seed + i, two_object_p=0.0) for i in range(n)]
    other = [shapes.sample_scene(seed + 50_000 + i, two_object_p=0.0) for i in range(n)]
    kinds: dict[str, list[shapes.Scene]] = {}
    for s in base:
        for k, v in _variants(s, rng).items():
            kinds.setdefault(k, []).append(v)
    kinds["unrelated scene"] = other
    render = lambda scenes: np.stack([np.asarray(shapes.render(s)) for s in scenes])  # noqa: E731
    img0 = render(base)
    z0 = encode(pipe, img0)
    latent, pixel, examples = {}, {}, []
    for k, scenes in kinds.items():
        img = render(scenes)
        z = encode(pipe, img)
        latent[k] = float((z - z0).flatten(1).norm(dim=1).mean())
        pixel[k] = float(np.linalg.norm((img.astype(np.float64) - img0) .reshape(n, -1) / 255.0, axis=1).mean())
        examples.append((k, img0[0], img[0]))
    return ChangeOneThing(latent, pixel, examples)


@dataclass
class Neighbours:
    latents: torch.Tensor
    images: np.ndarray
    labels: dict[str, list[str]]
    knn_accuracy: dict[str, float]
    chance: dict[str, float]


def latent_neighbours(pipe: Any, n: int = 300, seed: int = EVAL_SEED + 2000, k: int = 5) -> Neighbours:
    """Latents of `n` one-object scenes; does a latent's nearest neighbours (Euclidean) share its attributes?"""
    images, _, scenes = shapes.make_dataset(n, start_seed=seed, two_object_p=0.0)
    z = encode(pipe, images)
    labels = {"colour": [s.objects[0].color for s in scenes], "shape": [s.objects[0].shape for s in scenes],
              "position": [s.objects[0].position for s in scenes], "background": [s.background for s in scenes]}
    flat = z.flatten(1).numpy().astype(np.float64)
    # k-NN with Euclidean distance: pass vectors whose cosine ranks like negative distance (append a norm column)
    acc = {a: _knn_euclid(flat, lab, k) for a, lab in labels.items()}
    chance = {a: max(lab.count(v) for v in set(lab)) / n for a, lab in labels.items()}
    return Neighbours(z, images, labels, acc, chance)


def _knn_euclid(x: np.ndarray, labels: list[str], k: int) -> float:
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    lab = np.asarray(labels)
    hits = 0
    for i in range(len(x)):
        nn = np.argsort(d[i])[:k]
        vals, counts = np.unique(lab[nn], return_counts=True)
        best = set(vals[counts == counts.max()])
        guess = next(lab[j] for j in nn if lab[j] in best)
        hits += guess == lab[i]
    return hits / len(x)


@dataclass
class Interpolation:
    alphas: list[float]
    latent_path: np.ndarray  # decoded images along the latent line (frames, h, w, 3)
    pixel_path: np.ndarray  # pixel cross-fade at the same alphas
    mean_abs_difference: float  # between the two paths, 0..255, averaged over the inner frames


def interpolate(pipe: Any, seed_a: int = EVAL_SEED + 7, seed_b: int = EVAL_SEED + 8, frames: int = 7) -> Interpolation:
    """Decode (1 - a) z_A + a z_B for a in 0..1, next to the pixel cross-fade (1 - a) A + a B."""
    a_img = np.asarray(shapes.render(shapes.sample_scene(seed_a, two_object_p=0.0)))
    b_img = np.asarray(shapes.render(shapes.sample_scene(seed_b, two_object_p=0.0)))
    za, zb = encode(pipe, [a_img, b_img])
    alphas = [float(a) for a in np.linspace(0, 1, frames)]
    z = torch.stack([(1 - a) * za + a * zb for a in alphas])
    lat = decode(pipe, z)
    pix = np.stack([((1 - a) * a_img.astype(np.float64) + a * b_img).round().astype(np.uint8) for a in alphas])
    inner = slice(1, frames - 1)
    diff = float(np.abs(lat[inner].astype(np.float64) - pix[inner]).mean())
    return Interpolation(alphas, lat, pix, diff)
