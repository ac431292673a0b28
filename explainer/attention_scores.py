"""Is the attention map right? Score a word's map against the pixels of the object the word names.

Every attention-map tool shows a heat map and asks the viewer to trust it. In the shapes world the truth is known:
the renderer knows each object's pixels exactly (`render_masks`), and for a generated image the judge's segmentation
finds them (`judged_masks`; `judge_mask_reliability` measures how well, on renders where the truth is known). So a map
can be *scored*:

* `pointing_game` -- does the map's peak fall inside the object? (chance = the object's share of the image)
* `mass_inside`   -- the share of the map's total mass that lies on the object (chance = the object's area share)
* `roc_auc`       -- threshold-free: the probability that a random object pixel gets a higher map value than a random
  background pixel (ties count half; chance = 0.5, perfect = 1)
* `best_iou`      -- threshold-free: the best intersection-over-union of {map >= t} with the object, over every t
* `score_map` / `score_maps` -- all of them at once (`MapScore`), for one map or a batch.

Resolution: maps live on the latent grid (8x8, 4x4, 2x2 for the shipped model) and masks on the 32x32 image. Every
score first **upsamples the map bilinearly** to the mask's size (`upsample_maps`: `torch.nn.functional.interpolate`,
mode="bilinear", align_corners=False, the same rule as `Trace.attention` uses between levels), so a coarse map is
never rewarded or punished for the mask's resolution, and the object's pixels are the same for every level.
Negative map values (possible for maps made of differences) are clipped to 0 for `mass_inside` only.

Masks are coverage maps in [0, 1] (anti-aliased edges are fractional): `mass_inside` weighs each pixel by its
coverage; `pointing_game`, `roc_auc` and `best_iou` use the binary object {coverage >= 0.5}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from . import shapes
from . import validation as V
from .arrays import mask_iou as arrays_mask_iou
from .shapes import IMAGE_SIZE, RADIUS, Scene

__all__ = [
    "MapScore",
    "upsample_maps",
    "pointing_game",
    "mass_inside",
    "roc_auc",
    "best_iou",
    "score_map",
    "score_maps",
    "render_masks",
    "judged_masks",
    "mask_iou",
    "judge_mask_reliability",
    "MaskReliability",
    "outline_rgb",
]

_PEAK_TOL = 1e-6  # pixels within this (relative to the map's range) of the maximum are all "the peak"


# ------------------------------------------------------------------------------------------------- input checks
MAX_SIZE = 4096  # upsample_maps / render_masks: the largest side in pixels


def _as_maps(maps: Any, name: str) -> torch.Tensor:
    if isinstance(maps, torch.Tensor):
        t = maps
    else:
        a = None if isinstance(maps, (str, bytes, dict)) else np.asarray(maps)
        if a is None or a.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be a numeric 2D map (h, w) or a batch (n, h, w) (numpy array or tensor), "
                             f"got {type(maps).__name__}" + ("" if a is None else f" of dtype {a.dtype}"))
        t = torch.as_tensor(a)
    if t.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.detach().cpu().double()
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[-1] < 1 or t.shape[-2] < 1:
        raise ValueError(f"{name} must be a 2D map (h, w) or a batch (n, h, w), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return t


def _as_masks(masks: Any, n: int, name: str = "mask") -> torch.Tensor:
    m = _as_maps(masks, name)
    if m.shape[0] == 1 and n > 1:
        m = m.expand(n, -1, -1)
    if m.shape[0] != n:
        raise ValueError(f"{name} must be one mask or one per map ({n}), got {m.shape[0]}")
    if (m < 0).any() or (m > 1).any():
        raise ValueError(f"{name} must hold coverage values in [0, 1] (bool or float), got values in "
                         f"[{float(m.min()):.3g}, {float(m.max()):.3g}]")
    return m


def upsample_maps(maps: Any, size: tuple[int, int] | int = IMAGE_SIZE) -> torch.Tensor:
    """(n, h, w) or (h, w) maps -> (n, H, W) float64, bilinear (align_corners=False); unchanged when already H x W."""
    m = _as_maps(maps, "maps")
    H, W = _check_size(size)
    if tuple(m.shape[-2:]) == (H, W):
        return m
    if H < m.shape[-2] or W < m.shape[-1]:
        raise ValueError(f"the mask ({H}x{W}) must be at least as fine as the map ({m.shape[-2]}x{m.shape[-1]})")
    return F.interpolate(m[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]


def _check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """An int (square) or (height, width), each an integer from 1 to MAX_SIZE."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (V.check_int(size[0], f"{name}[0] (height)", 1, MAX_SIZE),
                V.check_int(size[1], f"{name}[1] (width)", 1, MAX_SIZE))
    if isinstance(size, (tuple, list)):
        raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
    n = V.check_int(size, f"{name} (or a (height, width) pair)", 1, MAX_SIZE)
    return n, n


