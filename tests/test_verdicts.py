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
    # no difference at all (0 % vs 0 % on every prompt): the interval [+0, +0] holds no gain, so the claim of one
    # does not agree; it is not "within noise"
    none = vd.compare("7.5 beats 1", [0] * 12, [0] * 12, percent=True)
    assert none.status == vd.DISAGREES and "[+0, +0]" in none.numbers
    assert vd.compare("7.5 below 1", [0] * 12, [0] * 12, claim_above=False).status == vd.DISAGREES
    # an interval that only touches 0 (one prompt in twelve lost, none gained) stays within noise
    assert vd.compare("7.5 beats 1", [0] * 12, [1] + [0] * 11, percent=True).status == vd.NOISE


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
    assert t.counts() == {vd.AGREES: 1, vd.DISAGREES: 1, vd.NOISE: 0, vd.TOO_FEW: 0}
    with pytest.raises(TypeError):
        vd.table(["not a verdict"])


# ------------------------------------------------------------------- statistics that fit the sample (issue 28)
def test_images_of_few_prompts_are_resampled_by_prompt_not_by_image():
    # 6 prompts x 6 seeds: a difference that lives in the prompts. Resampled per image the 36 values look like 36
    # draws and give a confident interval; resampled per prompt they are 6 units -- too few to tell.
    rng = np.random.default_rng(4)
    per_prompt = rng.normal(0.3, 0.5, size=6)
    diff = np.repeat(per_prompt, 6) + rng.normal(0, 0.05, size=36)
    prompts = np.repeat(np.arange(6), 6)
    by_image = vd.compare("a beats b", diff, np.zeros(36))
    by_prompt = vd.compare("a beats b", diff, np.zeros(36), groups=prompts, unit="images")
    assert by_image.status in (vd.AGREES, vd.DISAGREES)
    assert by_prompt.status == vd.TOO_FEW and "no interval" in by_prompt.numbers and "[" not in by_prompt.numbers
    assert "in 6 groups" in by_prompt.n


def test_cluster_bootstrap_of_12_prompts_is_wider_than_the_image_bootstrap():
    rng = np.random.default_rng(5)
    x = np.repeat(rng.normal(size=12), 6) + rng.normal(0, 0.1, size=72)
    g = np.repeat(np.arange(12), 6)
    wide, narrow = vd.bootstrap_mean(x, groups=g), vd.bootstrap_mean(x)
    assert not wide.too_few and (wide.high - wide.low) > 2 * (narrow.high - narrow.low)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_fewer_than_eight_units_never_get_an_interval(n):
    assert vd.proportion("most", n, n).status == vd.TOO_FEW  # n of n: still too few
    assert vd.from_interval("above 0", vd.bootstrap_mean([1.0] * n), f"{n} items", "mean").status == vd.TOO_FEW
    v = vd.compare("a > b", [1.0] * n, [0.0] * n, paired=False, percent=True)
    assert v.status == vd.TOO_FEW and "+100 points (only" in v.numbers  # never "[+100, +100]"
    assert vd.proportion("most", 8, 8).status == vd.AGREES  # from 8 units on, the interval speaks


def test_one_training_run_is_one_sample_not_a_verdict():
    v = vd.one_run("little data overfits", True, "gap +0.02 vs +0.00")
    assert v.status == vd.TOO_FEW and "one run is one sample" in v.note and "claimed way" in v.note
    assert "too few to tell" in vd.table([v]).to_markdown()
    three = vd.one_run("GAN training is unstable", False, "spread 14 points", "3 seeds", runs=3)
    assert three.status == vd.TOO_FEW and "3 runs are 3 samples" in three.note and "against the claim" in three.note
    with pytest.raises(ValueError, match="runs"):
        vd.one_run("x", True, "", runs=8)  # from 8 runs on, judge them with an interval instead


# ------------------------------------------------------------------- bad input is refused clearly (issue 27, item 7)
@pytest.mark.parametrize("threshold", [50, 1.5, -0.1, float("nan"), "0.5", None, True])
def test_proportion_threshold_is_a_fraction(threshold):
    with pytest.raises(ValueError, match=r"threshold .*fraction from 0 to 1"):
        vd.proportion("half", 5, 10, threshold=threshold)


@pytest.mark.parametrize("holds", ["no", "yes", None, 1, 0.0, [True]])
def test_exact_takes_a_bool_only(holds):
    with pytest.raises(ValueError, match="holds must be True or False"):
        vd.exact("fact", holds, "", "1 run")
    assert vd.exact("fact", np.bool_(True), "", "1").status == vd.AGREES  # numpy's bool is a bool


@pytest.mark.parametrize("call", [
    lambda: vd.compare("x", [1.0] * 10, [0.0] * 10, margin=float("nan")),
    lambda: vd.compare("x", [1.0] * 10, [0.0] * 10, margin="0.1"),
    lambda: vd.from_interval("x", vd.Interval(1, 0, 2), "1", "m", threshold=float("nan")),
    lambda: vd.compare("x", [1.0, float("nan")] * 5, [0.0] * 10),
    lambda: vd.bootstrap_mean([float("nan")] * 10),
    lambda: vd.compare("x", [1.0] * 10, [float("inf")] * 10, paired=False),
    lambda: vd.compare("x", [1.0] * 10, [0.0] * 10, claim_above="yes"),
    lambda: vd.wilson(3, 10, level=95),
    lambda: vd.Interval(float("nan"), float("nan"), float("nan")),
])
def test_nan_and_wrong_types_are_refused_with_the_parameter_named(call):
    with pytest.raises(ValueError, match=r"margin|threshold|finite|claim_above|level|interval"):
        call()


def test_unpaired_groups_are_a_pair():
    with pytest.raises(ValueError, match="pair"):
        vd.compare("x", [1.0] * 10, [0.0] * 10, paired=False, groups=list(range(10)))
    v = vd.compare("x", [1.0] * 40, [0.0] * 40, paired=False, groups=(np.repeat(range(10), 4), np.repeat(range(8), 5)))
    assert v.status == vd.AGREES and "8+ groups" in v.n


def test_rank_correlation_interval_matches_fishers_normal_theory_and_ignores_monotone_rescaling():
    """Spearman's rho over 300 units: the bootstrap interval agrees with the Fisher-z interval (SE 1.06/sqrt(n-3),
    Fieller et al.), and squashing one side through exp (same ranks) changes nothing."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = -0.5 * x + rng.normal(size=300)
    iv = vd.bootstrap_spearman(x, y)
    half = 1.96 * 1.06 / np.sqrt(len(x) - 3)
    low, high = np.tanh(np.arctanh(iv.estimate) - half), np.tanh(np.arctanh(iv.estimate) + half)
    assert iv.estimate < -0.3 and iv.units == 300
    assert iv.low == pytest.approx(low, abs=0.04) and iv.high == pytest.approx(high, abs=0.04)
    assert vd.bootstrap_spearman(np.exp(x), y) == iv


def test_rank_correlation_of_few_or_flat_units_has_no_interval():
    few = vd.bootstrap_spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert few.estimate == pytest.approx(-1.0) and few.too_few  # 5 units: the estimate alone
    assert vd.bootstrap_spearman(range(10), [0.5] * 10).estimate == 0.0  # one side constant: no ranks to correlate
    with pytest.raises(ValueError, match="x and y must pair up: 3 and 2 values"):
        vd.bootstrap_spearman([1, 2, 3], [1, 2])
