"""The shapes world: a procedurally generated, captioned dataset of coloured shapes.

Every scene is drawn from a seed, so the same seed always gives the same image and caption.
Images are rendered at 4x resolution with PIL and box-filtered down, which anti-aliases the edges.

A scene holds one object (with a position word) or two objects (with a relation word).
Some colour x shape combinations never appear in training (`HELD_OUT`): the lesson
"the model does not memorise" asks the model to draw them anyway.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
EVAL_SEED = 10_000_000  # scenes from this seed on are never used in training: every evaluation draws from here
_SS = 4  # supersampling factor for anti-aliased rendering

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 205),
    "orange": (245, 140, 30),
    "white": (240, 240, 240),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 12),
    "gray": (105, 105, 105),
    "brown": (90, 58, 32),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
RELATIONS = ("left of", "right of", "above", "below")

#: colour x shape combinations that never appear in training scenes.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("red", "star"),
    ("blue", "cross"),
    ("yellow", "circle"),
    ("green", "triangle"),
    ("purple", "square"),
)

# Object radius (half the bounding-box side) in pixels at IMAGE_SIZE.
RADIUS = {"small": 4.5, "large": 7.0}
# Anchor centres of the one-object positions, in pixels.
ANCHORS = {
    "left": (8.5, 16.0),
    "right": (23.5, 16.0),
    "top": (16.0, 8.5),
    "bottom": (16.0, 23.5),
    "center": (16.0, 16.0),
}
# Caption variety: synonyms the text encoder has to learn are the same thing.
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
POSITION_PHRASES = {
    "left": ("on the left", "at the left", "in the left"),
    "right": ("on the right", "at the right", "in the right"),
    "top": ("at the top", "on the top", "in the top"),
    "bottom": ("at the bottom", "on the bottom", "in the bottom"),
    "center": ("in the center", "in the middle", "at the center"),
}
RELATION_PHRASES = {
    "left of": ("left of", "to the left of"),
    "right of": ("right of", "to the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
PREFIXES = ("", "", "", "a photo of ", "an image of ", "a picture of ")


@dataclass(frozen=True)
class ShapeObject:
    color: str
    shape: str
    size: str
    x: float  # centre, pixels
    y: float

    @property
    def position(self) -> str:
        """The one-object position word nearest to this object's centre."""
        return min(ANCHORS, key=lambda k: (ANCHORS[k][0] - self.x) ** 2 + (ANCHORS[k][1] - self.y) ** 2)


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    background: str
    relation: str | None = None  # for two objects: objects[0] <relation> objects[1]
    caption: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def describe_object(obj: ShapeObject, rng: random.Random | None, with_size: bool = True) -> str:
    """'a large red circle' (with random synonyms when `rng` is given)."""
    size = (rng.choice(SIZE_WORDS[obj.size]) if rng else obj.size) if with_size else None
    words = [w for w in (size, obj.color, obj.shape) if w]
    return f"{_article(words[0])} {' '.join(words)}"


def caption_for(scene: Scene, rng: random.Random | None = None, full: bool = False) -> str:
    """A caption of the scene. `rng=None` (or `full=True`) gives the canonical, complete caption."""
    r = rng if (rng is not None and not full) else None
    if len(scene.objects) == 1:
        obj = scene.objects[0]
        text = describe_object(obj, r, with_size=(r is None or r.random() < 0.85))
        if r is None or r.random() < 0.85:
            text += " " + (r.choice(POSITION_PHRASES[obj.position]) if r else POSITION_PHRASES[obj.position][0])
    else:
        a, b = scene.objects
        rel = r.choice(RELATION_PHRASES[scene.relation]) if r else scene.relation
        text = (
            f"{describe_object(a, r, with_size=(r is None or r.random() < 0.7))} {rel} "
            f"{describe_object(b, r, with_size=(r is None or r.random() < 0.7))}"
        )
    if r is not None and r.random() < 0.4:
        text += f" on a {scene.background} background"
    if r is not None:
        text = r.choice(PREFIXES) + text
    return text


