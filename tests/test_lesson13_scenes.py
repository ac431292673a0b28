"""Lesson 13 on scenes-sd: the playground opens on the fox and runs headless; each challenge's finding is what its
exported numbers say (docs/findings/13.json), and the measures behind them work on a small draw."""


import numpy as np
import pytest

from explainer import verdicts as vd
from explainer.experiments import scenes_challenges as ch
from explainer.experiments import summaries


@pytest.fixture(scope="module")
def f13():
    return summaries.load("13")


def _mean(x):
    return float(np.mean(x))


def test_lesson13_playground_opens_on_the_fox_and_its_first_run_is_judged(scenes_pipe):
    from explainer import widgets
    from explainer.experiments.scenes_eval import article_checks
    from explainer.worlds.scenes_judge import read

    prompt = "a red fox sitting in autumn leaves"
    pg = widgets.playground(scenes_pipe, prompt=prompt, seed=0, cfg=7.5, steps=4)
    pg.run()
    assert pg.trace is not None and pg.image.value and not pg.message.value
    checks = article_checks(read(np.asarray(pg.trace.image.convert("RGB")))[0], prompt)
    assert set(checks) == {"object", "ground"}
    v = summaries.lesson13(checks, prompt)
    assert v[0].agrees == all(checks.values())


def test_lesson13_findings_are_on_scenes_sd_over_seeds(f13):
    n = f13["numbers"]
    assert n["model"] == "scenes-sd" and n["prompt"] == "a red fox sitting in autumn leaves"
    assert len(n["seeds"]) >= 8  # the seed is the unit: enough for an interval
    for v in f13["verdicts"][1:]:
        assert "seeds" in v["n"]
    first = summaries.verdict(f13, "the playground's first run")
    assert (first["status"] == vd.AGREES) == all(n["first_checks"].values())


def test_lesson13_each_challenge_has_an_answer_its_numbers_give(f13):
    n = f13["numbers"]
    one, both = n["two_things"]["one"], n["two_things"]["both"]
    low, high = sorted(n["cfg"]["fox"], key=lambda k: float(k.split()[-1]))
    fox_lo, fox_hi = n["cfg"]["fox"][low], n["cfg"]["fox"][high]
    day, night = n["light"]["brightness"]["day"], n["light"]["brightness"]["night"]
    # every status goes the way its means go (a measured difference never reads as its opposite; no difference at
    # all, [+0, +0], does not agree with "more often", as verdicts.judge_interval rules)
    for start, a, b in (("one thing alone", one, both), (f"CFG {high.split()[-1]} draws the fox", fox_hi, fox_lo),
                        ("'a fox at night' is darker", day, night)):
        status = summaries.verdict(f13, start)["status"]
        assert status != vd.TOO_FEW
        if status == vd.AGREES:
            assert _mean(a) > _mean(b)
        if status == vd.DISAGREES:
            assert _mean(a) <= _mean(b)
    # the headline is rendered from these numbers
    h = f13["headline"]
    assert f"{int(sum(fox_lo))}/{len(fox_lo)}" in h and f"{int(sum(fox_hi))}/{len(fox_hi)}" in h
    assert f"night {_mean(night):.0f} vs day {_mean(day):.0f}" in h
    same, other = n["seed"]["same_sky"]
    assert f"{_mean(same):.0%} vs {_mean(other):.0%}" in h
    assert summaries.verdict(f13, "scenes-sd: the same seed keeps the lighting")["status"] in vd.STATUSES


def test_lesson13_challenge_measures_on_a_small_draw(scenes_pipe):
    d = ch.draw(scenes_pipe, [("day", "a fox in the day", 7.5), ("night", "a fox at night", 7.5)], seeds=[0, 1],
                steps=3)
    assert d.images["day"].shape == (2, 64, 64, 3) and d.images["day"].dtype == np.uint8
    assert d.brightness("night") == [float(im.mean()) for im in d.images["night"]]
    for label in ("day", "night"):
        assert set(d.found(label, "fox")) <= {0.0, 1.0} and len(d.sky(label, label)) == 2
        assert d.ground(label, d.readings[label][0].ground)[0] == 1.0
    fig = d.figure("t")
    assert len(fig["rows"]) == len(fig["row_labels"]) == 2 and len(fig["cell_labels"][0]) == 2
    assert all("\n" in c for c in fig["cell_labels"][0])  # things, then ground and sky
    with pytest.raises(ValueError):
        ch.draw(scenes_pipe, [], seeds=[0])
