"""A judge for the scenes world: what a 64×64 picture holds — which things, how many, where, their colours, the ground
and the sky — read by a small convolutional network trained on rendered scenes (`explainer.train.scenes --stage judge`).

GenEval-style checks of a prompt against a picture follow from that reading (`check`): the things named are there,
in the number asked, with the colours asked, in the relation asked, on the ground and under the sky asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..latents import to_pixels
from .scenes import COLORED, COLORS, GROUNDS, IMAGE_SIZE, SKIES, THINGS, Scene

JUDGE_THINGS = THINGS + ("mountain",)
COUNT_CLASSES = 4  # 0, 1, 2, 3 or more
COLOR_THINGS = COLORED + ("fox",)
WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "scenes-judge"
MARGIN = 3.0  # px: "left of" needs the centres this far apart


class SceneJudgeNet(nn.Module):
    """A small CNN with CoordConv input and one head per question (counts, colours, centres, ground, sky)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())

        stem = nn.Sequential(nn.Conv2d(5, w, 4, stride=2, padding=1), nn.SiLU())  # 64 -> 32
        self.body = nn.Sequential(stem, block(w, w), nn.MaxPool2d(2), block(w, 2 * w), nn.MaxPool2d(2),
                                  block(2 * w, 4 * w))  # 32 -> 8
        feat = 4 * w * 2  # mean and max pooled
        n = len(JUDGE_THINGS)
        self.count = nn.Linear(feat, n * COUNT_CLASSES)
        self.color = nn.Linear(feat, len(COLOR_THINGS) * len(COLORS))
        self.where = nn.Conv2d(4 * w, n, 1)  # a heat map per thing over the 8×8 grid: its centre is the soft-argmax
        self.ground = nn.Linear(feat, len(GROUNDS))
        self.sky = nn.Linear(feat, len(SKIES))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (n, 3, 64, 64) in [-1, 1]."""
        b = x.shape[0]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, x.shape[2]), torch.linspace(-1, 1, x.shape[3]), indexing="ij")
        grid = torch.stack([xs, ys]).to(x)[None].expand(b, -1, -1, -1)
        f = self.body(torch.cat([x, grid], 1))
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        heat = self.where(f).flatten(2).softmax(-1)  # (n, things, 64)
        cells = (torch.arange(8, dtype=x.dtype, device=x.device) + 0.5) * IMAGE_SIZE / 8
        cx = (heat.view(b, -1, 8, 8).sum(2) * cells).sum(-1)
        cy = (heat.view(b, -1, 8, 8).sum(3) * cells).sum(-1)
        return {"count": self.count(pooled).view(b, -1, COUNT_CLASSES),
                "color": self.color(pooled).view(b, len(COLOR_THINGS), len(COLORS)),
                "xy": torch.stack([cx, cy], -1), "ground": self.ground(pooled), "sky": self.sky(pooled)}


def targets(scene: Scene) -> dict[str, np.ndarray]:
    """What the judge should read from a render of `scene` (centres of things drawn once; colours where drawn)."""
    n = len(JUDGE_THINGS)
    count = np.zeros(n, np.int64)
    xy = np.zeros((n, 2), np.float32)
    color = np.full(len(COLOR_THINGS), -1, np.int64)
    for t in scene.things:
        i = JUDGE_THINGS.index(t.name)
        count[i] += 1
        xy[i] = (t.x, t.y)
        if t.name in COLOR_THINGS and t.color:
            color[COLOR_THINGS.index(t.name)] = COLORS.index(t.color)
    return {"count": np.minimum(count, COUNT_CLASSES - 1), "xy": xy, "xy_mask": (count == 1).astype(np.float32),
            "color": color, "ground": np.int64(GROUNDS.index(scene.ground)), "sky": np.int64(SKIES.index(scene.sky))}


@dataclass
class Reading:
    """What the judge reads in one picture."""

    counts: dict[str, int]  # thing -> 1, 2 or 3 (3 or more); things not seen are left out
    colors: dict[str, str]  # colourable thing seen -> its colour
    centers: dict[str, tuple[float, float]]  # thing seen -> (x, y) in pixels
    ground: str
    sky: str

    def has(self, name: str) -> bool:
        return name in self.counts


@lru_cache(maxsize=2)
def load_judge(path: str | Path = WEIGHTS) -> SceneJudgeNet:
    """The trained judge (safetensors + config.json, never pickle)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no scenes judge in {path}: train it with "
                                "`python -m explainer.train.scenes --stage judge`")
    cfg = json.loads((path / "config.json").read_text())
    net = SceneJudgeNet(width=cfg["width"])
    net.load_state_dict(load_file(str(path / "model.safetensors")))
    return net.eval()