def _pick_combo(rng: random.Random, held_out: str) -> tuple[str, str]:
    """A (colour, shape) pair; held_out='exclude' never returns a HELD_OUT pair, 'only' always does."""
    if held_out == "only":
        return rng.choice(HELD_OUT)
    while True:
        combo = (rng.choice(tuple(COLORS)), rng.choice(SHAPES))
        if held_out == "allow" or combo not in HELD_OUT:
            return combo


def sample_scene(seed: int, two_object_p: float = 0.5, held_out: str = "exclude") -> Scene:
    """Draw one scene (objects, background, caption) from `seed`, deterministically.

    held_out: 'exclude' (training data), 'allow', or 'only' (every object is a held-out combination).
    """
    if held_out not in ("exclude", "allow", "only"):
        raise ValueError(f"held_out must be 'exclude', 'allow' or 'only', got {held_out!r}")
    rng = random.Random(seed)
    background = rng.choice(tuple(BACKGROUNDS))
    jitter = lambda: rng.uniform(-1.5, 1.5)  # noqa: E731
    if rng.random() >= two_object_p:
        color, shape = _pick_combo(rng, held_out)
        size, pos = rng.choice(SIZES), rng.choice(POSITIONS)
        ax, ay = ANCHORS[pos]
        objects = (ShapeObject(color, shape, size, ax + jitter(), ay + jitter()),)
        relation = None
    else:
        relation = rng.choice(RELATIONS)
        (c1, s1), (c2, s2) = _pick_combo(rng, held_out), _pick_combo(rng, held_out)
        while c2 == c1:  # two objects of one colour would be ambiguous to describe and to judge
            c2, s2 = _pick_combo(rng, held_out)
        z1, z2 = rng.choice(SIZES), rng.choice(SIZES)
        across, along = 16.0 + rng.uniform(-4, 4), (8.5, 23.5)
        if relation in ("left of", "right of"):
            first, second = ((along[0], across), (along[1], across))
        else:
            first, second = ((across, along[0]), (across, along[1]))
        if relation in ("right of", "below"):
            first, second = second, first
        objects = (
            ShapeObject(c1, s1, z1, first[0] + jitter() * 0.5, first[1] + jitter() * 0.5),
            ShapeObject(c2, s2, z2, second[0] + jitter() * 0.5, second[1] + jitter() * 0.5),
        )
    scene = Scene(objects=objects, background=background, relation=relation)
    return Scene(objects, background, relation, caption=caption_for(scene, rng), meta={"seed": seed})


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        r *= 0.88  # equal area feel next to the circle
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r * 0.85), (cx - r, cy + r * 0.85)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
        return pts
    if shape == "cross":
        w = r * 0.36
        return [
            (cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w), (cx + w, cy + w),
            (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w), (cx - r, cy - w), (cx - w, cy - w),
        ]
    raise ValueError(f"unknown shape {shape!r}; allowed: {SHAPES}")


def render(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    """Draw a scene as an RGB PIL image of `size` x `size` pixels."""
    big = size * _SS
    scale = big / IMAGE_SIZE
    img = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        cx, cy, r = obj.x * scale, obj.y * scale, RADIUS[obj.size] * scale
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLORS[obj.color])
        else:
            draw.polygon(_polygon(obj.shape, cx, cy, r), fill=COLORS[obj.color])
    return img.resize((size, size), Image.Resampling.BOX)


# ------------------------------------------------------------------------------------------- condition maps
#: Colour of each shape class in a segmentation map (the background is SEGMENTATION_BACKGROUND). One fixed colour per
#: class, whatever the object's own colour: the map says *what kind* of thing is *where*, the prompt says the rest.
SEGMENTATION_COLORS: dict[str, tuple[int, int, int]] = {
    "circle": (255, 0, 0),
    "square": (0, 255, 0),
    "triangle": (0, 0, 255),
    "star": (255, 255, 0),
    "cross": (255, 0, 255),
}
SEGMENTATION_BACKGROUND = (0, 0, 0)
CONDITIONS = ("edges", "segmentation")


