"""Lesson 4 on real things: noise in, picture out, on the scenes model. Does the layout come first and the detail
later?

* `spectrum_study`: the radially averaged power spectrum (numpy's FFT) of the predicted clean image x0, decoded, at
  every denoising step of traced runs (prompts x seeds), split into a coarse, a middle and a fine band of spatial
  frequency; for each band, the step from which its power stays within `tol` of its final value, and the step from
  which its content (the band of x0 minus the final picture) stays within `tol` of the final picture's band. The
  prompt is the unit: intervals resample prompts, never runs as if they were independent.
* `swap_study`: prompt A (a red fox in autumn leaves, on one side, under one sky) for the first k steps and prompt B
  (another animal, the other side, another ground and sky) for the rest; which prompt the final picture follows, for
  its coarse layout (judge-free: the 8 x 8 brightness of the all-A and the all-B picture of the same seed) and, read
  by the scenes judge, its thing, ground and sky. The prompt pair is the unit.
* `i2i_study`: image-to-image from A's pictures towards B at several strengths, measured the same way.

The generation mechanics (decoding x0 per step, the step callback that swaps the prompt, the img2img pipeline) are
`denoising`'s, shared with the shapes version of the lesson.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import verdicts as vd
from ..trace import trace_batch
from ..worlds.scenes import ANIMALS, Scene
from ..worlds.scenes_judge import read
from .denoising import decoded_x0, img2img_images, one_object_prompts, shapes_image, swap_images
from .scenes_pictures import find_scenes, recaption
from .scenes_seeds import coarse

#: band edges in cycles per pixel: coarse below 1/16 (periods of 16 px and more: the latent grid's own scale at a VAE
#: factor of 8), middle 1/16 .. 1/4, fine above 1/4 (periods under 4 px: edges, fur, leaves)
BAND_EDGES = (1 / 16, 1 / 4)
BANDS = ("coarse", "middle", "fine")
TOL = 0.10  # a band has settled when it stays within 10 % of its final value
ATTRS = ("layout", "thing", "ground", "sky")


# ------------------------------------------------------------------------------------------- the spectrum
def radial_frequency(h: int, w: int) -> np.ndarray:
    """(h, w): each FFT bin's spatial frequency, in cycles per pixel (0 .. 0.5 * sqrt 2)."""
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    return np.sqrt(fy ** 2 + fx ** 2)


def power_spectrum(images: np.ndarray) -> np.ndarray:
    """|FFT|^2 of pictures (..., h, w, 3), uint8 or [0, 1] floats, each colour channel minus its mean (the picture's
    average colour is no structure), summed over the channels: (..., h, w)."""
    x = np.asarray(images, dtype=np.float64)
    if np.asarray(images).dtype == np.uint8:
        x = x / 255.0
    x = x - x.mean(axis=(-3, -2), keepdims=True)
    f = np.fft.fft2(x, axes=(-3, -2))
    return (np.abs(f) ** 2).sum(-1) / (x.shape[-3] * x.shape[-2])


