"""What lesson 14 and benchmarks/controlnet.py measure about ControlNet: does the output follow the map?

Layout agreement is read from the outside, from pixels: the foreground of a generated image (pixels far from its
background colour) against the regions the control map marks (`shapes.object_masks` of the scene the map was drawn
from), as an IoU; and, per object, whether the judge finds an object of the asked colour near the map's object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .. import shapes
from ..shapes import Scene

FOREGROUND_THRESHOLD = 60.0  # colour distance (0..441) from the background above which a pixel is foreground


def foreground_mask(image: Image.Image | np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """Boolean (h, w): pixels whose colour is more than `threshold` away from the image's background colour
    (the median of its border pixels)."""
    a = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"image must be RGB (h, w, 3), got shape {a.shape}")
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = np.median(border, axis=0)
    return np.linalg.norm(a - bg, axis=-1) > threshold


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def layout_iou(image: Image.Image | np.ndarray, scene: Scene) -> float:
    """IoU of the image's foreground against the union of the scene's object regions (what the map marks)."""
    return mask_iou(foreground_mask(image), shapes.object_masks(scene).any(0))


def placement(image: Image.Image | np.ndarray, scene: Scene, tolerance: float = 3.0) -> dict[str, float]:
    """Judged placement of each of the scene's objects: the judge's object of that colour (or, failing that, the
    nearest judged object) - is its centre within `tolerance` pixels of the map's, and does its size word agree?

    Returns {'position': share of objects placed within tolerance, 'size': share with the right size word,
    'distance': mean centre distance in pixels (the image diagonal when nothing was found)}.
    """
    from ..judge import judge

    j = judge(image)
    pos, size, dist = [], [], []
    for obj in scene.objects:
        seen = j.find(color=obj.color)
        if seen is None and j.objects:
            seen = min(j.objects, key=lambda o: (o.x - obj.x) ** 2 + (o.y - obj.y) ** 2)
        d = math.hypot(seen.x - obj.x, seen.y - obj.y) if seen is not None else math.hypot(32, 32)
        dist.append(d)
        pos.append(d <= tolerance)
        size.append(seen is not None and seen.size == obj.size)
    return {"position": float(np.mean(pos)), "size": float(np.mean(size)), "distance": float(np.mean(dist))}


def layout_prompt(scene: Scene) -> str:
    """A prompt that names what to draw but not where: one object without its position words; two objects
    with their relation (which leaves the exact places to the map)."""
    if len(scene.objects) == 1:
        return shapes.describe_object(scene.objects[0], None)
    return shapes.caption_for(scene)


def validation_scenes(n: int = 16, seed: int = 10_300_000) -> list[Scene]:
    """A fixed set of scenes never seen in ControlNet training (seeds above the training range): half one object,
    half two."""
    one = [shapes.sample_scene(seed + i, two_object_p=0.0) for i in range(n - n // 2)]
    two = [shapes.sample_scene(seed + 1000 + i, two_object_p=1.0) for i in range(n // 2)]
    return one + two


@dataclass
class LayoutScore:
    iou: float
    iou_se: float
    position: float
    size: float
    distance: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def score_layout(images: list[Image.Image], scenes: list[Scene]) -> LayoutScore:
    """Mean layout IoU (with its standard error), judged position/size agreement and centre distance."""
    if len(images) != len(scenes):
        raise ValueError(f"images and scenes must have the same length, got {len(images)} and {len(scenes)}")
    ious = np.array([layout_iou(im, s) for im, s in zip(images, scenes, strict=True)])
    pl = [placement(im, s) for im, s in zip(images, scenes, strict=True)]
    return LayoutScore(
        iou=float(ious.mean()), iou_se=float(ious.std(ddof=1) / math.sqrt(len(ious))) if len(ious) > 1 else 0.0,
        position=float(np.mean([p["position"] for p in pl])), size=float(np.mean([p["size"] for p in pl])),
        distance=float(np.mean([p["distance"] for p in pl])), n=len(images),
    )
