"""Verdicts a lesson can trust: a claim, what was measured, how many samples, how uncertain, and whether the numbers
agree with the claim, contradict it, or cannot tell (within noise).

    from explainer import verdicts as vd
    v = vd.compare("CFG 3 beats CFG 1", a=hits_cfg3, b=hits_cfg1, labels=("CFG 3", "CFG 1"))   # paired bootstrap
    v = vd.proportion_at_least("the circle lands on the left", k=14, n=16, threshold=0.5)      # Wilson interval
    vd.table([v, ...])                                                                       # rendered in Jupyter

Intervals are 95 % (the one meaning of "±" and "[low, high]" in every lesson): Wilson score intervals for shares,
percentile bootstrap intervals for means and differences. The bootstrap resamples the unit that was drawn: with
`groups` (the prompt of each image, or its prompt x seed cell) whole groups are resampled -- a cluster bootstrap -- so
36 images of 6 prompts count as 6 pieces of evidence, not 36. Fewer than `MIN_UNITS` (8) units give no interval at
all: the verdict is "too few to tell". One training run is one sample: `one_run` reports what it showed, never a
verdict. A verdict "agrees" only when the whole interval lies on the claimed side, "does not agree" when it lies on
the other side, and "within noise" otherwise.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .validation import check_bool, check_positive_int, check_real

AGREES = "agrees"
DISAGREES = "does not agree"
NOISE = "within noise"
TOO_FEW = "too few to tell"
STATUSES = (AGREES, DISAGREES, NOISE, TOO_FEW)
MIN_UNITS = 8  # fewer independent units than this: no interval, "too few to tell"


@dataclass(frozen=True)
class Interval:
    """An estimate with its (low, high) interval at `level`."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    units: int | None = None  # the independent units behind it (prompts, seeds, runs); None: not counted

    def __post_init__(self) -> None:
        for name in ("estimate", "low", "high"):
            check_real(getattr(self, name), f"interval {name}")
        if not self.low <= self.high:
            raise ValueError(f"interval low {self.low} must not exceed high {self.high}")

    @property
    def too_few(self) -> bool:
        """Fewer than MIN_UNITS units: the (low, high) pair is not an interval and must not be shown as one."""
        return self.units is not None and self.units < MIN_UNITS

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def text(self, digits: int = 2, percent: bool = False) -> str:
        if self.too_few:
            est = f"{100 * self.estimate:.0f}%" if percent else f"{self.estimate:.{digits}f}"
            return f"{est} (only {self.units} units: no interval)"
        if percent:
            return f"{100 * self.estimate:.0f}% [{100 * self.low:.0f}, {100 * self.high:.0f}]"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _finite(values: Sequence[float], name: str) -> np.ndarray:
    """Values as a non-empty 1-D float array, refusing NaN and infinities (they would give a NaN interval)."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a sequence of numbers: {e}") from None
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {x.shape}")
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{name} must be finite numbers: {bad} of {len(x)} are NaN or infinite")
    return x


def _z(level: float) -> float:
    level = check_real(level, "level", 0.0, 1.0)
    if not 0 < level < 1:
        raise ValueError(f"level must be a number between 0 and 1 (0.95 for 95 %), got {level}")
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion k/n (good at small n and at 0 or n successes)."""
    n = check_positive_int(n, "n")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k must be an integer from 0 to n={n}, got {k!r}")
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), level, units=n)


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
    x = _finite(values, "values")
    _z(level)
    idx = _groups_index(len(x), groups)
    if len(idx) < MIN_UNITS:  # no interval from fewer units: the estimate alone, marked too few
        return Interval(float(x.mean()), float(x.mean()), float(x.mean()), level, units=len(idx))
    rng = np.random.default_rng(seed)
    sums = np.array([x[i].sum() for i in idx])
    counts = np.array([len(i) for i in idx], dtype=np.float64)
    pick = rng.integers(0, len(idx), size=(n_boot, len(idx)))
    means = sums[pick].sum(1) / counts[pick].sum(1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return Interval(float(x.mean()), float(min(lo, x.mean())), float(max(hi, x.mean())), level, units=len(idx))


def bootstrap_difference(a: Sequence[float], b: Sequence[float], paired: bool = True, groups: Sequence | None = None,
                         level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> Interval:
    """Interval of mean(a) - mean(b). Paired: a[i] and b[i] are the same item (same prompt and seed) measured two
    ways, and the item differences are bootstrapped (whole `groups` at a time when given); unpaired: each side is
    resampled on its own -- with `groups` a pair (groups of a, groups of b), whole groups on each side."""
    paired = check_bool(paired, "paired")
    xa, xb = _finite(a, "a"), _finite(b, "b")
    if paired:
        if xa.shape != xb.shape:
            raise ValueError(f"paired samples need equal lengths, got {len(xa)} and {len(xb)}")
        return bootstrap_mean(xa - xb, groups=groups, level=level, n_boot=n_boot, seed=seed)
    ga, gb = (None, None) if groups is None else _pair_of_groups(groups)
    ia, ib = _groups_index(len(xa), ga), _groups_index(len(xb), gb)
    _z(level)
    est = float(xa.mean() - xb.mean())
    units = min(len(ia), len(ib))
    if units < MIN_UNITS:
        return Interval(est, est, est, level, units=units)
    rng = np.random.default_rng(seed)

    def means(x: np.ndarray, idx: list[np.ndarray]) -> np.ndarray:
        sums, counts = np.array([x[i].sum() for i in idx]), np.array([len(i) for i in idx], dtype=np.float64)
        pick = rng.integers(0, len(idx), size=(n_boot, len(idx)))
        return sums[pick].sum(1) / counts[pick].sum(1)

    q = (1 - level) / 2
    lo, hi = np.quantile(means(xa, ia) - means(xb, ib), [q, 1 - q])
    return Interval(est, float(min(lo, est)), float(max(hi, est)), level, units=units)


def bootstrap_spearman(x: Sequence[float], y: Sequence[float], level: float = 0.95, n_boot: int = 4000,
                       seed: int = 0) -> Interval:
    """Spearman's rank correlation of paired values (x[i], y[i] measured on the same unit, e.g. one thing) with a
    percentile bootstrap interval that resamples the units. Resamples where either side is constant (no ranks to
    correlate) are dropped; fewer than MIN_UNITS units give the estimate alone, marked too few."""
    from scipy.stats import spearmanr

    xa, ya = _finite(x, "x"), _finite(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must pair up: {len(xa)} and {len(ya)} values")
    _z(level)
    rho = float(spearmanr(xa, ya).statistic) if np.ptp(xa) and np.ptp(ya) else 0.0
    if len(xa) < MIN_UNITS:
        return Interval(rho, rho, rho, level, units=len(xa))
    pick = np.random.default_rng(seed).integers(0, len(xa), size=(n_boot, len(xa)))
    keep = [p for p in pick if np.ptp(xa[p]) and np.ptp(ya[p])]
    rhos = np.array([spearmanr(xa[p], ya[p]).statistic for p in keep])
    q = (1 - level) / 2
    lo, hi = np.quantile(rhos, [q, 1 - q]) if len(rhos) else (rho, rho)
    return Interval(rho, float(min(lo, rho)), float(max(hi, rho)), level, units=len(xa))


def _pair_of_groups(groups: Sequence) -> tuple[Sequence, Sequence]:
    if not (isinstance(groups, (tuple, list)) and len(groups) == 2 and all(hasattr(g, "__len__") for g in groups)):
        raise ValueError("groups of an unpaired comparison must be a pair (groups of a, groups of b)")
    return groups[0], groups[1]


@dataclass(frozen=True)
class Verdict:
    """One claim, judged: `status` is "agrees", "does not agree", "within noise" or "too few to tell"."""

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
    """The status an interval gives to the claim "the quantity is above `threshold`" (or below, if not claim_above);
    an estimate from fewer than MIN_UNITS units is "too few to tell" whatever its value. An interval that is one point
    on the threshold -- [+0, +0] for "above 0": every resample shows no difference -- does not agree; one that
    only touches the threshold ([-3, +0]) is within noise."""
    threshold, claim_above = check_real(threshold, "threshold"), check_bool(claim_above, "claim_above")
    if interval.too_few:
        return TOO_FEW
    none = interval.low == interval.high == threshold
    above, below = interval.low > threshold, interval.high < threshold
    if claim_above:
        return AGREES if above else DISAGREES if below or none else NOISE
    return AGREES if below else DISAGREES if above or none else NOISE


def _holds(holds: object, name: str = "holds") -> bool:
    return check_bool(bool(holds) if isinstance(holds, np.bool_) else holds, name)


def exact(claim: str, holds: bool, numbers: str, n: str, note: str = "") -> Verdict:
    """A verdict on a deterministic fact (bit-identical images, a count of calls): no noise, it holds or it does not.
    `holds` must be True or False (numpy's bool too): a string such as "no" is refused, not read as true."""
    return Verdict(claim, AGREES if _holds(holds) else DISAGREES, numbers, n, note)


def one_run(claim: str, seen: bool, numbers: str, n: str = "one training run", note: str = "",
            runs: int = 1) -> Verdict:
    """What one training run (or a handful: `runs`, fewer than MIN_UNITS) showed: each run is one sample, so this is
    never a verdict. The status is always "too few to tell"; `seen` says whether the runs went the claimed way."""
    seen = _holds(seen, "seen")
    runs = check_positive_int(runs, "runs", MIN_UNITS - 1)
    what = ("this run" if runs == 1 else f"these {runs} runs") + (" went the claimed way" if seen
                                                                  else " went against the claim")
    why = "one run is one sample" if runs == 1 else f"{runs} runs are {runs} samples"
    return Verdict(claim, TOO_FEW, numbers, n, f"{what}; {why}" + (f"; {note}" if note else ""))


def from_interval(claim: str, interval: Interval, n: str, what: str, threshold: float = 0.0,
                  claim_above: bool = True, digits: int = 2, percent: bool = False, note: str = "") -> Verdict:
    """A verdict on "`what` is above (or below) `threshold`", judged by its interval."""
    threshold = check_real(threshold, "threshold")
    status = judge_interval(interval, threshold, claim_above)
    side = ">" if claim_above else "<"
    thr = f"{100 * threshold:.0f}%" if percent else f"{threshold:g}"
    numbers = f"{what} = {interval.text(digits, percent)}, claim: {side} {thr}"
    return Verdict(claim, status, numbers, n, note)


def proportion(claim: str, k: int, n: int, threshold: float = 0.5, claim_above: bool = True, what: str = "share",
               unit: str = "samples", note: str = "", level: float = 0.95) -> Verdict:
    """A verdict on "the share k/n is above (or below) `threshold`", judged by its Wilson interval. `threshold` is a
    fraction from 0 to 1 (0.5, not 50)."""
    threshold = check_real(threshold, "threshold (a fraction from 0 to 1, e.g. 0.5 for 50 %)", 0.0, 1.0)
    iv = wilson(k, n, level)
    v = from_interval(claim, iv, f"{n} {unit}", f"{what} {k}/{n}", threshold, claim_above, percent=True, note=note)
    return v


def compare(claim: str, a: Sequence[float], b: Sequence[float], labels: tuple[str, str] = ("A", "B"),
            paired: bool = True, groups: Sequence | None = None, claim_above: bool = True, margin: float = 0.0,
            unit: str = "samples", digits: int = 2, percent: bool = False, note: str = "") -> Verdict:
    """A verdict on "mean(a) > mean(b) (+ margin)" (or "<" if not claim_above), by a bootstrap of the difference
    that resamples `groups` (the prompt, or prompt x seed cell, of each value) whole when given.
    Booleans count as 0/1, so this compares two rates measured on the same items."""
    margin = check_real(margin, "margin")
    claim_above = check_bool(claim_above, "claim_above")
    iv = bootstrap_difference(a, b, paired=paired, groups=groups)
    ma, mb = float(np.mean(_finite(a, "a"))), float(np.mean(_finite(b, "b")))
    fmt = (lambda x: f"{100 * x:.0f}%") if percent else (lambda x: f"{x:.{digits}f}")
    if iv.too_few:
        d = f"{100 * iv.estimate:+.0f} points" if percent else f"{iv.estimate:+.{digits}f}"
        d += f" (only {iv.units} units: no interval)"
    else:
        d = (f"{100 * iv.estimate:+.0f} points [{100 * iv.low:+.0f}, {100 * iv.high:+.0f}]" if percent
             else f"{iv.estimate:+.{digits}f} [{iv.low:+.{digits}f}, {iv.high:+.{digits}f}]")
    numbers = f"{labels[0]} {fmt(ma)} vs {labels[1]} {fmt(mb)}, difference {d}"
    if margin:
        numbers += f", claim needs {'>' if claim_above else '<'} {margin:+g}"
    nb = f"{len(a)} {unit}" + ("" if paired else f" vs {len(b)}")
    if groups is not None:
        nb += f" in {iv.units} groups" if paired else f" in {iv.units}+ groups each"
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
        colour = {AGREES: "#1a7f37", DISAGREES: "#b42318", NOISE: "#9a6700", TOO_FEW: "#57606a"}
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