def radial_profile(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The radially averaged power spectrum: (frequencies in cycles per pixel, mean power per ring (..., rings)),
    rings one frequency step (1 / width) wide, from the lowest non-zero frequency to the Nyquist frequency 0.5."""
    p = power_spectrum(images)
    h, w = p.shape[-2:]
    ring = np.rint(radial_frequency(h, w) * w).astype(int)
    rings = np.arange(1, w // 2 + 1)
    flat, idx = p.reshape(*p.shape[:-2], -1), ring.ravel()
    prof = np.stack([flat[..., idx == r].mean(-1) for r in rings], -1)
    return rings / w, prof


def band_masks(h: int, w: int, edges: Sequence[float] = BAND_EDGES) -> list[np.ndarray]:
    """One boolean (h, w) mask per band (coarse, middle, fine), the zero frequency in none."""
    f = radial_frequency(h, w)
    lo, hi = edges
    return [(f > 0) & (f <= lo), (f > lo) & (f <= hi), f > hi]


def band_power(images: np.ndarray, edges: Sequence[float] = BAND_EDGES) -> np.ndarray:
    """The power of pictures (..., h, w, 3) in each band: (..., 3)."""
    p = power_spectrum(images)
    return np.stack([p[..., m].sum(-1) for m in band_masks(*p.shape[-2:], edges)], -1)


def band_error(frames: np.ndarray, edges: Sequence[float] = BAND_EDGES) -> np.ndarray:
    """Per step (frames (steps, h, w, 3), the last one final) and band: the power of (frame - final) in the band,
    relative to the final picture's power in it -- 0 once the band's content is the final one."""
    x = np.asarray(frames, dtype=np.float64)
    diff = band_power((x - x[-1:]) / (255.0 if np.asarray(frames).dtype == np.uint8 else 1.0), edges)
    final = band_power(frames[-1:], edges)
    return diff / np.maximum(final, 1e-12)


def fine_part(diff: np.ndarray, edge: float = BAND_EDGES[1]) -> np.ndarray:
    """The part of a difference picture (h, w, 3), floats, in the fine band (periods under 4 px: texture, edges), by
    FFT: the rest (`diff - fine_part(diff)`) is the coarse and middle bands and the mean shift, orthogonal to it."""
    mask = radial_frequency(*diff.shape[:2]) > edge
    return np.fft.ifft2(np.fft.fft2(diff, axes=(0, 1)) * mask[..., None], axes=(0, 1)).real


def coarse_fine_rms(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """RMS (0..1) of the difference of two uint8 pictures, split at the fine band's edge: (coarse: periods of 4 px
    and more, the mean shift included; fine: periods under 4 px). The two squared add up to the whole RMSE squared."""
    d = (a.astype(np.float64) - b.astype(np.float64)) / 255.0
    fine = fine_part(d)
    return float(np.sqrt(((d - fine) ** 2).mean())), float(np.sqrt((fine ** 2).mean()))


def settles_at(deviation: np.ndarray, tol: float = TOL) -> int:
    """The first step (1-based) from which `deviation` stays at or below `tol` until the end."""
    above = np.nonzero(np.asarray(deviation) > tol)[0]
    return int(above[-1] + 2) if len(above) else 1


@dataclass
class SpectrumStudy:
    """Band power and band error of the decoded predicted x0 at every step of runs (prompts[i], seeds[i])."""

    model: str
    prompts: list[str]  # per run
    seeds: list[int]  # per run
    steps: int
    cfg: float
    tol: float
    frames: np.ndarray = field(repr=False)  # (runs, steps, h, w, 3) uint8: decoded predicted x0
    power: np.ndarray = field(repr=False)  # (runs, steps, bands): band power
    error: np.ndarray = field(repr=False)  # (runs, steps, bands): band error relative to the final band power
    traces: list[Any] = field(default_factory=list, repr=False)  # the runs' traces (no attention)
    seconds: float = 0.0

    @property
    def relative_power(self) -> np.ndarray:
        """Band power relative to its final value (1 = settled)."""
        return self.power / np.maximum(self.power[:, -1:], 1e-12)

    def settle(self, what: str = "power") -> dict[str, list[int]]:
        """band -> per run, the step from which the band's power (what="power") or content ("error") stays within
        `tol` of its final value."""
        dev = np.abs(self.relative_power - 1) if what == "power" else self.error
        return {b: [settles_at(d[:, j], self.tol) for d in dev] for j, b in enumerate(BANDS)}

    @property
    def units(self) -> int:
        return len(set(self.prompts))

    def table(self) -> str:
        lines = [f"{self.model}: {len(self.prompts)} runs ({self.units} prompts x {len(set(self.seeds))} seeds, "
                 f"{self.steps} steps, CFG {self.cfg:g}); step from which each band stays within {self.tol:.0%} of its "
                 "final value (mean over runs [range])", f"{'band':<8}{'power settles':>22}{'content settles':>24}"]
        sp, se = self.settle("power"), self.settle("error")
        for b in BANDS:
            lines.append(f"{b:<8}{np.mean(sp[b]):>12.1f} [{min(sp[b])}-{max(sp[b])}]".ljust(30)
                         + f"{np.mean(se[b]):>12.1f} [{min(se[b])}-{max(se[b])}]")
        return "\n".join(lines)


def spectrum_study(pipe: Any, prompts: Sequence[str], seeds: Sequence[int] = (0, 1), steps: int = 20,
                   cfg: float = 7.5, tol: float = TOL, model: str = "scenes-sd") -> SpectrumStudy:
    """Trace every prompt with every seed (`trace_batch`, no attention), decode each step's predicted x0 and measure
    its band power and band error."""
    if len(prompts) < 1 or len(seeds) < 1:
        raise ValueError("spectrum_study needs at least one prompt and one seed")
    t0 = time.perf_counter()
    ps, ss = [p for p in prompts for _ in seeds], [s for _ in prompts for s in seeds]
    traces = trace_batch(pipe, ps, ss, steps=steps, cfg=cfg, attention=False)
    frames = decoded_x0(pipe, traces)
    power = band_power(frames)
    error = np.stack([band_error(f) for f in frames])
    return SpectrumStudy(model, ps, ss, int(steps), float(cfg), float(tol), frames, power, error, traces,
                         time.perf_counter() - t0)


def spectrum_verdicts(st: SpectrumStudy) -> list[vd.Verdict]:
    """Coarse before fine, per run (paired), the intervals resampling whole prompts."""
    unit = f"runs ({st.units} prompts x {len(set(st.seeds))} seeds, {st.steps} steps)"
    sp, se = st.settle("power"), st.settle("error")
    tol = f"{st.tol:.0%}"

    def one(claim: str, s: dict[str, list[int]], later: str, earlier: str) -> vd.Verdict:
        return vd.compare(f"{st.model}: {claim}", s[later], s[earlier], labels=(later, earlier), groups=st.prompts,
                          digits=1, unit=unit, note=f"step each band settles, per run: {earlier} "
                          + ", ".join(map(str, s[earlier])) + f"; {later} " + ", ".join(map(str, s[later])))

    return [one(f"coarse before fine: the coarse band's power settles (within {tol} of its final value) before the "
                "fine band's", sp, "fine", "coarse"),
            one("coarse before fine: the middle band's power settles before the fine band's", sp, "fine", "middle"),
            one(f"coarse before fine: the coarse band's content settles (its error to the final picture within {tol}) "
                "before the fine band's", se, "fine", "coarse")]


def shapes_prompts(n: int = 8) -> list[str]:
    """n different one-object prompts of the shapes world (the shapes model's side of the spectrum study)."""
    out: list[str] = []
    k = n
    while len(out) < n:
        out = list(dict.fromkeys(one_object_prompts(k)))[:n]
        k += 1
    return out


# ------------------------------------------------------------------------------------------- prompt pairs
def swap_scenes(n: int = 8) -> list[tuple[Scene, Scene]]:
    """n pairs of unseen one-animal scenes (A, B): A a red fox in autumn leaves on the left or the right, B another
    animal on the other side, on another ground under another sky. Canonical captions."""
    side = ("left", "right")
    foxes = find_scenes(lambda s: s.kind == "single" and s.things[0].name == "fox" and s.position in side
                        and not s.under and s.things[0].size == "large", n)
    others = find_scenes(lambda s: s.kind == "single" and s.things[0].name in ANIMALS and s.things[0].name != "fox"
                         and s.position in side and not s.under and s.ground not in ("leaves", "water")
                         and s.things[0].size == "large", 8 * n)
    pairs = []
    for a in (recaption(f, ground="leaves") for f in foxes):
        b = next(o for o in others if o.position != a.position and o.sky != a.sky)
        others.remove(b)
        pairs.append((a, b))
    return pairs


def _follows(seen: str | None, a: str, b: str) -> bool | None:
    return True if seen == a else False if seen == b else None


def _closer(im: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool | None:
    """Is the picture's coarse (8 x 8) brightness nearer A's picture than B's (True), B's (False), or both alike?"""
    ca, cb = float(coarse(im) @ coarse(a)), float(coarse(im) @ coarse(b))
    return None if ca == cb else ca > cb


def judge_follows(images: np.ndarray, pairs: Sequence[tuple[Scene, Scene]], a_pics: np.ndarray, b_pics: np.ndarray,
                  judge: Any = None) -> dict[str, list[bool | None]]:
    """Per attribute, per pair: True if the picture follows A, False if B, None if neither (or cannot tell). Layout:
    the coarse brightness of A's and B's own pictures of the same seed; thing, ground, sky: the prompts, read by the
    scenes judge (a thing counts when the judge sees it and not the other)."""
    out: dict[str, list[bool | None]] = {a: [] for a in ATTRS}
    for im, r, (a, b), pa, pb in zip(images, read(images, judge), pairs, a_pics, b_pics, strict=True):
        ta, tb = a.things[0].name, b.things[0].name
        thing = ta if r.has(ta) and not r.has(tb) else tb if r.has(tb) and not r.has(ta) else None
        out["layout"].append(_closer(im, pa, pb))
        out["thing"].append(_follows(thing, ta, tb))
        out["ground"].append(_follows(r.ground, a.ground, b.ground))
        out["sky"].append(_follows(r.sky, a.sky, b.sky))
    return out


def _uint8(images: Sequence[Any]) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, dtype=np.uint8)
                     for im in images])


