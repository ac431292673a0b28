"""Drawing the scenes world: sky, ground texture, things, light — at 4× and filtered down to 64×64.

`render(scene)` gives the picture (uint8, 64×64×3) and a mask per thing (what of it is visible); both follow from the
scene's seed alone. Textures are procedural (value noise, strokes) or carpets of small emoji (autumn leaves).
"""

from __future__ import annotations

import colorsys
import random
from functools import lru_cache
from pathlib import Path

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image

from .scenes import IMAGE_SIZE, Scene, Thing

SS = 2  # supersampling: drawn at 128 px (emoji resized with Lanczos), box-filtered to 64
BIG = IMAGE_SIZE * SS
EMOJI_DIR = Path(__file__).resolve().parents[1] / "assets" / "emoji"

#: sky gradients (top colour, horizon colour) and the light that tints everything under it
SKY = {
    "dawn": ((118, 146, 214), (250, 178, 150)),
    "day": ((64, 134, 228), (172, 212, 246)),
    "dusk": ((58, 38, 104), (242, 118, 58)),
    "night": ((6, 9, 30), (28, 40, 86)),
}
LIGHT = {"dawn": (1.0, 0.88, 0.86), "day": (1.0, 1.0, 1.0), "dusk": (0.95, 0.68, 0.5), "night": (0.5, 0.56, 0.8)}
HUES = {"red": 0.0, "blue": 0.6, "yellow": 0.14, "green": 0.33, "purple": 0.78}
#: the hue of the part of each colourable emoji that a colour word repaints
OWN_HUE = {"balloon": 0.98, "car": 0.98, "umbrella": 0.7, "house": 0.02, "tent": 0.3, "boat": 0.05}


@lru_cache(maxsize=64)
def _emoji(name: str) -> Image.Image:
    return Image.open(EMOJI_DIR / f"{name}.png").convert("RGBA")


@lru_cache(maxsize=2048)
def _sprite(name: str, color: str | None, w: int, h: int, angle: int = 0, flip: bool = False) -> Image.Image:
    """The emoji `name` at w×h px (4× scale), recoloured to `color`, rotated by `angle` degrees."""
    im = _emoji(name).resize((w, h), Image.LANCZOS)
    if color is not None and name in OWN_HUE:
        im = _recolor(im, OWN_HUE[name], color)
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    if angle:
        im = im.rotate(angle, resample=Image.BICUBIC, expand=True)
    return im


def _recolor(im: Image.Image, own_hue: float, color: str) -> Image.Image:
    """Repaint the saturated pixels near `own_hue` in `color` (keeping their shading); white desaturates them."""
    a = np.asarray(im).astype(np.float32) / 255
    hsv = rgb_to_hsv(a[..., :3])
    d = np.abs(hsv[..., 0] - own_hue)
    sel = (np.minimum(d, 1 - d) < 0.12) & (hsv[..., 1] > 0.3)
    if color == "white":
        hsv[..., 1] = np.where(sel, hsv[..., 1] * 0.08, hsv[..., 1])
        hsv[..., 2] = np.where(sel, np.minimum(1, hsv[..., 2] * 0.45 + 0.55), hsv[..., 2])
    else:
        hsv[..., 0] = np.where(sel, HUES[color], hsv[..., 0])
        if color == "yellow":
            hsv[..., 2] = np.where(sel, np.minimum(1, hsv[..., 2] * 0.7 + 0.35), hsv[..., 2])
    a[..., :3] = hsv_to_rgb(hsv)
    return Image.fromarray((a * 255).round().astype(np.uint8), "RGBA")


