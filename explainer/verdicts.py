"""Verdicts a lesson can trust: a claim, what was measured, how many samples, how uncertain, and whether the numbers
agree with the claim, contradict it, or cannot tell (within noise).

    from explainer import verdicts as vd
    v = vd.compare("CFG 3 beats CFG 1", a=hits_cfg3, b=hits_cfg1, labels=("CFG 3", "CFG 1"))   # paired bootstrap
    v = vd.proportion_at_least("the circle lands on the left", k=14, n=16, threshold=0.5)      # Wilson interval
    vd.table([v, ...])                                                                       # rendered in Jupyter

Intervals are 95 % by default: Wilson score intervals for proportions, percentile bootstrap intervals (resampling
items, or whole groups such as seeds) for means and differences. A verdict "agrees" only when the whole interval lies
on the claimed side, "does not agree" when the whole interval lies on the other side, and "within noise" otherwise.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

AGREES = "agrees"
DISAGREES = "does not agree"
NOISE = "within noise"
STATUSES = (AGREES, DISAGREES, NOISE)


@dataclass(frozen=True)
class Interval:
    """An estimate with its (low, high) interval at `level`."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"interval low {self.low} must not exceed high {self.high}")

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def text(self, digits: int = 2, percent: bool = False) -> str:
        if percent:
            return f"{100 * self.estimate:.0f}% [{100 * self.low:.0f}, {100 * self.high:.0f}]"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion k/n (good at small n and at 0 or n successes)."""
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in 0..n={n}, got {k}")
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), level)


def _groups_index(n: int, groups: Sequence | None) -> list[np.ndarray]:
    if groups is None:
        return [np.array([i]) for i in range(n)]
    if len(groups) != n:
        raise ValueError(f"groups must have one label per value: {len(groups)} labels for {n} values")
    keys: dict = {}
    for i, g in enumerate(groups):
        keys.setdefault(g, []).append(i)
    return [np.array(v) for v in keys.values()]


def bootstrap_mean(values: Sequence[float], groups: Sequence | None = None, level: float = 0.95, n_boot: int = 4000,
                   seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean; with `groups` (e.g. the seed of each value) whole groups are
    resampled, so values that share a seed count as one piece of evidence."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {x.shape}")
    _z(level)
    idx = _groups_index(len(x), groups)
    rng = np.random.default_rng(seed)
    sums = np.array([x[i].sum() for i in idx])
    counts = np.array([len(i) for i in idx], dtype=np.float64)
    pick = rng.integers(0, len(idx), size=(n_boot, len(idx)))
    means = sums[pick].sum(1) / counts[pick].sum(1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return Interval(float(x.mean()), float(min(lo, x.mean())), float(max(hi, x.mean())), level)


def bootstrap_difference(a: Sequence[float], b: Sequence[float], paired: bool = True, groups: Sequence | None = None,
                         level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> Interval:
    """Interval of mean(a) - mean(b). Paired: a[i] and b[i] are the same item (same prompt and seed) measured two
    ways, and the item differences are bootstrapped; unpaired: each side is resampled on its own."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if paired:
        if xa.shape != xb.shape:
            raise ValueError(f"paired samples need equal lengths, got {len(xa)} and {len(xb)}")
        return bootstrap_mean(xa - xb, groups=groups, level=level, n_boot=n_boot, seed=seed)
    if len(xa) == 0 or len(xb) == 0:
        raise ValueError("both samples must be non-empty")
    _z(level)
    rng = np.random.default_rng(seed)
    da = xa[rng.integers(0, len(xa), size=(n_boot, len(xa)))].mean(1)
    db = xb[rng.integers(0, len(xb), size=(n_boot, len(xb)))].mean(1)
    q = (1 - level) / 2
    lo, hi = np.quantile(da - db, [q, 1 - q])
    est = float(xa.mean() - xb.mean())
    return Interval(est, float(min(lo, est)), float(max(hi, est)), level)


@dataclass(frozen=True)
class Verdict:
    """One claim, judged: `status` is "agrees", "does not agree" or "within noise"."""

    claim: str
    status: str
    numbers: str  # what was measured, with its interval
    n: str  # the sample size, in words ("36 images", "8 prompts x 2 seeds")
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def agrees(self) -> bool:
        return self.status == AGREES

    def sentence(self) -> str:
        tail = f" — {self.note}" if self.note else ""
        return f"{self.claim}: {self.status.upper()} ({self.numbers}; n = {self.n}){tail}"

    def __str__(self) -> str:
        return self.sentence()


def judge_interval(interval: Interval, threshold: float = 0.0, claim_above: bool = True) -> str:
    """The status an interval gives to the claim "the quantity is above `threshold`" (or below, if not claim_above)."""
    above, below = interval.low > threshold, interval.high < threshold
    if claim_above:
        return AGREES if above else DISAGREES if below else NOISE
    return AGREES if below else DISAGREES if above else NOISE


def exact(claim: str, holds: bool, numbers: str, n: str, note: str = "") -> Verdict:
    """A verdict on a deterministic fact (bit-identical images, a count of calls): no noise, it holds or it does not."""
    return Verdict(claim, AGREES if holds else DISAGREES, numbers, n, note)