class _Shares:
    """Shares of pairs that follow A or B, per setting (a swap step k or a strength) and attribute."""

    follows: dict[Any, dict[str, list[bool | None]]]

    def share(self, key: Any, attr: str, of: str = "A") -> float:
        v = self.follows[key][attr]
        return sum(x is (of == "A") for x in v) / len(v)

    def count(self, key: Any, attr: str, of: str = "A") -> int:
        return sum(x is (of == "A") for x in self.follows[key][attr])


@dataclass
class SceneSwap(_Shares):
    """Prompt A for the first k of `steps` steps, then prompt B (k = 0: B throughout; k = steps: A throughout)."""

    pairs: list[tuple[str, str]]
    scenes: list[tuple[Scene, Scene]] = field(repr=False)
    seeds: list[int]
    ks: list[int]
    steps: int
    images: dict[int, np.ndarray] = field(repr=False)  # k -> (pairs, h, w, 3) uint8
    follows: dict[int, dict[str, list[bool | None]]] = field(repr=False)  # k -> attribute -> per pair

    def first_k(self, attr: str, at_least: float = 0.5) -> int:
        """The smallest k from which at least `at_least` of the pairs follow A in `attr`, at every later k too."""
        for k in self.ks:
            if all(self.share(kk, attr) >= at_least for kk in self.ks if kk >= k):
                return k
        return self.steps

    def lock_k(self, attr: str) -> list[int | None]:
        """Per pair: the smallest k from which `attr` follows A at every later k (None: not even at k = steps)."""
        out: list[int | None] = []
        for i in range(len(self.pairs)):
            k = None
            for kk in reversed(self.ks):
                if self.follows[kk][attr][i] is not True:
                    break
                k = kk
            out.append(k)
        return out

    def table(self) -> str:
        lines = [f"{len(self.pairs)} prompt pairs; A for the first k of {self.steps} steps, then B; share of pairs "
                 "whose picture follows A / B", f"{'k':>4} " + "".join(f"{a:>16}" for a in ATTRS)]
        for k in self.ks:
            lines.append(f"{k:>4} " + "".join(f"{self.share(k, a):>9.0%} / {self.share(k, a, 'B'):>4.0%}"
                                              for a in ATTRS))
        return "\n".join(lines)