def _noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth value noise in [0, 1] at BIG×BIG: random values on a cells×cells grid, bilinearly enlarged."""
    g = (rng.random((cells + 1, cells + 1)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(g).resize((BIG, BIG), Image.BILINEAR), dtype=np.float32) / 255


def _sky(sky: str, horizon: int) -> np.ndarray:
    top, low = (np.array(c, np.float32) for c in SKY[sky])
    t = np.clip(np.arange(BIG, dtype=np.float32) / max(horizon, 1), 0, 1)[:, None, None]
    return np.broadcast_to(top + (low - top) * t ** 1.3, (BIG, BIG, 3)).copy()


def _ground(ground: str, rng: np.random.Generator, prng: random.Random, horizon: int) -> Image.Image:
    """The ground texture over the whole canvas (the sky is drawn over its upper part afterwards)."""
    n1, n2 = _noise(rng, 6), _noise(rng, 24)
    grain = _noise(rng, BIG // 2)
    y = np.arange(BIG, dtype=np.float32)[:, None]
    depth = np.clip((y - horizon) / (BIG - horizon), 0, 1)  # 0 at the horizon, 1 at the bottom
    if ground == "water":
        base = np.array((36, 96, 176), np.float32)
        waves = np.sin(y * (0.35 + 0.5 * depth) + 6 * n2) > 0.93
        img = base * (0.75 + 0.35 * depth[..., None] + 0.15 * n1[..., None])
        img[waves] = img[waves] * 0.5 + np.array((230, 240, 250)) * 0.5
    elif ground == "snow":
        img = np.array((236, 240, 250), np.float32) * (0.86 + 0.1 * n1 + 0.04 * grain)[..., None]
        img[..., :2] -= (14 * n2 * (n1 < 0.4))[..., None]  # bluish shadows
    elif ground == "sand":
        img = np.array((226, 198, 142), np.float32) * (0.88 + 0.08 * n1 + 0.08 * grain)[..., None]
        sea = y[:, 0] < horizon + 7 * SS  # a beach: the sea meets the sand a little below the horizon
        img[sea] = (np.array((46, 116, 186), np.float32) * (0.9 + 0.15 * n2[sea, :, None]))
    elif ground == "grass":
        img = np.array((74, 150, 58), np.float32) * (0.8 + 0.18 * n1 + 0.1 * grain)[..., None]
        img = _strokes(img, rng, 300, (40, 110, 36), (130, 196, 90), horizon)
    else:  # autumn leaves: a brown floor under a carpet of fallen and maple leaves
        img = np.array((120, 66, 28), np.float32) * (0.8 + 0.2 * n1 + 0.1 * grain)[..., None]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    if ground == "leaves":
        _leaf_carpet(out, prng, horizon)
        out = _autumn_hues(out)
    return out


def _autumn_hues(im: Image.Image) -> Image.Image:
    """Turn the maple leaves' pinkish reds to autumn's orange-reds (hue 0.8-1.0 -> 0.0-0.06)."""
    hsv = rgb_to_hsv(np.asarray(im, np.float32) / 255)
    pink = (hsv[..., 0] > 0.8) & (hsv[..., 1] > 0.25)
    hsv[..., 0] = np.where(pink, (hsv[..., 0] - 0.8) * 0.3, hsv[..., 0])
    return Image.fromarray((hsv_to_rgb(hsv) * 255).round().astype(np.uint8), "RGB")


def _strokes(img: np.ndarray, rng: np.random.Generator, n: int, dark, light, horizon: int) -> np.ndarray:
    """Short vertical blades of grass in two shades."""
    xs = rng.integers(0, BIG, n)
    ys = rng.integers(horizon, BIG, n)
    for x, y0, shade in zip(xs, ys, rng.random(n), strict=True):
        length = int((2 + 5 * (y0 - horizon) / max(BIG - horizon, 1)) * SS / 2)
        img[max(y0 - length, horizon):y0, x:x + 1] = dark if shade < 0.5 else light
    return img


def _leaf_carpet(canvas: Image.Image, rng: random.Random, horizon: int) -> None:
    """Scatter small fallen and maple leaves over the ground, larger towards the viewer."""
    for _ in range(150):
        y = rng.uniform(horizon - 4, BIG)
        depth = (y - horizon) / (BIG - horizon)
        s = int(SS * (4 + 6 * depth) * rng.uniform(0.8, 1.2))
        leaf = _sprite(rng.choice(("fallen_leaf", "maple_leaf")), None, s, s, rng.choice(range(0, 360, 30)),
                       rng.random() < 0.5)
        canvas.paste(leaf, (int(rng.uniform(-s / 2, BIG - s / 2)), int(y - s / 2)), leaf)


def _draw_order(things: tuple[Thing, ...]) -> list[int]:
    """Sky things first, then mountains, then everything else from far (higher) to near (lower on the canvas)."""
    def key(i: int) -> tuple[int, float]:
        t = things[i]
        layer = 0 if t.name in ("sun", "moon", "cloud", "star", "rainbow") else 1 if t.name == "mountain" else 2
        return layer, t.y + t.h / 2
    return sorted(range(len(things)), key=key)


def render(scene: Scene) -> tuple[np.ndarray, list[np.ndarray]]:
    """The picture of `scene` (uint8 64×64×3) and, per thing, its visible mask (bool 64×64)."""
    seed = scene.meta.get("seed", 0)
    rng, prng = np.random.default_rng(seed + 7), random.Random(seed + 11)
    horizon = int(scene.meta.get("horizon", 32) * SS)
    canvas = _ground(scene.ground, rng, prng, horizon).convert("RGBA")
    owner = np.full((BIG, BIG), -1, np.int16)
    order = _draw_order(scene.things)
    ground_layer = Image.new("RGBA", (BIG, BIG))
    sky_layer = Image.fromarray(_sky(scene.sky, horizon).astype(np.uint8), "RGB").convert("RGBA")
    for i in order:
        t = scene.things[i]
        w, h = int(t.w * SS), int(t.h * SS)
        sprite = _sprite(t.name, t.color, w, h, 0, bool(prng.random() < 0.5) and t.name in ("fox", "cat", "dog",
                                                                                          "rabbit", "car", "fish"))
        pos = (int(t.x * SS - w / 2), int(t.y * SS - h / 2))
        target = sky_layer if t.name in ("sun", "moon", "cloud", "star", "rainbow") else ground_layer
        target.alpha_composite(sprite, pos)
        alpha = np.zeros((BIG, BIG), bool)
        a = np.asarray(sprite)[..., 3] > 127
        x0, y0 = max(pos[0], 0), max(pos[1], 0)
        x1, y1 = min(pos[0] + w, BIG), min(pos[1] + h, BIG)
        alpha[y0:y1, x0:x1] = a[y0 - pos[1]:y1 - pos[1], x0 - pos[0]:x1 - pos[0]]
        owner[alpha] = i
    lit = _light(canvas, ground_layer, scene.sky)
    sky_mask = np.zeros((BIG, BIG), bool)
    sky_mask[:horizon] = True
    sky_np = np.asarray(sky_layer, np.float32)[..., :3]
    ground_np = np.asarray(lit, np.float32)[..., :3]
    ground_alpha = np.asarray(ground_layer)[..., 3:] / 255.0
    img = np.where(sky_mask[..., None], sky_np, ground_np)
    # things standing on the ground may rise into the sky: draw them (lit) over it
    things_lit = np.asarray(_light(ground_layer, None, scene.sky), np.float32)[..., :3]
    img = np.where(sky_mask[..., None], img * (1 - ground_alpha) + things_lit * ground_alpha, img)
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").resize((IMAGE_SIZE, IMAGE_SIZE),
                                                                                   Image.BOX)
    masks = []
    for i in range(len(scene.things)):
        m = (owner == i).reshape(IMAGE_SIZE, SS, IMAGE_SIZE, SS).mean(axis=(1, 3)) >= 0.5
        masks.append(m)
    return np.asarray(small), masks


def _light(base: Image.Image, over: Image.Image | None, sky: str) -> Image.Image:
    """`over` composited on `base`, then tinted by the light of `sky` (dusk warm and dim, night blue and dark)."""
    im = base.copy()
    if over is not None:
        im.alpha_composite(over)
    a = np.asarray(im, np.float32)
    a[..., :3] *= np.array(LIGHT[sky], np.float32)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGBA")


def thing_color_name(rgb: tuple[int, int, int]) -> str:
    """The nearest colour word to an RGB triple (for reading masks of recoloured things)."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    if s < 0.2:
        return "white"
    return min(HUES, key=lambda k: min(abs(HUES[k] - h), 1 - abs(HUES[k] - h)))
