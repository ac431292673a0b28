"""Lesson 13's challenges on the scenes model, each with something to find, measured over seeds.

Every challenge draws a few prompts (or one prompt at a few CFG scales) with the same seeds, reads every picture with
the scenes judge, and compares the conditions seed by seed: the seed is the unit that was drawn, so the intervals
resample seeds (`verdicts.compare`, paired). What the lesson tells a student to look for is rendered from these
verdicts, never typed.

* `two_things`   -- one thing alone ("a cat") against two in one picture ("a cat left of a tree"): how often the
  judge finds what was named;
* `cfg_parts`    -- the article's fox at CFG 1 and 7.5: is the fox there, is the ground the leaves asked for;
* `light`        -- the same thing at night and in the day: how bright the picture is, which sky the judge reads;
* the seed challenge reuses lesson 10's `scenes_seeds.layout_study` on a few things and seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import verdicts as vd
from ..worlds.scenes_judge import Reading, read
from .scenes_eval import generate

SEEDS = tuple(range(12))  # 12 seeds: 8 or more units give an interval
TWO_THINGS = ("fox", "tree")  # challenge 1: "a fox" alone, then "a fox left of a tree"
UNIT = "seeds (paired: the same seed under both conditions)"


@dataclass
class Drawn:
    """Pictures of a few conditions (label -> prompt, CFG), each drawn with every seed, and the judge's readings."""

    prompts: dict[str, str]
    cfgs: dict[str, float]
    seeds: list[int]
    steps: int
    images: dict[str, np.ndarray] = field(repr=False)  # label -> (seeds, h, w, 3) uint8
    readings: dict[str, list[Reading]] = field(repr=False)

    def found(self, label: str, *names: str) -> list[float]:
        """Per seed: 1 when the judge finds every one of `names` in the picture, else 0."""
        return [float(all(r.has(n) for n in names)) for r in self.readings[label]]

    def ground(self, label: str, ground: str) -> list[float]:
        """Per seed: 1 when the judge reads `ground` as the picture's ground."""
        return [float(r.ground == ground) for r in self.readings[label]]

    def sky(self, label: str, sky: str) -> list[float]:
        """Per seed: 1 when the judge reads `sky` as the picture's sky."""
        return [float(r.sky == sky) for r in self.readings[label]]

    def brightness(self, label: str) -> list[float]:
        """Per seed: the picture's mean pixel value, 0 (black) to 255 (white)."""
        return [float(im.mean()) for im in self.images[label]]

    def figure(self, what: str, per_row: int = 6) -> dict[str, Any]:
        """`plots.plot_images` arguments: a row of pictures per condition and block of `per_row` seeds (so 64 px
        pictures stay large enough to read), labelled with its prompt, CFG and seeds, what the judge read under each
        picture, and a title that names the seeds and steps."""
        labels = list(self.prompts)
        blocks = [range(i, min(i + per_row, len(self.seeds))) for i in range(0, len(self.seeds), per_row)]
        rows, row_labels, cell_labels = [], [], []
        for b in blocks:
            seeds = (f"seed\u00a0{self.seeds[b[0]]}" if len(b) == 1 else  # no-break spaces: "seeds 6-11" stays whole
                     f"seeds\u00a0{self.seeds[b[0]]}\u2013{self.seeds[b[-1]]}")
            for k in labels:
                rows.append([self.images[k][i] for i in b])
                row_labels.append(f"\u201c{self.prompts[k]}\u201d, CFG\u00a0{self.cfgs[k]:g}, {seeds}")
                cell_labels.append([describe(self.readings[k][i]) for i in b])
        return {"rows": rows, "row_labels": row_labels, "cell_labels": cell_labels, "cell": 1.5,
                "title": f"{what}: seeds {self.seeds[0]}\u2013{self.seeds[-1]}, {self.steps} steps; in each pair of "
                         "rows the columns share a seed; under each picture: what the judge reads"}


def describe(r: Reading) -> str:
    """What the judge reads in one picture, short: its things (a count before a thing read more than once; "none"),
    then on a second line its ground and sky."""
    things = ", ".join(f"{n}" if c == 1 else f"{c} {n}" for n, c in r.counts.items()) or "none"
    return f"{things}\n{r.ground}, {r.sky}"