def swap_study(pipe: Any, n: int = 8, ks: Sequence[int] = (0, 2, 4, 6, 8, 20), steps: int = 20,
               cfg: float = 7.5, seed: int = 0, judge: Any = None) -> SceneSwap:
    """The prompt swapped after k steps, for `n` pairs of `swap_scenes` (pair i drawn from seed `seed` + i)."""
    ks = sorted(set(ks) | {0, steps})
    scenes = swap_scenes(n)
    pairs = [(a.caption, b.caption) for a, b in scenes]
    seeds = [seed + i for i in range(len(pairs))]
    images = {k: _uint8(v) for k, v in swap_images(pipe, [a for a, _ in pairs], [b for _, b in pairs], seeds,
                                                   tuple(ks), steps, cfg).items()}
    follows = {k: judge_follows(images[k], scenes, images[steps], images[0], judge) for k in ks}
    return SceneSwap(pairs, scenes, seeds, list(ks), steps, images, follows)


@dataclass
class SceneImageToImage(_Shares):
    """A's pictures (k = steps of the swap) pushed towards prompt B by image-to-image at each strength."""

    pairs: list[tuple[str, str]]
    strengths: list[float]
    steps: int
    sources: np.ndarray = field(repr=False)  # (pairs, h, w, 3): A's pictures
    targets: np.ndarray = field(repr=False)  # (pairs, h, w, 3): B's own pictures, same seed
    noised: dict[float, np.ndarray] = field(repr=False)  # strength -> the noised starts, decoded
    results: dict[float, np.ndarray] = field(repr=False)
    follows: dict[float, dict[str, list[bool | None]]] = field(repr=False)  # True: like the source (A)
    denoise_steps: dict[float, int] = field(default_factory=dict)  # strength -> denoising steps run

    def table(self) -> str:
        lines = [f"{len(self.pairs)} source pictures (prompt A), pushed towards prompt B; share kept from the source "
                 "/ taken from B", f"{'strength':>8} {'steps run':>11} " + "".join(f"{a:>16}" for a in ATTRS)]
        for s in self.strengths:
            lines.append(f"{s:>8g} {self.denoise_steps[s]:>11} " + "".join(
                f"{self.share(s, a):>9.0%} / {self.share(s, a, 'B'):>4.0%}" for a in ATTRS))
        return "\n".join(lines)


