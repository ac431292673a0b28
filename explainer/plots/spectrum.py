"""Lesson 4's spectra: the radially averaged power spectrum of the predicted clean image per denoising step, each
frequency band's power and error to the final picture per step, and the step each band settles at, per prompt.
The figures take an `experiments.scenes_denoising.SpectrumStudy`; the numbers are computed there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ._base import _new_figure

BAND_COLOURS = {"coarse": "#1f77b4", "middle": "#2ca02c", "fine": "#d62728"}


def _band_edges(ax: Any, edges: Sequence[float]) -> None:
    for e in edges:
        ax.axvline(e, color="#777777", linestyle="--", linewidth=0.9)
    lo, hi = ax.get_xlim()
    for name, x in zip(("coarse", "middle", "fine"), (np.sqrt(lo * edges[0]), np.sqrt(edges[0] * edges[1]),
                                                      np.sqrt(edges[1] * hi)), strict=True):
        ax.text(x, 0.02, name, transform=ax.get_xaxis_transform(), ha="center", fontsize=8, color=BAND_COLOURS[name])


def plot_spectrum_steps(st: Any, run: int = 0, n: int = 6) -> Figure:
    """One run of a spectrum study, three panels: the radially averaged power spectrum of the decoded predicted x0 at
    `n` steps (left); each band's power relative to its final value per step, with the +-tol band (middle); each
    band's error to the final picture per step, the median over all the study's runs with the middle half of them
    shaded (right)."""
    from ..experiments.scenes_denoising import BAND_EDGES, BANDS, radial_profile

    fig = _new_figure(14, 4.6)
    a0, a1, a2 = fig.subplots(1, 3)
    steps = np.arange(1, st.steps + 1)
    shown = np.unique(np.linspace(0, st.steps - 1, n).round().astype(int))
    freqs, prof = radial_profile(st.frames[run][shown])
    colours = [colormaps["viridis"](v) for v in np.linspace(0, 0.9, len(shown))]
    for i, s in enumerate(shown):
        a0.loglog(freqs, prof[i], color=colours[i], label=f"step {s + 1}", linewidth=1.4)
    a0.set_xlim(freqs[0], freqs[-1])
    ticks = [freqs[0], *BAND_EDGES, freqs[-1]]
    a0.set_xticks(ticks, [f"1/{1 / f:.0f}" for f in ticks])
    a0.xaxis.set_minor_formatter(NullFormatter())
    _band_edges(a0, BAND_EDGES)
    a0.set_xlabel("spatial frequency (cycles per pixel;\n1/16 = a wave 16 px long)")
    a0.set_ylabel("power (radial mean, log)")
    a0.set_title("this run: spectrum of the predicted x\u2080", fontsize=10)
    a0.legend(fontsize=7)
    rel = st.relative_power[run]
    settle = {b: v[run] for b, v in st.settle("power").items()}
    a1.axhspan(1 - st.tol, 1 + st.tol, color="#dddddd", label=f"within {st.tol:.0%} of final")
    for j, b in enumerate(BANDS):
        a1.plot(steps, rel[:, j], "o-", markersize=3, color=BAND_COLOURS[b], label=f"{b} (settles at step {settle[b]})")
        a1.axvline(settle[b], color=BAND_COLOURS[b], linestyle=":", linewidth=1)
    a1.set_xlabel("denoising step")
    a1.set_ylabel("band power / its final value")
    a1.set_title("this run: each band's power", fontsize=10)
    a1.legend(fontsize=7)
    for j, b in enumerate(BANDS):
        e = st.error[:, :, j]
        lo, med, hi = np.percentile(e, [25, 50, 75], axis=0)
        a2.fill_between(steps, lo, hi, color=BAND_COLOURS[b], alpha=0.2)
        a2.plot(steps, med, "o-", markersize=3, color=BAND_COLOURS[b], label=b)
    a2.axhline(st.tol, color="#555555", linestyle="--", linewidth=1, label=f"{st.tol:.0%} of the final band")
    a2.set_yscale("symlog", linthresh=0.01)
    a2.set_xlabel("denoising step")
    a2.set_ylabel("band error to the final picture\n(relative to the final band's power)")
    a2.set_ylim(0, 1.5)
    a2.set_title(f"all {len(st.prompts)} runs: each band's error to the final\n(median, middle half shaded)",
                 fontsize=10)
    a2.legend(fontsize=7)
    for ax in (a0, a1, a2):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{st.model}: coarse to fine? \u201c{st.prompts[run]}\u201d \u00b7 seed {st.seeds[run]} \u00b7 "
                 f"{st.steps} steps \u00b7 CFG {st.cfg:g}", fontsize=12)
    return fig


def plot_settle_steps(studies: Sequence[Any]) -> Figure:
    """One panel per study (model): the step from which each band's power stays within tol of its final value, one
    thin line per prompt (its seeds averaged), the mean over prompts bold; the content (error to the final picture)
    settling as a dashed bold line."""
    from ..experiments.scenes_denoising import BANDS

    fig = _new_figure(5.2 * len(studies), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(studies), squeeze=False)[0])
    x = np.arange(len(BANDS))
    for ax, st in zip(axes, studies, strict=True):
        prompts = list(dict.fromkeys(st.prompts))
        for what, style in (("power", "o-"), ("error", "s--")):
            s = st.settle(what)
            per = np.array([[np.mean([v for p, v in zip(st.prompts, s[b], strict=True) if p == q]) for b in BANDS]
                            for q in prompts])
            if what == "power":
                for row in per:
                    ax.plot(x, row, "-", color="#9ecae1", linewidth=1)
            ax.plot(x, per.mean(0), style, color="#08519c" if what == "power" else "#111111", linewidth=2.2,
                    label="power settles (mean over prompts)" if what == "power" else
                    "content settles (mean over prompts)")
        ax.plot([], [], "-", color="#9ecae1", label="power settles, one prompt (mean over its seeds)")
        ax.set_xticks(x, [f"{b}" for b in BANDS])
        ax.set_xlabel("frequency band (coarse = layout, fine = texture)")
        ax.set_ylabel(f"step from which the band stays\nwithin {st.tol:.0%} of its final value")
        ax.set_ylim(0, st.steps + 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"{st.model}: {len(prompts)} prompts x {len(set(st.seeds))} seeds, {st.steps} steps",
                     fontsize=10)
    fig.suptitle("When does each frequency band of the predicted picture settle?", fontsize=12)
    return fig
