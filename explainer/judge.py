"""The judge: read an image of the shapes world and say what is in it.

It measures prompt adherence of generated images. The pipeline is classical image analysis plus one tiny learned part:

1. background colour = median of the border pixels;
2. every pixel is explained as a blend of the background and one palette colour (the line background -> colour that
   fits it best); pixels at least half-way along that line are "core" pixels of that colour;
3. core pixels are grouped into connected components per colour; small fragments are merged into a neighbour, specks
   are dropped;
4. per object: a soft coverage map (alpha, 0..1, robust to anti-aliasing and blur), whose sum is the area and whose
   weighted mean is the centroid; the shape comes from a small MLP that reads a scale-normalised 16x16 patch of
   that map (weights in ``assets/judge.safetensors``, retrain with
   ``python -m explainer.train --stage judge --into-package``); the size
   comes from the area relative to the shape's area at radius 1; the position is the nearest anchor.

``judge(image)`` reports a :class:`Judgement`; ``judge_against(image, prompt)`` scores adherence to a prompt;
``parse_prompt(prompt)`` turns a caption into a :class:`PromptSpec`.
"""

from __future__ import annotations

import io
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from . import shapes
from .shapes import ANCHORS, BACKGROUNDS, COLORS, IMAGE_SIZE, RADIUS, SHAPES, Scene

WEIGHTS_PATH = Path(__file__).parent / "assets" / "judge.safetensors"

_PALETTE = np.array([COLORS[c] for c in COLORS], dtype=np.float64)  # (7, 3)
_COLOR_NAMES = tuple(COLORS)
_BG_PALETTE = np.array([BACKGROUNDS[b] for b in BACKGROUNDS], dtype=np.float64)
_BG_NAMES = tuple(BACKGROUNDS)

# Area of each shape at radius 1 as rendered (measured: PIL fills polygon edges, so ~5 % above the geometric area),
# and the centroid's offset below the shape's centre, in radii.
_UNIT_AREA = {"circle": 3.28, "square": 3.26, "triangle": 1.975, "star": 1.41, "cross": 2.55}
_CENTROID_DY = {"circle": 0.0, "square": 0.0, "triangle": 0.7 / 3, "star": 0.0, "cross": 0.0}
_SIZE_SPLIT = math.sqrt(RADIUS["small"] * RADIUS["large"])  # radius threshold between small and large

_CORE_ALPHA = 0.5  # a pixel at least this far along a colour's line is a core pixel of that colour
_SOFT_ALPHA = 0.12  # coverage below this counts as background
_MIN_AREA = 6.0  # objects with a smaller soft area are specks
_SAME_COLOUR = 45.0  # touching fragments whose interiors differ by less (RGB) are one object; palette colours >= 81
_PATCH = 16  # side of the classifier's input patch
_PATCH_SPAN = 1.05  # the patch covers centroid +- _PATCH_SPAN * sqrt(area)


@dataclass(frozen=True)
class JudgedObject:
    """One object found in an image. ``x``/``y`` are the estimated centre (as ``ShapeObject``), ``area`` in pixels."""

    color: str
    shape: str
    size: str
    position: str
    x: float
    y: float
    area: float
    shape_confidence: float = 1.0  # classifier probability of `shape`


@dataclass
class Judgement:
    """What the judge sees. ``relation`` relates ``objects[0]`` to ``objects[1]`` when there are exactly two."""

    objects: list[JudgedObject]
    background: str
    relation: str | None = None

    @property
    def count(self) -> int:
        return len(self.objects)

    def find(self, color: str | None = None, shape: str | None = None) -> JudgedObject | None:
        """The largest object with this colour and/or shape, or None."""
        for obj in self.objects:
            if (color is None or obj.color == color) and (shape is None or obj.shape == shape):
                return obj
        return None

    def describe(self) -> str:
        """A caption in the shapes-world style, e.g. 'a large red circle on the left on a black background'."""
        if not self.objects:
            return f"nothing on a {self.background} background"
        words = [f"a {o.size} {o.color} {o.shape}" for o in self.objects]
        if len(self.objects) == 1:
            text = f"{words[0]} {shapes.POSITION_PHRASES[self.objects[0].position][0]}"
        elif len(self.objects) == 2:
            text = f"{words[0]} {self.relation} {words[1]}"
        else:
            text = ", ".join(words)
        return f"{text} on a {self.background} background"