def draw(pipe: Any, conditions: Sequence[tuple[str, str, float]], seeds: Sequence[int] = SEEDS, steps: int = 20,
         judge: Any = None) -> Drawn:
    """Every condition (label, prompt, CFG) with every seed, read by the scenes judge (None: the shipped one)."""
    seeds = list(seeds)
    if len(seeds) < 1 or not conditions:
        raise ValueError("draw needs at least one condition and one seed")
    images, readings = {}, {}
    for label, prompt, cfg in conditions:
        images[label] = generate(pipe, [prompt] * len(seeds), seeds, steps, cfg)
        readings[label] = read(images[label], judge)
    return Drawn({c[0]: c[1] for c in conditions}, {c[0]: float(c[2]) for c in conditions}, seeds, int(steps), images,
                 readings)


# ------------------------------------------------------------------------------------------------- the challenges
def two_things(pipe: Any, one: str = "a fox", two: str = "a fox left of a tree", seeds: Sequence[int] = SEEDS,
               steps: int = 20, cfg: float = 7.5) -> Drawn:
    """Challenge 1: one thing alone, and the same thing with a second one in a relation, at the same seeds."""
    return draw(pipe, [("one", one, cfg), ("two", two, cfg)], seeds, steps)


def cfg_parts(pipe: Any, prompt: str = "a red fox sitting in autumn leaves", scales: Sequence[float] = (1.0, 7.5),
              seeds: Sequence[int] = SEEDS, steps: int = 20) -> Drawn:
    """Challenge 2: one prompt at a low and a usual CFG scale, the same seeds."""
    return draw(pipe, [(f"cfg {s:g}", prompt, s) for s in scales], seeds, steps)


def light(pipe: Any, thing: str = "a fox", skies: Sequence[tuple[str, str]] = (("day", "in the day"),
                                                                              ("night", "at night")),
          seeds: Sequence[int] = SEEDS, steps: int = 20, cfg: float = 7.5) -> Drawn:
    """Challenge 4: the same thing under two skies (sky -> its words), the same seeds."""
    return draw(pipe, [(sky, f"{thing} {words}", cfg) for sky, words in skies], seeds, steps)


# ------------------------------------------------------------------------------------------------- verdicts
def two_things_verdict(d: Drawn, first: str = TWO_THINGS[0], second: str = TWO_THINGS[1]) -> vd.Verdict:
    one, both = d.found("one", first), d.found("two", first, second)
    return vd.compare(f"one thing alone is drawn more often than two in one picture (the judge finds the {first} "
                      f"in {d.prompts['one']!r} vs both things in {d.prompts['two']!r})", one, both,
                      labels=("one thing", "both things"), percent=True, unit=UNIT)


def cfg_verdicts(d: Drawn, thing: str = "fox", ground: str = "leaves") -> list[vd.Verdict]:
    low, high = list(d.prompts)[0], list(d.prompts)[-1]
    lo, hi = d.cfgs[low], d.cfgs[high]
    return [vd.compare(f"CFG {hi:g} draws the {thing} more often than CFG {lo:g} ({d.prompts[low]!r})",
                       d.found(high, thing), d.found(low, thing), labels=(f"CFG {hi:g}", f"CFG {lo:g}"),
                       percent=True, unit=UNIT),
            vd.proportion(f"CFG {lo:g} already draws the ground the prompt asks ({ground})",
                          int(sum(d.ground(low, ground))), len(d.seeds), threshold=0.5, what="ground read right",
                          unit="seeds")]


def light_verdicts(d: Drawn) -> list[vd.Verdict]:
    day, night = list(d.prompts)
    out = [vd.compare(f"{d.prompts[night]!r} is darker than {d.prompts[day]!r} (mean pixel value, 0-255)",
                      d.brightness(day), d.brightness(night), labels=(day, night), digits=1, unit=UNIT)]
    for sky in (day, night):
        out.append(vd.proportion(f"the judge reads the sky asked in {d.prompts[sky]!r}", int(sum(d.sky(sky, sky))),
                                 len(d.seeds), threshold=0.5, what="sky read right", unit="seeds"))
    return out


def share(values: Sequence[float]) -> str:
    """k/n of 0/1 values, as text ("7/12")."""
    return f"{int(sum(values))}/{len(values)}"