def read(images: np.ndarray, net: SceneJudgeNet | None = None, batch: int = 256) -> list[Reading]:
    """Read uint8 pictures (n, 64, 64, 3) (or one picture (64, 64, 3))."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, {IMAGE_SIZE}, {IMAGE_SIZE}, 3), got {images.dtype} "
                         f"{images.shape}")
    net = net or load_judge()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = to_pixels(images[i:i + batch])
            p = net(x)
            counts, colors = p["count"].argmax(-1).numpy(), p["color"].argmax(-1).numpy()
            xy, g, s = p["xy"].numpy(), p["ground"].argmax(-1).numpy(), p["sky"].argmax(-1).numpy()
            for j in range(len(x)):
                seen = {JUDGE_THINGS[k]: int(c) for k, c in enumerate(counts[j]) if c > 0}
                out.append(Reading(
                    counts=seen,
                    colors={t: COLORS[colors[j][k]] for k, t in enumerate(COLOR_THINGS) if t in seen},
                    centers={t: (float(xy[j][k][0]), float(xy[j][k][1])) for k, t in enumerate(JUDGE_THINGS)
                             if t in seen},
                    ground=GROUNDS[g[j]], sky=SKIES[s[j]]))
    return out


def relation_holds(a: tuple[float, float], b: tuple[float, float], relation: str) -> bool:
    """Whether centre `a` stands in `relation` to centre `b` (image y grows downwards)."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    return {"left of": dx < -MARGIN, "right of": dx > MARGIN, "above": dy < -MARGIN, "below": dy > MARGIN}[relation]


POSITION_X = {"left": (0, 26), "center": (20, 44), "right": (38, 64)}


def check(reading: Reading, scene: Scene) -> dict[str, bool]:
    """GenEval-style checks of one picture against the scene its prompt describes (only the questions it asks)."""
    out: dict[str, bool] = {"ground": reading.ground == scene.ground, "sky": reading.sky == scene.sky}
    things = [t for t in scene.things if t.name not in ("sun", "moon") or not scene.under]
    if scene.kind == "single":
        t = things[0]
        out["object"] = reading.has(t.name)
        if t.name in COLOR_THINGS and t.color:
            out["color"] = reading.colors.get(t.name) == t.color
        if scene.position in POSITION_X and reading.has(t.name):
            lo, hi = POSITION_X[scene.position]
            out["position"] = lo <= reading.centers[t.name][0] <= hi
        elif scene.position in POSITION_X:
            out["position"] = False
    elif scene.kind == "pair":
        a, b = things
        out["two_objects"] = reading.has(a.name) and reading.has(b.name)
        out["relation"] = out["two_objects"] and relation_holds(reading.centers[a.name], reading.centers[b.name],
                                                                 scene.relation)
        colored = [t for t in (a, b) if t.name in COLOR_THINGS and t.color]
        if colored:
            out["color_attribution"] = all(reading.colors.get(t.name) == t.color for t in colored)
    elif scene.kind == "count":
        t = things[0]
        out["counting"] = reading.counts.get(t.name, 0) == scene.count
    elif scene.kind == "forest":
        out["object"] = reading.counts.get("tree", 0) + reading.counts.get("pine", 0) >= 2
    elif scene.kind == "mountain":
        out["object"] = reading.has("mountain")
    return out


def thing_losses(things: dict[str, dict], enough: float = 0.9) -> dict[str, list[str]]:
    """Where the things of `experiments.scenes_eval.thing_study` are lost, least drawn first: "unet" (its round trips
    read right more often than its drawings, beyond noise), "decoder" (renders read ≥ `enough`, round trips less),
    "judge" (renders read less than `enough`: there a miss may be the judge's)."""
    order = sorted(things, key=lambda t: (things[t]["drawn"], t))
    return {"unet": [t for t in order if not things[t]["too_few"] and things[t]["gap_low"] > 0],
            "decoder": [t for t in order if things[t]["round_trip"] < enough <= things[t]["render"]],
            "judge": [t for t in order if things[t]["render"] < enough]}