def i2i_study(pipe: Any, swap: SceneSwap, strengths: Sequence[float] = (0.2, 0.4, 0.6, 0.8, 1.0), cfg: float = 7.5,
              judge: Any = None) -> SceneImageToImage:
    """Image-to-image from each pair's A picture towards its prompt B (same seed, the swap's steps), judged like the
    swap against A's and B's own pictures."""
    src, tgt = swap.images[swap.steps], swap.images[0]
    noised, results, ran = img2img_images(pipe, [shapes_image(x) for x in src], [b for _, b in swap.pairs],
                                          swap.seeds, tuple(strengths), swap.steps, cfg)
    res = {s: _uint8(v) for s, v in results.items()}
    follows = {s: judge_follows(res[s], swap.scenes, src, tgt, judge) for s in strengths}
    return SceneImageToImage(swap.pairs, [float(s) for s in strengths], swap.steps, src, tgt,
                             {s: _uint8(v) for s, v in noised.items()}, res, follows, ran)


def swap_verdicts(sw: SceneSwap, ks: Sequence[int]) -> list[vd.Verdict]:
    """After a swap at each step k of `ks`: the layout, ground and sky stay A's, the thing becomes B's (Wilson over the
    pairs); and, per pair, the layout is committed at an earlier k than the thing (paired bootstrap over the pairs)."""
    n, unit = len(sw.pairs), "prompt pairs"
    out = []
    for k in ks:
        out += [vd.proportion(f"swapped after step {k} of {sw.steps}: the {a} stays the first prompt's", sw.count(k, a),
                              n, what=f"{a} from A", unit=unit) for a in ("layout", "ground", "sky")]
        out.append(vd.proportion(f"swapped after step {k} of {sw.steps}: the thing follows the second prompt",
                                 sw.count(k, "thing", "B"), n, what="thing from B", unit=unit))
    lay, thing = sw.lock_k("layout"), sw.lock_k("thing")
    both = [(x, y) for x, y in zip(thing, lay, strict=True) if x is not None and y is not None]
    claim = "where before what: the layout is committed at an earlier swap step than the thing"
    if not both:
        out.append(vd.Verdict(claim, vd.TOO_FEW, "no pair keeps both A's layout and A's thing at k = "
                              f"{sw.steps}", f"0 of {n} {unit}"))
    else:
        out.append(vd.compare(claim, [x for x, _ in both], [y for _, y in both], labels=("thing", "layout"),
                              digits=1, unit=f"{unit} (paired; those where A's own picture shows A's thing)",
                              note="first k from which the attribute stays A's, per pair"))
    return out


def i2i_verdicts(r: SceneImageToImage) -> list[vd.Verdict]:
    """Low strength keeps the source's layout; high strength takes B's thing; more strength, more of B."""
    lo, hi = min(r.strengths), max(r.strengths)
    n, unit = len(r.pairs), "source pictures"
    return [vd.proportion(f"at strength {lo:g} the picture keeps the source's layout", r.count(lo, "layout"), n,
                          what="layout kept", unit=unit),
            vd.proportion(f"at strength {lo:g} the picture keeps the source's thing", r.count(lo, "thing"), n,
                          what="thing kept", unit=unit),
            vd.proportion(f"at strength {hi:g} the picture takes prompt B's thing", r.count(hi, "thing", "B"), n,
                          what="thing from B", unit=unit),
            vd.compare(f"more strength, more of prompt B: the thing from B at strength {hi:g} vs {lo:g}",
                       [x is False for x in r.follows[hi]["thing"]], [x is False for x in r.follows[lo]["thing"]],
                       labels=(f"strength {hi:g}", f"strength {lo:g}"), percent=True, unit=unit + " (paired)")]
