"""Lesson 7, classifier-free guidance (CFG): the formula on real tensors, where and when the prompt pushes, and a
CFG sweep measured with the judge (prompt adherence) and with image statistics (saturation, clipped pixels).

Also the small helpers the other part-2 experiments share: `generate_many` (many prompt/seed pairs in batched
pipeline calls), `saturation` and `clipped_fraction` (image statistics), `adherence_table` (judge many images).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .. import generation
from ..judge import judge, judge_against

# Prompts the CFG sweep judges: two objects each, so "does low CFG skip a part of the prompt?" has an answer.
SWEEP_PROMPTS = (
    "a red circle left of a blue square",
    "a yellow star above a green square",
    "a white triangle right of a purple circle",
    "a blue cross below an orange star",
    "a green circle above a red triangle",
    "an orange square left of a white star",
)
SWEEP_SEEDS = (0, 1, 2, 3, 4, 5)
SWEEP_SCALES = (1.0, 3.0, 7.5, 12.0, 20.0)


# --------------------------------------------------------------------------------------------- shared helpers
@contextlib.contextmanager
def using_scheduler(pipe: Any, name: str | None) -> Iterator[None]:
    """Install the named sampler (built from the pipeline's own config) for the duration, then put the old one back
    (None keeps the pipeline's own). The one swap of `explainer.generation`."""
    with generation.using_scheduler(pipe, name):
        yield


def generate_many(pipe: Any, prompts: Sequence[str], seeds: Sequence[int], cfg: float = 7.5, steps: int = 25,
                  scheduler: str | None = "dpm++2m", negative_prompt: str | None = None, height: int | None = None,
                  width: int | None = None, max_batch: int = 16, output: str = "pil") -> list[Any]:
    """One image per (prompt, seed) pair, several per pipeline call where that stays exact: image k is bit for bit
    the single run of prompt k from seed k (`explainer.generation.generate_images`; CFG <= 1 runs one by one)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"need one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
    return generation.generate_images(pipe, list(prompts), [int(s) for s in seeds], cfg, steps, scheduler,
                                      negative_prompt, height, width, max_batch=max_batch, output_type=output,
                                      what="generate_many").images


def saturation(image: Any) -> float:
    """Mean HSV saturation of an image, 0 (grey) .. 1 (pure colour)."""
    return float(np.asarray(image.convert("HSV"))[..., 1].mean() / 255.0)


def clipped_fraction(image: Any) -> float:
    """Fraction of colour channel values pinned at 0 or 255: a sign of values pushed past the range and clipped."""
    a = np.asarray(image.convert("RGB"))
    return float(((a == 0) | (a == 255)).mean())


def adherence_table(images: Sequence[Any], prompts: Sequence[str]) -> dict[str, float]:
    """Judge every image against its prompt; the rate of each judged key (None = not asked, left out)."""
    keys: dict[str, list[bool]] = {}
    for im, p in zip(images, prompts, strict=True):
        for k, v in judge_against(im, p).items():
            if v is not None:
                keys.setdefault(k, []).append(bool(v))
    return {k: float(np.mean(v)) for k, v in keys.items()}


def image_strip(rows: Sequence[Sequence[Any]], row_labels: Sequence[str], col_labels: Sequence[str],
                title: str, cell: float = 1.3) -> Figure:
    """A labelled grid of images (rows x cols), nearest-neighbour so the 32x32 pixels stay visible."""
    n_r, n_c = len(rows), len(rows[0])
    fig = Figure(figsize=(max(4.0, n_c * cell + 1.6), n_r * cell + 0.9), layout="constrained")
    axes = fig.subplots(n_r, n_c, squeeze=False)
    for r in range(n_r):
        for c in range(n_c):
            ax = axes[r][c]
            ax.imshow(np.asarray(rows[r][c].convert("RGB")), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------- the formula
@dataclass
class FormulaCheck:
    cfg: float
    steps: int
    max_abs_error: float  # max |uncond + cfg * (cond - uncond) - guided| over every step and element
    max_abs_guided: float  # for scale: the largest |guided| value
    delta_norms: list[float]  # ||cond - uncond|| per step
    uncond_norms: list[float]
    peak_step: int  # step where the delta is largest
    first_half_share: float  # share of the summed delta norm that falls in the first half of the steps
    first_half_effect: float  # the same, each step weighted by how far the sampler moves (sigma_i - sigma_i+1)
    inside_share: float  # share of the delta (summed over steps) that falls on the objects' footprint
    footprint_share: float  # the footprint's share of the image area (what an even spread would give)


def _footprint(image: Any, size: tuple[int, int]) -> np.ndarray:
    """Where the objects are, at latent resolution: pixels that differ from the judged background colour."""
    from ..shapes import BACKGROUNDS

    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    bg = np.array(BACKGROUNDS[judge(image).background], dtype=np.float64)
    mask = (np.linalg.norm(a - bg, axis=-1) > 60).astype(np.float64)
    h, w = size
    fh, fw = mask.shape[0] // h, mask.shape[1] // w
    return mask.reshape(h, fh, w, fw).mean(axis=(1, 3))


def check_formula(tr: Any) -> FormulaCheck:
    """Recombine the trace's two U-Net predictions by hand and compare with what the sampler was given."""
    cfg = float(tr.settings["cfg"])
    err, big, dn, un, maps = 0.0, 0.0, [], [], []
    sig = [float(st.sigma) for st in tr.steps] + [0.0]
    for st in tr.steps:
        mine = st.noise_uncond.double() + cfg * (st.noise_cond.double() - st.noise_uncond.double())
        err = max(err, float((mine - st.noise_guided.double()).abs().max()))
        big = max(big, float(st.noise_guided.abs().max()))
        dn.append(float(st.cfg_delta.norm()))
        un.append(float(st.noise_uncond.norm()))
        maps.append(st.cfg_delta.double().norm(dim=0).numpy())
    total = np.sum(maps, axis=0)
    fp = _footprint(tr.image, total.shape)
    half = len(dn) // 2
    eff = [d * (sig[i] - sig[i + 1]) for i, d in enumerate(dn)]
    return FormulaCheck(cfg, len(dn), err, big, dn, un, int(np.argmax(dn)), float(sum(dn[:half]) / sum(dn)),
                        float(sum(eff[:half]) / sum(eff)),
                        float((total * fp).sum() / total.sum()), float(fp.mean()))


# --------------------------------------------------------------------------------------------- the sweep
@dataclass
class CfgSweep:
    scales: list[float]
    prompts: list[str]
    seeds: list[int]
    adherence: dict[float, dict[str, float]]  # scale -> judged key -> rate
    missing_object: dict[float, float]  # scale -> share of images where a named object is missing
    extra_objects: dict[float, float]  # scale -> share of images with more objects than asked
    saturation: dict[float, float]  # scale -> mean HSV saturation
    clipped: dict[float, float]  # scale -> fraction of channel values at 0 or 255
    images: dict[float, list[Any]] = field(repr=False)
    seconds: float = 0.0

    def table(self) -> str:
        head = (f"{'CFG':>5} | {'all':>5} {'objects':>7} {'relation':>8} | {'missing':>7} {'extra':>5} | "
                f"{'saturation':>10} {'clipped':>7}")
        lines = [head, "-" * len(head)]
        for s in self.scales:
            a = self.adherence[s]
            lines.append(f"{s:>5g} | {a['all']:>5.2f} {a.get('objects', float('nan')):>7.2f} "
                         f"{a.get('relation', float('nan')):>8.2f} | {self.missing_object[s]:>7.2f} "
                         f"{self.extra_objects[s]:>5.2f} | {self.saturation[s]:>10.3f} {self.clipped[s]:>7.3f}")
        return "\n".join(lines)

    def figure(self, n_rows: int = 3) -> Figure:
        """Example images: rows = (prompt, seed) pairs, columns = CFG scale."""
        rows = [[self.images[s][i] for s in self.scales] for i in range(n_rows)]
        labels = [f"{self.prompts[i]}\nseed {self.seeds[i]}".replace(" left of", "\nleft of")
                  .replace(" above", "\nabove").replace(" right of", "\nright of").replace(" below", "\nbelow")
                  for i in range(n_rows)]
        return image_strip(rows, labels, [f"CFG {s:g}" for s in self.scales],
                           "The same prompts and seeds at five CFG scales (25 steps, dpm++2m)")

    def plot(self) -> Figure:
        """Adherence and saturation against the CFG scale."""
        fig = Figure(figsize=(11, 3.8), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        x = self.scales
        ax1.plot(x, [self.adherence[s]["all"] for s in x], "o-", label="whole prompt right (judge)")
        ax1.plot(x, [self.adherence[s].get("objects", np.nan) for s in x], "s-", label="both objects present")
        ax1.plot(x, [self.missing_object[s] for s in x], "^--", label="a named object missing")
        ax1.set_xlabel("CFG scale")
        ax1.set_ylabel(f"share of {len(self.prompts)} images")
        ax1.set_ylim(-0.02, 1.02)
        ax1.set_title("prompt adherence, judged")
        ax1.grid(alpha=0.3)
        ax1.legend(fontsize=8)
        ax2.plot(x, [self.saturation[s] for s in x], "o-", color="#d6604d", label="mean HSV saturation")
        ax2.set_xlabel("CFG scale")
        ax2.set_ylabel("mean saturation (0..1)")
        ax2.grid(alpha=0.3)
        ax3 = ax2.twinx()
        ax3.plot(x, [self.clipped[s] for s in x], "s--", color="#4393c3", label="channel values clipped (0/255)")
        ax3.set_ylabel("fraction clipped")
        fig.legend(loc="outside lower center", ncols=2, fontsize=8)
        ax2.set_title("over-saturation, measured")
        fig.suptitle(f"CFG sweep: {len(self.prompts)} two-object prompts x seeds, 25 steps, dpm++2m", fontsize=11)
        return fig


def _missing(image: Any, prompt: str) -> tuple[bool, bool]:
    """(a named object is missing: no object of its colour, there are more objects than asked)."""
    from ..judge import parse_prompt

    spec = parse_prompt(prompt)
    j = judge(image)
    colours = {o.color for o in j.objects}
    return any(o.color not in colours for o in spec.objects), j.count > len(spec.objects)


def cfg_sweep(pipe: Any, prompts: Sequence[str] = SWEEP_PROMPTS, seeds: Sequence[int] = SWEEP_SEEDS,
              scales: Sequence[float] = SWEEP_SCALES, steps: int = 25) -> CfgSweep:
    """Every prompt x seed at every scale; judged adherence, missing/extra objects, saturation, clipped values."""
    t0 = time.perf_counter()
    ps = [p for p in prompts for _ in seeds]
    ss = [s for _ in prompts for s in seeds]
    res = CfgSweep(list(scales), ps, ss, {}, {}, {}, {}, {}, {})
    for s in scales:
        ims = generate_many(pipe, ps, ss, cfg=s, steps=steps)
        res.images[s] = ims
        res.adherence[s] = adherence_table(ims, ps)
        me = [_missing(im, p) for im, p in zip(ims, ps, strict=True)]
        res.missing_object[s] = float(np.mean([m for m, _ in me]))
        res.extra_objects[s] = float(np.mean([e for _, e in me]))
        res.saturation[s] = float(np.mean([saturation(im) for im in ims]))
        res.clipped[s] = float(np.mean([clipped_fraction(im) for im in ims]))
    res.seconds = time.perf_counter() - t0
    return res


def second_object_scale(pipe: Any, prompt: str, seed: int, scales: Sequence[float] = (1, 1.5, 2, 3, 4, 5, 7.5),
                        steps: int = 25) -> float | None:
    """The smallest scale in `scales` at which the judge finds both named objects (None if it never does)."""
    for s in scales:
        im = generate_many(pipe, [prompt], [seed], cfg=s, steps=steps)[0]
        if judge_against(im, prompt).get("objects"):
            return float(s)
    return None


def verdicts(sweep: CfgSweep, low: float = 1.0, mid: float = 7.5, high: float = 20.0) -> list[str]:
    """The claim's three parts, each with the measured numbers and whether our model agrees."""
    a = {s: sweep.adherence[s]["all"] for s in sweep.scales}
    best = max(sweep.scales, key=lambda s: (a[s], -abs(s - mid)))
    m_low, m_mid = sweep.missing_object[low], sweep.missing_object[mid]
    s_mid, s_high = sweep.saturation[mid], sweep.saturation[high]
    c_mid, c_high = sweep.clipped[mid], sweep.clipped[high]
    skips = m_low > m_mid + 0.1
    sweet = low < best < high and a[best] > max(a[low], a[high])
    others = [sweep.saturation[s] for s in sweep.scales if s != high]
    over = s_high > max(others) + 0.01
    return [
        f"low CFG skips parts of the prompt: a named object is missing in {100 * m_low:.0f}% of images at CFG {low:g} "
        f"vs {100 * m_mid:.0f}% at CFG {mid:g} -> {'agrees' if skips else 'does not agree'}",
        f"a middle scale is the sweet spot: whole-prompt adherence is best at CFG {best:g} "
        f"({', '.join(f'{s:g}: {a[s]:.2f}' for s in sweep.scales)}) -> {'agrees' if sweet else 'does not agree'}",
        f"high CFG over-saturates: mean saturation {s_mid:.3f} at CFG {mid:g} vs {s_high:.3f} at CFG {high:g} "
        f"(highest: {max(sweep.saturation.values()):.3f}, at CFG "
        f"{max(sweep.scales, key=lambda s: sweep.saturation[s]):g}); "
        f"clipped values {c_mid:.3f} vs {c_high:.3f} -> {'agrees' if over else 'does not agree'}",
        f"high CFG adds artefacts (more objects than asked): {100 * sweep.extra_objects[mid]:.0f}% at CFG {mid:g} vs "
        f"{100 * sweep.extra_objects[high]:.0f}% at CFG {high:g}",
    ]