def _draw_shape(draw: ImageDraw.ImageDraw, obj: ShapeObject, scale: float, fill=None, outline=None,
                width: int = 1) -> None:
    cx, cy, r = obj.x * scale, obj.y * scale, RADIUS[obj.size] * scale
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    else:
        draw.polygon(_polygon(obj.shape, cx, cy, r), fill=fill, outline=outline, width=width)


def object_masks(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """Boolean (n_objects, size, size): the pixels each object covers at least half of (same geometry as `render`)."""
    big = size * _SS
    out = []
    for obj in scene.objects:
        img = Image.new("L", (big, big), 0)
        _draw_shape(ImageDraw.Draw(img), obj, big / IMAGE_SIZE, fill=255)
        cover = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
        out.append(cover >= 0.5)
    return np.stack(out) if out else np.zeros((0, size, size), dtype=bool)


def render_edges(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    """The edge map of a scene: each object's outline, white (about one pixel wide, anti-aliased) on black, RGB.

    Drawn from the scene's geometry (not detected from pixels), so it is exact: the same outline `render` fills.
    """
    big = size * _SS
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        _draw_shape(draw, obj, big / IMAGE_SIZE, outline=255, width=_SS)
    return img.resize((size, size), Image.Resampling.BOX).convert("RGB")


def render_segmentation(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    """The segmentation map of a scene: every pixel painted with its shape class's colour (`SEGMENTATION_COLORS`),
    the background black. A pixel belongs to the class that covers most of it (no blended colours)."""
    big = size * _SS
    ids = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(ids)
    for obj in scene.objects:  # later objects on top, as in `render`
        _draw_shape(draw, obj, big / IMAGE_SIZE, fill=1 + SHAPES.index(obj.shape))
    blocks = np.asarray(ids).reshape(size, _SS, size, _SS).transpose(0, 2, 1, 3).reshape(size, size, _SS * _SS)
    counts = np.stack([(blocks == k).sum(-1) for k in range(len(SHAPES) + 1)], axis=-1)
    counts = counts.astype(np.float32)
    counts[..., 0] -= 0.5  # a tie with the background goes to the object (as object_masks: coverage >= 1/2)
    label = counts.argmax(-1)
    palette = np.array([SEGMENTATION_BACKGROUND] + [SEGMENTATION_COLORS[s] for s in SHAPES], dtype=np.uint8)
    return Image.fromarray(palette[label])


def render_condition(scene: Scene, condition: str, size: int = IMAGE_SIZE) -> Image.Image:
    """The control map of `scene` for `condition` ('edges' or 'segmentation'), an RGB image of size x size."""
    if condition == "edges":
        return render_edges(scene, size)
    if condition == "segmentation":
        return render_segmentation(scene, size)
    raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")


def make_dataset(n: int, start_seed: int = 0, **kwargs) -> tuple[np.ndarray, list[str], list[Scene]]:
    """n scenes as a uint8 array (n, 32, 32, 3), their captions and the Scene records."""
    scenes = [sample_scene(start_seed + i, **kwargs) for i in range(n)]
    images = np.stack([np.asarray(render(s)) for s in scenes])
    return images, [s.caption for s in scenes], scenes


def vocabulary() -> list[str]:
    """Every word a caption can contain (the tokenizer's word list)."""
    words: set[str] = set(COLORS) | set(BACKGROUNDS) | set(SHAPES) | {"a", "an", "on", "background", "of"}
    for group in (SIZE_WORDS, POSITION_PHRASES, RELATION_PHRASES):
        for phrases in group.values():
            for p in phrases:
                words.update(p.split())
    for p in PREFIXES:
        words.update(p.split())
    # A few words learners are likely to type, so they read as words and not [UNK].
    words.update({"and", "with", "two", "one", "the", "in", "at", "to", "is", "picture", "photo", "image", "no"})
    return sorted(words)
