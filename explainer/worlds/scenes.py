"""The scenes world: captioned 64×64 scenes of real things — a fox in autumn leaves, a forest at dawn, a boat at night.

Every scene is drawn from a seed (the same seed always gives the same scene, caption and picture) out of Microsoft's
Fluent 3D emoji (MIT, vendored in `explainer/assets/emoji`), composed over a ground texture (autumn leaves, grass,
snow, sand, the sea) under a sky with the light of its time of day (dawn, day, dusk, night). `scenes_render` draws
them; this module holds the vocabulary, the truth of every scene and its captions.

Kinds of scene: one thing (with a position), two things with a relation (left of, right of, above, below), a count of
one thing (two, three), a forest (several trees), a beach (sand and sea), a mountain, a bare ground.
Some combinations never appear in training (`HELD_OUT`): the lesson "the model does not memorise" asks for them.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

IMAGE_SIZE = 64
EVAL_SEED = 10_000_000  # scenes from this seed on are never used in the model's training (the judge's: JUDGE_SEED)
# The judge's training scenes: from this seed on (past EVAL_SEED, so every combination, the held-out ones too: the judge
# is the measure, not the model, and must read a purple car the U-Net never saw), apart from the evaluation's seeds.
JUDGE_SEED = 50_000_000

# --- vocabulary -------------------------------------------------------------------------------------------------
ANIMALS = ("fox", "cat", "dog", "rabbit", "owl", "penguin", "frog")
PLANTS = ("tree", "pine", "cactus", "sunflower", "mushroom")
OBJECTS = ("house", "car", "tent", "umbrella")
FLIERS = ("balloon", "butterfly")  # float: above / below things, at the top or the bottom
SKY_THINGS = ("sun", "moon", "cloud", "star", "rainbow")
WATER_THINGS = ("boat", "fish")  # only on the sea
GROUND_THINGS = ANIMALS + PLANTS + OBJECTS
THINGS = GROUND_THINGS + FLIERS + SKY_THINGS + WATER_THINGS

GROUNDS = ("leaves", "grass", "snow", "sand", "water")
SKIES = ("dawn", "day", "dusk", "night")
COLORS = ("red", "blue", "yellow", "green", "purple", "white")
COLORED = ("balloon", "car", "umbrella", "house", "tent", "boat")  # recoloured; the fox is always "red"
SIZES = ("small", "large")
POSITIONS = ("left", "center", "right", "top", "bottom")  # top / bottom only for fliers
RELATIONS = ("left of", "right of", "above", "below")
COUNTS = {2: "two", 3: "three"}
COUNTABLE = ("fox", "cat", "dog", "rabbit", "penguin", "tree", "pine", "mushroom", "house", "car", "tent",
             "balloon", "butterfly", "cloud", "star", "boat", "fish")

#: what a thing is called in a caption, singular and plural
NAMES = {t: (t, t + "s") for t in THINGS}
NAMES.update({"pine": ("pine tree", "pine trees"), "fox": ("fox", "foxes"), "cactus": ("cactus", "cacti"),
              "butterfly": ("butterfly", "butterflies"), "fish": ("fish", "fish")})

#: combinations that never appear in training scenes (colour × thing, thing × ground)
HELD_OUT_COLORS: tuple[tuple[str, str], ...] = (("purple", "car"), ("green", "balloon"), ("yellow", "house"))
HELD_OUT_GROUNDS: tuple[tuple[str, str], ...] = (("penguin", "sand"), ("cat", "snow"))

# Caption variety (a fresh wording each time a scene is used).
GROUND_PHRASES = {
    "leaves": ("in autumn leaves", "in the autumn leaves", "on autumn leaves", "in fallen leaves"),
    "grass": ("on the grass", "in the grass"),
    "snow": ("in the snow", "on the snow"),
    "sand": ("on the beach", "on the sand", "at the beach"),
    "water": ("on the sea", "on the water", "in the sea"),
}
GROUND_ALONE = {"leaves": ("autumn leaves", "fallen leaves"), "grass": ("grass", "a field of grass"),
                "snow": ("snow", "a field of snow"), "sand": ("a beach",), "water": ("the sea", "the water")}
FOREST_GROUND = {"leaves": ("with autumn leaves", "in autumn"), "grass": ("with grass", "on the grass"),
                 "snow": ("in the snow", "with snow")}
SKY_PHRASES = {"dawn": ("at dawn", "at sunrise"), "day": ("in the day", "during the day"),
               "dusk": ("at dusk", "at sunset"), "night": ("at night",)}
POSITION_PHRASES = {"left": ("on the left",), "right": ("on the right",), "center": ("in the center", "in the middle"),
                    "top": ("at the top",), "bottom": ("at the bottom",)}
RELATION_PHRASES = {"left of": ("left of", "to the left of"), "right of": ("right of", "to the right of"),
                    "above": ("above", "over"), "below": ("below", "under")}
VERBS = {"sitting": ANIMALS, "standing": ANIMALS, "flying": ("butterfly", "owl"), "floating": ("balloon", "boat"),
         "swimming": ("fish",)}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
PREFIXES = ("", "", "", "a photo of ", "a picture of ", "an image of ")
SCENE_WORDS = ("forest", "snowy", "mountain", "beach")


@dataclass(frozen=True)
class Thing:
    """One drawn thing: what it is, its colour (None: its own), size word, centre and box in pixels at 64 px."""

    name: str
    color: str | None
    size: str
    x: float
    y: float
    w: float
    h: float


KINDS = ("single", "pair", "count", "forest", "beach", "mountain", "ground")  # what a scene shows
KIND_WEIGHTS = (34, 26, 10, 12, 7, 6, 5)  # how often sample_scene draws each


@dataclass(frozen=True)
class Scene:
    kind: str  # "single" | "pair" | "count" | "forest" | "beach" | "mountain" | "ground"
    things: tuple[Thing, ...]
    ground: str
    sky: str
    relation: str | None = None  # "pair": things[0] <relation> things[-1]; counts: the subject's copies come first
    position: str | None = None  # "single": where the thing is
    under: str | None = None  # "sun" / "moon": a light in the sky named by "under the sun" (the last thing)
    caption: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def subject(self) -> Thing | None:
        return self.things[0] if self.kind in ("single", "pair", "count") else None

    @property
    def count(self) -> int:
        return sum(t.name == self.things[0].name for t in self.things) if self.kind == "count" else 1


def scene_from_dict(d: dict) -> Scene:
    """The inverse of `Scene.to_dict` (scenes stored as JSON)."""
    return Scene(**{**d, "things": tuple(Thing(**t) for t in d["things"])})


def vocabulary() -> list[str]:
    """Every word any caption can use, sorted (the tokenizer's vocabulary)."""
    phrases = [p for d in (GROUND_PHRASES, GROUND_ALONE, FOREST_GROUND, SKY_PHRASES, POSITION_PHRASES, RELATION_PHRASES)
               for ps in d.values() for p in ps]
    phrases += [n for pair in NAMES.values() for n in pair] + list(VERBS) + list(PREFIXES) + list(COUNTS.values())
    phrases += [w for ws in SIZE_WORDS.values() for w in ws] + list(COLORS) + list(SCENE_WORDS)
    phrases += ["a", "an", "the", "and", "of", "in", "on", "at", "under", "with", "sun", "moon", "stars"]
    return sorted({w for p in phrases for w in p.split()})


# --- sampling the truth -----------------------------------------------------------------------------------------
def _box(name: str, size: str, rng: random.Random) -> tuple[float, float]:
    base = {"small": 15.0, "large": 24.0}[size] * rng.uniform(0.92, 1.08)
    if name in ("tree", "pine"):
        base *= 1.15
    if name == "rainbow":
        base *= 1.3
    return base, base


def _ground_y(horizon: float, size_px: float, rng: random.Random) -> float:
    """Centre height of a thing standing on the ground: its foot between just below the horizon and the bottom."""
    foot = rng.uniform(max(horizon + 0.55 * size_px, horizon + 8), 62.0)
    return foot - size_px / 2


def _x_for(position: str, rng: random.Random) -> float:
    return {"left": 15.0, "center": 32.0, "right": 49.0}.get(position, rng.uniform(14, 50)) + rng.uniform(-3, 3)


def _place(name: str, color: str | None, size: str, x: float, horizon: float, rng: random.Random,
           where: str = "ground") -> Thing:
    w, h = _box(name, size, rng)
    if where == "sky":
        y = rng.uniform(h / 2 + 1, max(h / 2 + 2, horizon - h / 2 - 1))
    elif where == "high":
        y = rng.uniform(h / 2 + 1, h / 2 + 8)
    elif where == "water":
        y = rng.uniform(horizon + h / 2 + 1, 62 - h / 2)
    else:
        y = _ground_y(horizon, h, rng)
    x = min(max(x, w / 2 + 1), 63 - w / 2)
    return Thing(name, color, size, round(x, 2), round(y, 2), round(w, 2), round(h, 2))


def _where(name: str) -> str:
    return "sky" if name in SKY_THINGS else "water" if name in WATER_THINGS else "ground"


def _color_for(name: str, rng: random.Random, held_out_ok: bool) -> str | None:
    if name == "fox":
        return "red"
    if name not in COLORED:
        return None
    while True:
        c = rng.choice(COLORS)
        if held_out_ok or (c, name) not in HELD_OUT_COLORS:
            return c


def _ground_for(names: tuple[str, ...], rng: random.Random, held_out_ok: bool) -> str:
    if any(n in WATER_THINGS for n in names):
        return "water"
    while True:
        g = rng.choice(GROUNDS[:4])
        if held_out_ok or not any((n, g) in HELD_OUT_GROUNDS for n in names):
            return g


def _sky_for(names: tuple[str, ...], rng: random.Random) -> str:
    if "sun" in names or "rainbow" in names:
        return rng.choice(("dawn", "day", "day", "dusk"))
    if "moon" in names or "star" in names:
        return rng.choice(("dusk", "night", "night"))
    return rng.choice(SKIES)


def _single(rng: random.Random, horizon: float, held_out_ok: bool) -> dict:
    name = rng.choice(THINGS)
    size = rng.choice(SIZES)
    position = rng.choice(("top", "bottom", "left", "right", "center") if name in FLIERS else POSITIONS[:3])
    x = _x_for(position, rng)
    where = {"top": "high", "bottom": "ground"}.get(position, "sky" if name in FLIERS else _where(name))
    thing = _place(name, _color_for(name, rng, held_out_ok), size, x, horizon, rng, where)
    return {"kind": "single", "things": (thing,), "position": position}


def _pair(rng: random.Random, horizon: float, held_out_ok: bool) -> dict:
    relation = rng.choice(RELATIONS)
    if relation in ("above", "below"):
        upper = rng.choice(FLIERS + SKY_THINGS[:3])
        lower = rng.choice(GROUND_THINGS)
        x = rng.uniform(16, 48)
        lo = _place(lower, _color_for(lower, rng, held_out_ok), rng.choice(SIZES), x, horizon, rng)
        up = _place(upper, _color_for(upper, rng, held_out_ok), "small", x + rng.uniform(-3, 3), horizon, rng,
                    "sky" if upper in SKY_THINGS else "high")
        if up.y + up.h / 2 > lo.y - lo.h / 2:  # keep the upper thing clear of the lower one
            up = Thing(up.name, up.color, up.size, up.x, max(up.h / 2 + 0.5, lo.y - lo.h / 2 - up.h / 2 - 1), up.w,
                       up.h)
        first, second = (up, lo) if relation == "above" else (lo, up)
    else:
        pool = WATER_THINGS if rng.random() < 0.1 else GROUND_THINGS
        a, b = rng.sample(pool, 2)
        xa, xb = rng.uniform(12, 26), rng.uniform(38, 52)
        left = _place(a, _color_for(a, rng, held_out_ok), rng.choice(SIZES), xa, horizon, rng, _where(a))
        right = _place(b, _color_for(b, rng, held_out_ok), rng.choice(SIZES), xb, horizon, rng, _where(b))
        first, second = (left, right) if relation == "left of" else (right, left)
    return {"kind": "pair", "things": (first, second), "relation": relation}


def _count(rng: random.Random, horizon: float, held_out_ok: bool) -> dict:
    name, n = rng.choice(COUNTABLE), rng.choice((2, 3))
    color = _color_for(name, rng, held_out_ok)
    xs = [12.0, 32.0, 52.0] if n == 3 else [18.0, 46.0]
    where = "sky" if name in FLIERS + SKY_THINGS else _where(name)
    things = tuple(_place(name, color, "small", x + rng.uniform(-2, 2), horizon, rng, where) for x in xs)
    extra = ()
    if name in FLIERS and rng.random() < 0.5:  # "two balloons above a house"
        below = rng.choice(("house", "tree", "tent", "car"))
        extra = (_place(below, _color_for(below, rng, held_out_ok), "large", 32 + rng.uniform(-4, 4), horizon,
                        rng),)
        things = tuple(Thing(t.name, t.color, t.size, t.x, min(t.y, extra[0].y - extra[0].h / 2 - t.h / 2 - 1),
                             t.w, t.h) for t in things)
    return {"kind": "count", "things": things + extra, "relation": "above" if extra else None}


def _forest(rng: random.Random, horizon: float, held_out_ok: bool) -> dict:
    kind = rng.choice(("tree", "pine", None))
    n = rng.randint(4, 6)
    xs = sorted(rng.uniform(6, 58) for _ in range(n))
    trees = [_place(kind or rng.choice(("tree", "pine")), None, rng.choice(SIZES), x, horizon, rng) for x in xs]
    animal = ()
    if rng.random() < 0.4:
        a = rng.choice(ANIMALS)
        animal = (_place(a, _color_for(a, rng, held_out_ok), "small", rng.uniform(18, 46), horizon, rng),)
        animal = (Thing(a, animal[0].color, "small", animal[0].x, 55.0, animal[0].w, animal[0].h),)
    return {"kind": "forest", "things": animal + tuple(trees)}


def sample_scene(seed: int, held_out_ok: bool | None = None) -> Scene:
    """The scene of `seed`: its kind, things, ground and sky, and the canonical caption (`caption_for`)."""
    rng = random.Random(seed)
    held_out_ok = seed >= EVAL_SEED if held_out_ok is None else held_out_ok
    horizon = rng.uniform(26, 36)
    kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
    if kind == "single":
        parts = _single(rng, horizon, held_out_ok)
    elif kind == "pair":
        parts = _pair(rng, horizon, held_out_ok)
    elif kind == "count":
        parts = _count(rng, horizon, held_out_ok)
    elif kind == "forest":
        parts = _forest(rng, horizon, held_out_ok)
    elif kind == "mountain":
        m = Thing("mountain", None, "large", rng.uniform(24, 40), horizon - 9, 44.0, 34.0)
        parts = {"kind": "mountain", "things": (m,)}
    else:
        parts = {"kind": kind, "things": ()}
    names = tuple(t.name for t in parts["things"])
    if kind == "beach":
        ground = "sand"
    elif kind == "ground":
        ground = rng.choice(GROUNDS)
    elif kind == "mountain":
        ground = rng.choice(("grass", "snow"))
    else:
        ground = _ground_for(names, rng, held_out_ok)
    sky = _sky_for(names, rng)
    if kind == "forest" and ground == "sand":
        ground = "grass"
    if kind != "ground" and not set(names) & set(SKY_THINGS) and rng.random() < 0.25:
        parts["under"] = "moon" if sky == "night" else "sun" if sky != "dusk" else rng.choice(("sun", "moon"))
        light = _place(parts["under"], None, "small", rng.uniform(10, 54), horizon, rng, "sky")
        parts["things"] = parts["things"] + (light,)
    scene = Scene(kind=kind, ground=ground, sky=sky, meta={"seed": seed, "horizon": round(horizon, 2)},
                  **{k: v for k, v in parts.items() if k != "kind"})
    return Scene(**{**scene.__dict__, "caption": caption_for(scene)})


# --- captions ---------------------------------------------------------------------------------------------------
def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


FOX_RED_SAID = 0.6  # how often a random caption says a fox is red
COLOR_SAID = 0.75  # ... and a recoloured thing's colour (people write "a boat" too; canonical captions always say it)


def describe(thing: Thing, rng: random.Random | None, count: int = 1, with_size: bool = True) -> str:
    """'a small red balloon' / 'three balloons' / 'the sun' (random synonyms and omissions when `rng` is given)."""
    if thing.name in ("sun", "moon", "rainbow") and count == 1:
        return f"the {thing.name}" if thing.name != "rainbow" else "a rainbow"
    words = []
    if with_size and count == 1 and thing.name not in SKY_THINGS + ("mountain",):
        if rng is None or rng.random() < 0.5:
            words.append(rng.choice(SIZE_WORDS[thing.size]) if rng else thing.size)
    if thing.color and (rng is None or rng.random() < (FOX_RED_SAID if thing.name == "fox" else COLOR_SAID)):
        words.append(thing.color)
    words.append(NAMES[thing.name][0 if count == 1 else 1])
    head = COUNTS[count] if count > 1 else _article(words[0])
    return f"{head} {' '.join(words)}"


def _verb(name: str, rng: random.Random | None) -> str:
    if rng is None:
        return ""
    verbs = [v for v, who in VERBS.items() if name in who]
    return f" {rng.choice(verbs)}" if verbs and rng.random() < 0.35 else ""


def _pick(options: tuple[str, ...], rng: random.Random | None) -> str:
    return rng.choice(options) if rng else options[0]


def caption_for(scene: Scene, rng: random.Random | None = None) -> str:
    """A caption of `scene`. `rng=None` gives the canonical, complete caption; with `rng` a fresh random wording."""
    r = rng
    keep = (lambda p: r.random() < p) if r else (lambda p: True)
    ground = f" {_pick(GROUND_PHRASES[scene.ground], r)}" if keep(0.8) else ""
    sky = f" {_pick(SKY_PHRASES[scene.sky], r)}" if keep(0.7) else ""
    k, things = scene.kind, scene.things[:-1] if scene.under else scene.things
    if scene.under and keep(0.7):
        sky = f" under the {scene.under}{sky if keep(0.4) else ''}"
    if k == "single":
        t = things[0]
        pos = f" {_pick(POSITION_PHRASES[scene.position], r)}" if keep(0.6 if r else 1) else ""
        text = f"{describe(t, r)}{_verb(t.name, r)}{pos}{ground}{sky}"
    elif k == "pair":
        a, b = things
        rel = _pick(RELATION_PHRASES[scene.relation], r)
        text = f"{describe(a, r)}{_verb(a.name, r)} {rel} {describe(b, r)}{ground}{sky}"
    elif k == "count":
        text = f"{describe(things[0], r, count=scene.count)}"
        if scene.relation:
            text += f" {_pick(RELATION_PHRASES['above'], r)} {describe(things[-1], r, with_size=False)}"
        text += f"{ground}{sky}"
    elif k == "forest":
        snowy = scene.ground == "snow" and r is not None and r.random() < 0.4
        base = "a snowy forest" if snowy else "a forest"
        g = f" {_pick(FOREST_GROUND[scene.ground], r)}" if ground and not snowy else ""
        if things and things[0].name not in ("tree", "pine"):
            text = f"{describe(things[0], r, with_size=False)} in {base}{g}{sky}"
        else:
            text = f"{base}{g}{sky}"
    elif k == "beach":
        text = f"a beach{sky}"
    elif k == "mountain":
        text = f"a mountain{ground}{sky}"
    else:
        text = f"{_pick(GROUND_ALONE[scene.ground], r)}{sky}"
    prefix = r.choice(PREFIXES) if r else ""
    return (prefix + text).strip()


def held_out_things(scene: Scene) -> list[Thing]:
    """The scene's things in a combination that training never shows (a purple car, a cat on snow)."""
    return [t for t in scene.things
            if (t.color, t.name) in HELD_OUT_COLORS or (t.name, scene.ground) in HELD_OUT_GROUNDS]


def held_out(scene: Scene) -> bool:
    """Whether the scene holds a combination that training never shows."""
    return bool(held_out_things(scene))