def _prepare(maps: Any, masks: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m0 = _as_maps(maps, "amap")
    k = _as_masks(masks, m0.shape[0])
    up = upsample_maps(m0, tuple(k.shape[-2:]))
    return up.flatten(1), k.flatten(1), (k >= 0.5).flatten(1)


# ------------------------------------------------------------------------------------------------------ scores
def _pointing(up: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    mx, mn = up.max(1, keepdim=True).values, up.min(1, keepdim=True).values
    peak = up >= mx - _PEAK_TOL * (mx - mn).clamp(min=1e-12)
    return (peak & inside).sum(1) * 2 > peak.sum(1)  # most of the (possibly tied) peak pixels lie inside


def _mass(up: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    pos = up.clamp(min=0)
    total = pos.sum(1)
    return torch.where(total > 0, (pos * cover).sum(1) / total.clamp(min=1e-300), torch.full_like(total, float("nan")))


def _ranked(up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ascending sort of each row, and for every sorted position the first and last index of its run of ties."""
    a = up.numpy()
    order = np.argsort(a, axis=1, kind="stable")
    vals = np.take_along_axis(a, order, 1)
    n = a.shape[1]
    idx = np.broadcast_to(np.arange(n), a.shape)
    new = np.ones(a.shape, dtype=bool)
    new[:, 1:] = vals[:, 1:] != vals[:, :-1]
    first = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    end = np.ones(a.shape, dtype=bool)
    end[:, :-1] = new[:, 1:]
    last = n - 1 - np.maximum.accumulate(np.where(end, n - 1 - idx, 0)[:, ::-1], axis=1)[:, ::-1]
    return torch.from_numpy(vals), torch.from_numpy(order), torch.from_numpy(np.stack([first, last]))


def _auc(up: torch.Tensor, inside: torch.Tensor, ranked=None) -> torch.Tensor:
    _, order, (first, last) = ranked if ranked is not None else _ranked(up)
    ranks = (first + last).double() / 2 + 1  # average ranks: ties count half
    pos = inside.gather(1, order)
    n1 = inside.sum(1).double()
    n0 = inside.shape[1] - n1
    u = (ranks * pos).sum(1) - n1 * (n1 + 1) / 2
    return torch.where((n1 > 0) & (n0 > 0), u / (n1 * n0).clamp(min=1), torch.full_like(n1, float("nan")))


def _best_iou(up: torch.Tensor, inside: torch.Tensor, ranked=None) -> tuple[torch.Tensor, torch.Tensor]:
    vals, order, (first, _) = ranked if ranked is not None else _ranked(up)
    n = up.shape[1]
    pos = inside.gather(1, order).double()
    above = pos.flip(1).cumsum(1).flip(1)  # object pixels at or above each sorted position
    n1 = inside.sum(1, keepdim=True).double()
    # {map >= t} with t = vals[j] takes every pixel from the first of j's ties upwards
    tp = above.gather(1, first)
    k = (n - first).double()
    iou = tp / (k + n1 - tp)
    best, idx = iou.max(1)
    thr = vals.gather(1, idx[:, None])[:, 0]
    nan = torch.full_like(best, float("nan"))
    return torch.where(n1[:, 0] > 0, best, nan), torch.where(n1[:, 0] > 0, thr, nan)


def pointing_game(amap: Any, mask: Any) -> bool:
    """True when the map's peak lies inside the object ({mask >= 0.5}) after bilinear upsampling to the mask's size.
    Tied peak pixels (within 1e-6 of the map's range) all count; the hit needs most of them inside, so a constant
    map hits only an object that covers most of the image."""
    up, _, inside = _prepare(amap, mask)
    return bool(_pointing(up, inside)[0])


def mass_inside(amap: Any, mask: Any) -> float:
    """Share of the map's (non-negative) mass on the object, each pixel weighted by its coverage, after bilinear
    upsampling. A uniform map gives the object's area share; NaN for an all-zero map."""
    up, cover, _ = _prepare(amap, mask)
    return float(_mass(up, cover)[0])


def roc_auc(amap: Any, mask: Any) -> float:
    """ROC AUC of the upsampled map's values as a detector of object pixels ({mask >= 0.5}): P(value at a random
    object pixel > value at a random background pixel), ties half (Mann-Whitney U). 0.5 = chance, 1 = perfect
    ranking. NaN when the mask is empty or covers everything."""
    up, _, inside = _prepare(amap, mask)
    return float(_auc(up, inside)[0])


def best_iou(amap: Any, mask: Any) -> tuple[float, float]:
    """(IoU, threshold): the best intersection-over-union between {upsampled map >= t} and the object ({mask >= 0.5})
    over every threshold t, and the t that reaches it. NaN for an empty mask."""
    up, _, inside = _prepare(amap, mask)
    iou, thr = _best_iou(up, inside)
    return float(iou[0]), float(thr[0])


@dataclass(frozen=True)
class MapScore:
    """How well one map points at one object. `area` (the object's share of the image) is the chance level of
    `pointing` and `mass_inside`; 0.5 is chance for `auc`."""

    pointing: bool
    mass_inside: float
    auc: float
    best_iou: float
    threshold: float
    area: float

    def to_dict(self) -> dict:
        return asdict(self)


def score_maps(maps: Any, masks: Any) -> dict[str, np.ndarray]:
    """All scores for a batch: maps (n, h, w), masks (n, H, W) or one (H, W) for all. Returns arrays of length n:
    pointing (bool), mass_inside, auc, best_iou, threshold, area."""
    up, cover, inside = _prepare(maps, masks)
    ranked = _ranked(up)
    iou, thr = _best_iou(up, inside, ranked)
    return {"pointing": _pointing(up, inside).numpy(), "mass_inside": _mass(up, cover).numpy(),
            "auc": _auc(up, inside, ranked).numpy(), "best_iou": iou.numpy(), "threshold": thr.numpy(),
            "area": cover.mean(1).numpy()}


def score_map(amap: Any, mask: Any) -> MapScore:
    """Every score of one (h, w) map against one (H, W) mask (see the module docstring)."""
    if _as_maps(amap, "amap").shape[0] != 1:
        raise ValueError("amap must be one 2D map (h, w); use score_maps for a batch")
    s = score_maps(amap, mask)
    return MapScore(bool(s["pointing"][0]), float(s["mass_inside"][0]), float(s["auc"][0]), float(s["best_iou"][0]),
                    float(s["threshold"][0]), float(s["area"][0]))


# ------------------------------------------------------------------------------------------------------- masks
def render_masks(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """Exact coverage (n_objects, size, size) in [0, 1] of each object of `scene`, with the renderer's own geometry
    and supersampling (`shapes.render`); a later object hides an earlier one where they overlap, as in the render."""
    if not isinstance(scene, Scene):
        raise ValueError(f"scene must be an explainer.shapes.Scene, got {type(scene).__name__}")
    size = V.check_int(size, "size", 1, MAX_SIZE)
    ss = 4
    big = size * ss
    scale = big / IMAGE_SIZE
    layers = []
    for obj in scene.objects:
        img = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(img)
        cx, cy, r = obj.x * scale, obj.y * scale, RADIUS[obj.size] * scale
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        else:
            draw.polygon(shapes._polygon(obj.shape, cx, cy, r), fill=255)
        layers.append(np.asarray(img) > 0)
    for i in range(len(layers)):
        for later in layers[i + 1:]:
            layers[i] = layers[i] & ~later
    if not layers:
        return np.zeros((0, size, size))
    hi = np.stack(layers).astype(np.float64)
    return hi.reshape(len(layers), size, ss, size, ss).mean((2, 4))


def judged_masks(image: Any) -> list[tuple[Any, np.ndarray]]:
    """The judge's objects in `image` (largest first, as `judge.judge` lists them) with each one's soft coverage map
    (32, 32) in [0, 1]: the judge's own segmentation (`judge._segment`: pixels explained as a blend of the
    background and the object's palette colour)."""
    from . import judge as J

    img = J._to_array(image)
    _, found = J._segment(img)
    j = J.judge(image)
    out, used = [], set()
    for obj in j.objects:
        for i, (k, a) in enumerate(found):
            if i not in used and J._COLOR_NAMES[k] == obj.color and abs(round(float(a.sum()), 2) - obj.area) < 1e-6:
                used.add(i)
                out.append((obj, a.astype(np.float64)))
                break
        else:  # not reachable with the judge as written; kept loud rather than silent
            raise RuntimeError("could not pair a judged object with its segment")
    return out


def mask_iou(a: Any, b: Any) -> float:
    """IoU of two masks of the same shape, each binarised at coverage 0.5: `arrays.mask_iou` (the one IoU) after the
    maps' checks."""
    return arrays_mask_iou(_as_maps(a, "a").numpy(), _as_maps(b, "b").numpy())


@dataclass
class MaskReliability:
    """How well the judge's masks match the renderer's on renders (where the truth is known)."""

    n_scenes: int
    n_objects: int
    found: float  # share of rendered objects the judge found (an object of that colour)
    mean_iou: float  # mean IoU over all rendered objects (a missed object counts 0)
    iou_ci: tuple[float, float]  # 95 % bootstrap interval of mean_iou (scenes resampled)
    share_above_half: float  # share of objects whose IoU >= 0.5
    degraded: bool  # renders were blurred and noised (a stand-in for generated images)
    ious: np.ndarray


def judge_mask_reliability(n: int = 200, start_seed: int = 20_000_000, two_object_p: float = 1.0,
                           degrade: bool = False, seed: int = 0) -> MaskReliability:
    """IoU of the judge's mask against the renderer's exact mask, per object, over `n` scenes (matched by colour; a
    scene's two objects always differ in colour). degrade=True blurs (radius 0.6) and noises (std 6) each render
    first, as `judge.degrade` does, so the figure speaks for images as soft as the model's."""
    from . import judge as J

    n = V.check_positive_int(n, "n", 1_000_000)
    start_seed, seed = V.check_seed(start_seed, "start_seed"), V.check_seed(seed)
    two_object_p = V.check_number(two_object_p, "two_object_p", 0.0, 1.0)
    degrade = V.check_bool(degrade, "degrade")
    rng = np.random.default_rng(seed)
    per_scene = []
    for i in range(n):
        scene = shapes.sample_scene(start_seed + i, two_object_p=two_object_p, held_out="allow")
        img = shapes.render(scene)
        if degrade:
            img = J.degrade(img, 0.6, 6.0, rng)
        truth = render_masks(scene)
        found = judged_masks(img)
        row = []
        for obj, m in zip(scene.objects, truth, strict=True):
            hit = next((a for o, a in found if o.color == obj.color), None)
            row.append(np.nan if hit is None else mask_iou(hit, m))
        per_scene.append(row)
    flat = np.array([v for r in per_scene for v in r])
    found_share = float(np.mean(~np.isnan(flat)))
    scores = np.nan_to_num(flat, nan=0.0)
    scene_means = np.array([np.mean(np.nan_to_num(r, nan=0.0)) for r in per_scene])
    boots = [scene_means[rng.integers(0, n, n)].mean() for _ in range(1000)]
    return MaskReliability(n, len(flat), found_share, float(scores.mean()),
                           (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))),
                           float(np.mean(scores >= 0.5)), degrade, flat)


def outline_rgb(rgb: np.ndarray, mask: Any, display_px: int = 256, colour: tuple[int, int, int] = (60, 255, 60)
                ) -> np.ndarray:
    """`rgb` (h, w, 3) uint8 upscaled (nearest) by an integer factor to about `display_px`, with the outline of
    `mask` ({coverage >= 0.5}, resized nearest to the picture) drawn one display pixel wide in `colour`."""
    from scipy import ndimage

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"rgb must be an (h, w, 3) uint8 array, got shape {rgb.shape} dtype {rgb.dtype}")
    display_px = V.check_int(display_px, "display_px", 1, MAX_SIZE)
    if (not isinstance(colour, (tuple, list)) or len(colour) != 3
            or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= 255 for c in colour)):
        raise ValueError(f"colour must be an (r, g, b) triple of integers from 0 to 255, got {colour!r}")
    mask = _as_maps(mask, "mask")[0].numpy()
    h, w = rgb.shape[:2]
    k = max(1, display_px // max(h, w))
    big = np.repeat(np.repeat(rgb, k, 0), k, 1).copy()
    m = np.asarray(mask) >= 0.5
    ys = (np.arange(h * k) * m.shape[0] // (h * k)).clip(0, m.shape[0] - 1)
    xs = (np.arange(w * k) * m.shape[1] // (w * k)).clip(0, m.shape[1] - 1)
    mb = m[ys][:, xs]
    edge = mb & ~ndimage.binary_erosion(mb, border_value=0)
    big[edge] = colour
    return big
