"""Lesson 6 on scenes-sd: where "fox" and "leaves" look and what a ground cell's self-attention looks at, asserted on
the findings the lesson exports (docs/findings/06.json), and the measures behind them on small, fast inputs."""


import numpy as np
import pytest

from explainer import verdicts as vd
from explainer.experiments import scenes_attention as sa
from explainer.experiments import summaries


@pytest.fixture(scope="module")
def f06():
    return summaries.load("06")


def _judged(values, found):
    return [v for v, ok in zip(values, found, strict=True) if ok]


def test_lesson6_findings_are_on_scenes_sd_over_prompts(f06):
    n = f06["numbers"]
    assert n["model"] == "scenes-sd" and n["prompts"][0] == "a red fox sitting in autumn leaves"
    assert len(set(n["prompts"])) == len(n["prompts"]) >= 8  # the prompt is the unit: enough for an interval
    assert sum(n["fox_found"]) >= 8
    assert all(v["n"].split()[1] == "prompts" for v in f06["verdicts"])


def test_lesson6_statuses_go_the_way_their_means_go(f06):
    n = f06["numbers"]
    found = n["fox_found"]
    fox_on, leaves_on = _judged(n["on_fox"]["fox"], found), _judged(n["on_fox"]["leaves"], found)
    area = _judged(n["fox_area"], found)
    s = n["self"]
    pairs = {"the word \u201cfox\u201d's cross-attention lands": (fox_on, area),
             "the word \u201cfox\u201d looks at the fox more": (fox_on, leaves_on),
             "the word \u201cleaves\u201d's cross-attention lands": (n["on_ground"]["leaves"],
                                                                     [n["ground_area"]] * len(n["prompts"])),
             "the word \u201cleaves\u201d looks at the ground more": (n["on_ground"]["leaves"], n["on_ground"]["fox"]),
             "self-attention of the ground": (s["on_ground"], s["uniform_on_ground"]),
             "self-attention looks near": (s["near"], s["uniform_near"]),
             "self-attention looks far": (s["far"], s["uniform_far"])}
    for start, (a, b) in pairs.items():
        status = summaries.verdict(f06, start)["status"]
        assert status != vd.TOO_FEW
        if status == vd.AGREES:
            assert np.mean(a) > np.mean(b), start
        if status == vd.DISAGREES:
            assert np.mean(a) < np.mean(b), start
    # the headline is rendered from these numbers
    h = f06["headline"]
    assert f"\u201cfox\u201d {np.mean(fox_on):.3f} on the judged fox vs its area {np.mean(area):.3f}" in h
    assert f"far {np.mean(s['far']):.3f} vs uniform {np.mean(s['uniform_far']):.3f}" in h


def test_lesson6_regions_follow_the_worlds_horizon():
    ground, sky = sa.regions(8, 8)
    assert ground[:, 0].tolist() == [False] * 5 + [True] * 3  # cell centres 44, 52, 60 px lie below 36 px
    assert sky[:, 0].tolist() == [True] * 3 + [False] * 5  # 4, 12, 20 px lie above 26 px
    assert not (ground & sky).any()
    prompts = sa.fox_prompts(12)
    assert len(set(prompts)) == 12 and all("fox" in p and "leaves" in p for p in prompts)


def test_lesson6_a_uniform_self_attention_map_scores_as_its_baseline():
    h = w = 8
    ground, _ = sa.regions(h, w)
    uniform = np.full((h * w, h * w), 1 / (h * w))
    got = sa._query_shares(uniform, h, w, ground, ground)
    for key in ("on_ground", "near", "far"):
        assert got[key] == pytest.approx(got[f"uniform_{key}"])
    assert got["uniform_on_ground"] == pytest.approx(ground.mean())


def test_lesson6_studies_on_two_prompts(scenes_pipe):
    prompts = sa.fox_prompts(2)
    cs = sa.cross_study(scenes_pipe, prompts, steps=3)
    assert cs.level == cs.traces[0].levels[0] and len(cs.fox_masks) == 2
    for word in sa.WORDS:
        assert all(0 <= x <= 1 for x in cs.on_ground[word])
    ss = sa.self_study(scenes_pipe, prompts, steps=3, fox_cells=cs.fox_masks)
    assert ss.example.shape == ss.size and ss.example.sum() == pytest.approx(1.0, abs=1e-4)
    assert all(len(v) == 2 for v in ss.values.values())
