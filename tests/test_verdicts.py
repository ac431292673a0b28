"""The verdict helper, from the outside: known Wilson intervals, bootstrap intervals against the normal theory, the
three statuses, and the generated table."""

from __future__ import annotations

import numpy as np
import pytest

from explainer import verdicts as vd


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (1, 10, 0.0179, 0.4042), (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),
])
def test_wilson_matches_published_values(k, n, low, high):
    iv = vd.wilson(k, n)
    assert iv.estimate == pytest.approx(k / n)
    assert iv.low == pytest.approx(low, abs=6e-4) and iv.high == pytest.approx(high, abs=6e-4)


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError, match="n must be"):
        vd.wilson(0, 0)
    with pytest.raises(ValueError, match="k must be"):
        vd.wilson(5, 4)


def test_bootstrap_mean_matches_normal_theory():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=400)
    iv = vd.bootstrap_mean(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert iv.estimate == pytest.approx(x.mean())
    assert iv.low == pytest.approx(x.mean() - half, rel=0.02)
    assert iv.high == pytest.approx(x.mean() + half, rel=0.02)


def test_resampling_whole_groups_widens_the_interval_of_repeated_values():
    x = np.repeat(np.random.default_rng(2).normal(size=10), 8)  # 10 seeds, 8 identical values each
    ungrouped, grouped = vd.bootstrap_mean(x), vd.bootstrap_mean(x, groups=np.repeat(np.arange(10), 8))
    assert (grouped.high - grouped.low) > 2 * (ungrouped.high - ungrouped.low)


def test_paired_difference_sees_a_small_consistent_shift_that_unpaired_misses():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, size=30)
    a, b = base + 0.1, base
    assert vd.bootstrap_difference(a, b).low > 0.09
    assert vd.bootstrap_difference(a, b, paired=False).contains(0.0)


def test_statuses_follow_the_interval():
    assert vd.proportion("most", 30, 36, threshold=0.5).status == vd.AGREES
    assert vd.proportion("most", 3, 36, threshold=0.5).status == vd.DISAGREES
    assert vd.proportion("most", 20, 36, threshold=0.5).status == vd.NOISE  # Wilson [0.39, 0.70] holds 0.5
    assert vd.proportion("few", 1, 36, threshold=0.2, claim_above=False).status == vd.AGREES
    # 23 vs 21 of 36 paired images: within noise
    a = [1] * 23 + [0] * 13
    b = [1] * 21 + [0] * 15
    v = vd.compare("3 beats 1", a, b, labels=("CFG 3", "CFG 1"), percent=True, unit="images")
    assert v.status == vd.NOISE and "36 images" in v.n and "64%" in v.numbers and "58%" in v.numbers
    assert vd.compare("b above a", b, [0] * 36).status == vd.AGREES
    assert vd.compare("b below a", b, [0] * 36, claim_above=False).status == vd.DISAGREES


def test_exact_verdicts_and_bad_status():
    assert vd.exact("bit for bit", True, "max difference 0", "1 run").status == vd.AGREES
    assert vd.exact("bit for bit", False, "max difference 3", "1 run").status == vd.DISAGREES
    with pytest.raises(ValueError, match="status"):
        vd.Verdict("x", "maybe", "", "1")


def test_table_renders_every_verdict():
    vs = [vd.proportion("circle drawn", 9, 10, unit="images"), vd.proportion("star drawn", 1, 10, unit="images")]
    t = vd.table(vs, title="Lesson X")
    md, h = t.to_markdown(), t._repr_html_()
    assert md.count("\n| ") == 3 and "**agrees**" in md and "**does not agree**" in md and "10 images" in md
    assert h.count("<tr>") == 3 and "Lesson X" in h
    assert t.counts() == {vd.AGREES: 1, vd.DISAGREES: 1, vd.NOISE: 0}
    with pytest.raises(TypeError):
        vd.table(["not a verdict"])