# ----------------------------------------------------------------------------------------------------------- input
def _to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or HxWx3 array (uint8, or float in 0..1) -> float64 32x32x3 array in 0..255."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"expected an HxWx3 image array, got shape {arr.shape}")
        arr = arr[..., :3]
        if arr.dtype != np.uint8:
            if arr.max() <= 1.0 + 1e-6:
                arr = arr * 255.0
            arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        image = Image.fromarray(np.ascontiguousarray(arr))
    elif not isinstance(image, Image.Image):
        raise TypeError(f"judge expects a PIL image or a numpy array, got {type(image).__name__}")
    image = image.convert("RGB")
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        down = image.size[0] > IMAGE_SIZE
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX if down else Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- segmentation
def _line_fit(diff: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position along (alpha) and distance from (residual) each line bg -> bg + dirs[k], for every pixel in `diff`."""
    alpha = diff @ dirs.T / (dirs**2).sum(1)  # (..., K)
    a = np.clip(alpha, 0.0, 1.25)
    resid = np.linalg.norm(diff[..., None, :] - a[..., None] * dirs, axis=-1)
    return alpha, resid


@dataclass
class _Blob:
    core: np.ndarray  # bool mask
    label: int  # palette index


def _segment(img: np.ndarray) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Background colour and a list of (palette index, soft alpha map) per object."""
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    bg = np.median(border, axis=0)
    # Per-channel noise std: the median length of a 3-D Gaussian vector is 1.54 sigma.
    noise = float(np.median(np.linalg.norm(border - bg, axis=1))) / 1.54
    diff = img - bg
    dist = np.linalg.norm(diff, axis=-1)
    dirs = _PALETTE - bg
    alpha, resid = _line_fit(diff, dirs)
    label = resid.argmin(-1)
    own_alpha = np.take_along_axis(alpha, label[..., None], -1)[..., 0]
    fg = (dist > max(18.0, 4.0 * noise)) & (own_alpha >= _CORE_ALPHA)

    eight = np.ones((3, 3), bool)
    blobs: list[_Blob] = []
    for k in np.unique(label[fg]):
        comps, n = ndimage.label(fg & (label == k), structure=eight)
        blobs += [_Blob(comps == i, int(k)) for i in range(1, n + 1)]

    def top_colour(mask: np.ndarray) -> np.ndarray:
        """Mean colour of the most saturated 40 % of a mask's pixels (its interior, not its blended edge)."""
        d = dist[mask]
        return img[mask][d >= np.percentile(d, 60)].mean(0)

    # Merge: same-colour fragments within 2 px of each other; touching fragments that are much smaller than their
    # neighbour or of nearly the same colour (an off-palette object whose pixels fall on both sides of a boundary).
    merged = True
    while merged and len(blobs) > 1:
        merged = False
        blobs.sort(key=lambda b: b.core.sum())
        for i, small in enumerate(blobs):
            near1 = ndimage.binary_dilation(small.core, eight)
            near2 = ndimage.binary_dilation(near1, eight)
            for big in blobs[i + 1 :]:
                same = big.label == small.label and (near2 & big.core).any()
                touching = (near1 & big.core).any()
                fragment = touching and (
                    small.core.sum() < 0.25 * big.core.sum()
                    or np.linalg.norm(top_colour(small.core) - top_colour(big.core)) < _SAME_COLOUR
                )
                if same or fragment:
                    big.core |= small.core
                    blobs.pop(i)
                    merged = True
                    break
            if merged:
                break

    if not blobs:
        return bg, []
    # Soft support: each pixel within 3 px of a blob's core goes to the nearest core.
    dists = np.stack([ndimage.distance_transform_edt(~b.core) for b in blobs])
    owner = dists.argmin(0)
    objects = []
    for i, blob in enumerate(blobs):
        # The object's colour: the palette line that best explains its most saturated core pixels.
        top = top_colour(blob.core) - bg
        a_top, r_top = _line_fit(top, dirs)
        r_top = np.where((a_top > 0.3) & (a_top < 1.5), r_top, np.inf)
        k = int(r_top.argmin()) if np.isfinite(r_top).any() else blob.label
        support = (owner == i) & (dists[i] <= 3.0)
        # Coverage along the line bg -> palette colour, rescaled so that the object's interior reads as 1 even
        # when its colour is dimmer or brighter than the palette's (as in generated images).
        interior = float(np.percentile(alpha[..., k][blob.core], 90))
        a = np.clip(alpha[..., k] / np.clip(interior, 0.7, 1.15), 0.0, 1.0) * support
        a[a < _SOFT_ALPHA] = 0.0
        if a.sum() >= _MIN_AREA:
            objects.append((k, a))
    return bg, objects


# ------------------------------------------------------------------------------------------------- shape classifier
def _patch(a: np.ndarray) -> np.ndarray:
    """A scale-normalised _PATCH x _PATCH resampling of the alpha map around its centroid."""
    area = a.sum()
    ys, xs = np.indices(a.shape)
    cy, cx = (a * ys).sum() / area, (a * xs).sum() / area
    half = _PATCH_SPAN * math.sqrt(area)
    grid = (np.arange(_PATCH) + 0.5) / _PATCH * 2 - 1
    gy, gx = np.meshgrid(cy + grid * half, cx + grid * half, indexing="ij")
    # Alpha is sampled at pixel centres: pixel (i, j) covers [j, j+1) x [i, i+1).
    return ndimage.map_coordinates(a, [gy - 0.5, gx - 0.5], order=1, mode="constant", cval=0.0)


_WEIGHTS: dict[str, np.ndarray] | None = None


def _load_weights() -> dict[str, np.ndarray]:
    global _WEIGHTS
    if _WEIGHTS is None:
        from safetensors.numpy import load_file

        if not WEIGHTS_PATH.exists():
            raise FileNotFoundError(f"{WEIGHTS_PATH} is missing; retrain it with "
                                    "`python -m explainer.train --stage judge --into-package`")
        _WEIGHTS = {k: v.astype(np.float64) for k, v in load_file(str(WEIGHTS_PATH)).items()}
    return _WEIGHTS


def _mlp(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """Logits of the shape classifier for a batch of flattened patches."""
    h = np.maximum(x @ w["w1"].T + w["b1"], 0.0)
    h = np.maximum(h @ w["w2"].T + w["b2"], 0.0)
    return h @ w["w3"].T + w["b3"]


def _classify(patches: np.ndarray) -> np.ndarray:
    """Shape probabilities (N, 5) for patches (N, _PATCH, _PATCH)."""
    logits = _mlp(patches.reshape(len(patches), -1), _load_weights())
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ------------------------------------------------------------------------------------------------------- judging
def relation_between(a: JudgedObject, b: JudgedObject) -> str:
    """Where `a` lies relative to `b`, along the axis on which they are further apart: 'left of', 'above', ..."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _nearest_anchor(x: float, y: float) -> str:
    return min(ANCHORS, key=lambda k: (ANCHORS[k][0] - x) ** 2 + (ANCHORS[k][1] - y) ** 2)


def judge(image: Image.Image | np.ndarray) -> Judgement:
    """Report the objects (largest first), background and, for two objects, their relation."""
    img = _to_array(image)
    bg, found = _segment(img)
    background = _BG_NAMES[int(np.linalg.norm(_BG_PALETTE - bg, axis=1).argmin())]
    if not found:
        return Judgement([], background, None)
    probs = _classify(np.stack([_patch(a) for _, a in found]))
    ys, xs = np.indices(img.shape[:2])
    objects = []
    for (k, a), p in zip(found, probs, strict=True):
        shape = SHAPES[int(p.argmax())]
        area = float(a.sum())
        radius = math.sqrt(area / _UNIT_AREA[shape])
        cx = float((a * xs).sum() / area) + 0.5  # +0.5: pixel i covers [i, i+1)
        cy = float((a * ys).sum() / area) + 0.5 - _CENTROID_DY[shape] * radius
        objects.append(
            JudgedObject(
                color=_COLOR_NAMES[k],
                shape=shape,
                size="small" if radius < _SIZE_SPLIT else "large",
                position=_nearest_anchor(cx, cy),
                x=round(cx, 2),
                y=round(cy, 2),
                area=round(area, 2),
                shape_confidence=round(float(p.max()), 3),
            )
        )
    objects.sort(key=lambda o: -o.area)
    relation = relation_between(objects[0], objects[1]) if len(objects) == 2 else None
    return Judgement(objects, background, relation)


# ---------------------------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class ObjectSpec:
    """One object a prompt asks for; None where the prompt does not say."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt asks for: objects in mention order, and `relation` of objects[0] to objects[1]."""

    objects: tuple[ObjectSpec, ...]
    relation: str | None = None
    background: str | None = None
    text: str = field(default="", compare=False)


_SIZE_SYNONYMS = {w: size for size, words in shapes.SIZE_WORDS.items() for w in words}
_SIZE_SYNONYMS.update({"huge": "large", "smaller": "small", "larger": "large", "bigger": "large"})
_COLOR_SYNONYMS = {c: c for c in COLORS} | {"grey": "gray", "violet": "purple"}
_BG_SYNONYMS = {b: b for b in BACKGROUNDS} | {"grey": "gray"}
_SHAPE_SYNONYMS = {s: s for s in SHAPES} | {s + "s": s for s in SHAPES} | {"plus": "cross", "box": "square"}
_POSITION_WORDS = {"left": "left", "right": "right", "top": "top", "bottom": "bottom", "center": "center"}
_POSITION_WORDS |= {"middle": "center", "centre": "center"}
# Longest first, so "to the left of" wins over "left of".
_RELATION_WORDS = sorted(
    ((p, rel) for rel, phrases in shapes.RELATION_PHRASES.items() for p in phrases),
    key=lambda t: -len(t[0]),
)
_RELATION_RE = re.compile(r"\b(" + "|".join(re.escape(p) for p, _ in _RELATION_WORDS) + r")\b")
_BACKGROUND_RE = re.compile(r"\b(?:on|with|against)\s+(?:an?\s+|the\s+)?(\w+)\s+background\b")
_POSITION_RE = re.compile(r"\b(?:on|at|in|to)\s+the\s+(left|right|top|bottom|center|centre|middle)\b")


def _parse_object(text: str) -> ObjectSpec:
    pos = _POSITION_RE.search(text)
    position = _POSITION_WORDS[pos.group(1)] if pos else None
    if pos:
        text = text[: pos.start()] + text[pos.end() :]
    color = shape = size = None
    for word in text.split():
        color = color or _COLOR_SYNONYMS.get(word)
        shape = shape or _SHAPE_SYNONYMS.get(word)
        size = size or _SIZE_SYNONYMS.get(word)
    return ObjectSpec(color, shape, size, position)


def parse_prompt(prompt: str | Scene) -> PromptSpec:
    """Parse a shapes-world caption (or take a Scene) into what it asks for.

    >>> spec = parse_prompt("a photo of a big red circle over a tiny blue star on a gray background")
    >>> spec.relation, spec.background, spec.objects[1]
    ('above', 'gray', ObjectSpec(color='blue', shape='star', size='small', position=None))
    """
    if isinstance(prompt, Scene):
        one = len(prompt.objects) == 1
        objs = tuple(ObjectSpec(o.color, o.shape, o.size, o.position if one else None) for o in prompt.objects)
        return PromptSpec(objs, prompt.relation, prompt.background, prompt.caption)
    text = re.sub(r"[^a-z ]+", " ", prompt.lower())
    text = " ".join(text.split())
    background = None
    bg = _BACKGROUND_RE.search(text)
    if bg and bg.group(1) in _BG_SYNONYMS:
        background = _BG_SYNONYMS[bg.group(1)]
        text = (text[: bg.start()] + text[bg.end() :]).strip()
    rel = _RELATION_RE.search(text)
    if rel:
        relation = dict(_RELATION_WORDS)[rel.group(1)]
        parts = (text[: rel.start()], text[rel.end() :])
        objects = tuple(_parse_object(p) for p in parts)
        return PromptSpec(objects, relation, background, prompt)
    return PromptSpec((_parse_object(text),), None, background, prompt)


def _match(judgement: Judgement, spec: ObjectSpec, exclude: JudgedObject | None = None) -> JudgedObject | None:
    """The judged object that best fits `spec`: colour and shape, else colour, else shape, else the largest."""
    candidates = [o for o in judgement.objects if o is not exclude]
    for keys in (("color", "shape"), ("color",), ("shape",), ()):
        for o in candidates:
            if all(getattr(spec, k) is None or getattr(o, k) == getattr(spec, k) for k in keys):
                return o
    return None


def _eq(asked: str | None, seen: JudgedObject | None, attr: str) -> bool | None:
    """None when the prompt does not ask for `attr`, else whether the matched object has it."""
    if asked is None:
        return None
    return seen is not None and getattr(seen, attr) == asked


def judge_against(image: Image.Image | np.ndarray, scene_or_prompt: str | Scene | PromptSpec) -> dict[str, bool | None]:
    """Score how well `image` follows a prompt (a caption string, a Scene or a PromptSpec).

    One object: keys color, shape, size, position, count, all. Two objects: color and shape (each named object's
    colour / shape is present), size, objects (both colour+shape pairs present), relation (the two named objects
    stand in the asked relation), count, all. A key is None when the prompt does not ask for it (e.g. no size word);
    `all` is True when every asked key is True. `background` is scored only when the prompt names one.
    """
    spec = scene_or_prompt if isinstance(scene_or_prompt, PromptSpec) else parse_prompt(scene_or_prompt)
    j = judge(image)
    out: dict[str, bool | None] = {}
    if len(spec.objects) == 1:
        want = spec.objects[0]
        seen = _match(j, want)
        for attr in ("color", "shape", "size", "position"):
            out[attr] = _eq(getattr(want, attr), seen, attr)
    else:
        a_spec, b_spec = spec.objects[:2]
        a = _match(j, a_spec)
        b = _match(j, b_spec, exclude=a)
        pairs = ((a_spec, a), (b_spec, b))
        for attr in ("color", "shape", "size"):
            checks = [_eq(getattr(s, attr), o, attr) for s, o in pairs]
            out[attr] = None if all(c is None for c in checks) else all(c is not False for c in checks)
        out["objects"] = all(
            o is not None and (s.color in (None, o.color)) and (s.shape in (None, o.shape)) for s, o in pairs
        )
        out["relation"] = (
            None
            if spec.relation is None
            else (a is not None and b is not None and relation_between(a, b) == spec.relation)
        )
    out["count"] = j.count == len(spec.objects)
    if spec.background is not None:
        out["background"] = j.background == spec.background
    out["all"] = all(v is not False for v in out.values())
    return out


# ------------------------------------------------------------------------------------------- training the classifier
def _render_custom(objs: list[tuple[str, str, float, float, float, float]], background: str) -> Image.Image:
    """Like shapes.render, but with any radius and a rotation: objs = (color, shape, x, y, radius, angle)."""
    ss = 4
    img = Image.new("RGB", (IMAGE_SIZE * ss, IMAGE_SIZE * ss), BACKGROUNDS[background])
    draw = ImageDraw.Draw(img)
    for color, shape, x, y, r, angle in objs:
        cx, cy, r = x * ss, y * ss, r * ss
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLORS[color])
        else:
            c, s = math.cos(angle), math.sin(angle)
            pts = [
                (cx + (px - cx) * c - (py - cy) * s, cy + (px - cx) * s + (py - cy) * c)
                for px, py in shapes._polygon(shape, cx, cy, r)
            ]
            draw.polygon(pts, fill=COLORS[color])
    return img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def degrade(image: Image.Image, blur: float, noise: float, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur of radius `blur` then Gaussian noise of std `noise` (0..255 units): a stand-in for model output."""
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(image, dtype=np.float64)
    if noise > 0:
        arr = arr + rng.normal(0.0, noise, arr.shape)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8))


def _augment(image: Image.Image, rng: random.Random, nrng: np.random.Generator) -> Image.Image:
    """A random mix of colour shift, blur, noise and JPEG compression (training only)."""
    if rng.random() < 0.3:
        arr = np.asarray(image, dtype=np.float64) * rng.uniform(0.8, 1.1) + nrng.normal(0.0, 12.0, 3)
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    image = degrade(image, rng.uniform(0.0, 1.6), rng.uniform(0.0, 15.0), nrng)
    if rng.random() < 0.25:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=rng.randint(30, 95))
        image = Image.open(buf).convert("RGB")
    return image


def _training_patches(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Patches and shape labels from rendered objects of random radius, colour, background, offset and degradation."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    xs, ys = [], []
    while len(xs) < n:
        shape_i = len(xs) % len(SHAPES)
        radius = rng.uniform(3.6, 8.5)
        angle = rng.gauss(0.0, 0.06) if rng.random() < 0.5 else 0.0
        obj = (
            rng.choice(_COLOR_NAMES),
            SHAPES[shape_i],
            16 + rng.uniform(-3, 3),
            16 + rng.uniform(-3, 3),
            radius,
            angle,
        )
        img = _render_custom([obj], rng.choice(_BG_NAMES))
        if rng.random() < 0.75:
            img = _augment(img, rng, nrng)
        _, found = _segment(np.asarray(img, dtype=np.float64))
        if len(found) != 1:
            continue
        xs.append(_patch(found[0][1]))
        ys.append(shape_i)
    return np.stack(xs).astype(np.float32), np.array(ys)