def from_interval(claim: str, interval: Interval, n: str, what: str, threshold: float = 0.0,
                  claim_above: bool = True, digits: int = 2, percent: bool = False, note: str = "") -> Verdict:
    """A verdict on "`what` is above (or below) `threshold`", judged by its interval."""
    side = ">" if claim_above else "<"
    thr = f"{100 * threshold:.0f}%" if percent else f"{threshold:g}"
    numbers = f"{what} = {interval.text(digits, percent)}, claim: {side} {thr}"
    return Verdict(claim, judge_interval(interval, threshold, claim_above), numbers, n, note)


def proportion(claim: str, k: int, n: int, threshold: float = 0.5, claim_above: bool = True, what: str = "share",
               unit: str = "samples", note: str = "", level: float = 0.95) -> Verdict:
    """A verdict on "the share k/n is above (or below) `threshold`", judged by its Wilson interval."""
    iv = wilson(k, n, level)
    v = from_interval(claim, iv, f"{n} {unit}", f"{what} {k}/{n}", threshold, claim_above, percent=True, note=note)
    return v


def compare(claim: str, a: Sequence[float], b: Sequence[float], labels: tuple[str, str] = ("A", "B"),
            paired: bool = True, groups: Sequence | None = None, claim_above: bool = True, margin: float = 0.0,
            unit: str = "samples", digits: int = 2, percent: bool = False, note: str = "") -> Verdict:
    """A verdict on "mean(a) > mean(b) (+ margin)" (or "<" if not claim_above), by a bootstrap of the difference.
    Booleans count as 0/1, so this compares two rates measured on the same items."""
    iv = bootstrap_difference(a, b, paired=paired, groups=groups)
    ma, mb = float(np.mean(np.asarray(a, dtype=np.float64))), float(np.mean(np.asarray(b, dtype=np.float64)))
    fmt = (lambda x: f"{100 * x:.0f}%") if percent else (lambda x: f"{x:.{digits}f}")
    d = (f"{100 * iv.estimate:+.0f} points [{100 * iv.low:+.0f}, {100 * iv.high:+.0f}]" if percent
         else f"{iv.estimate:+.{digits}f} [{iv.low:+.{digits}f}, {iv.high:+.{digits}f}]")
    numbers = f"{labels[0]} {fmt(ma)} vs {labels[1]} {fmt(mb)}, difference {d}"
    if margin:
        numbers += f", claim needs {'>' if claim_above else '<'} {margin:+g}"
    nb = f"{len(a)} {unit}" + ("" if paired else f" vs {len(b)}")
    if groups is not None:
        nb += f" in {len(set(groups))} groups"
    return Verdict(claim, judge_interval(iv, margin, claim_above), numbers, nb, note)


@dataclass
class VerdictTable:
    """Verdicts as a table; shows itself as HTML in Jupyter and as markdown/text anywhere else."""

    verdicts: list[Verdict] = field(default_factory=list)
    title: str = "Verdicts"

    def __iter__(self):
        return iter(self.verdicts)

    def __len__(self) -> int:
        return len(self.verdicts)

    def __getitem__(self, i: int) -> Verdict:
        return self.verdicts[i]

    def counts(self) -> dict[str, int]:
        return {s: sum(v.status == s for v in self.verdicts) for s in STATUSES}

    def to_markdown(self) -> str:
        def cell(s: str) -> str:
            return s.replace("|", "\\|").replace("\n", " ")

        lines = [f"**{self.title}**", "", "| claim | verdict | measured (95% interval) | n |", "|---|---|---|---|"]
        for v in self.verdicts:
            note = f" ({v.note})" if v.note else ""
            lines.append(f"| {cell(v.claim)}{cell(note)} | **{v.status}** | {cell(v.numbers)} | {cell(v.n)} |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        colour = {AGREES: "#1a7f37", DISAGREES: "#b42318", NOISE: "#9a6700"}
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(v.claim)}"
            + (f"<br><small>{html.escape(v.note)}</small>" if v.note else "")
            + f"</td><td style='color:{colour[v.status]};font-weight:bold'>{v.status}</td>"
            f"<td style='text-align:left'>{html.escape(v.numbers)}</td><td>{html.escape(v.n)}</td></tr>"
            for v in self.verdicts)
        return (f"<table><caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>"
                "<tr><th>claim</th><th>verdict</th><th>measured (95% interval)</th><th>n</th></tr>"
                f"{rows}</table>")

    def __str__(self) -> str:
        return "\n".join([self.title] + [f"- {v.sentence()}" for v in self.verdicts])


def table(verdicts: Iterable[Verdict], title: str = "Verdicts") -> VerdictTable:
    """The generated verdict table a lesson ends with."""
    vs = list(verdicts)
    for v in vs:
        if not isinstance(v, Verdict):
            raise TypeError(f"verdicts must be Verdict objects, got {type(v).__name__}")
    return VerdictTable(vs, title)
