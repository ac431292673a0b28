"""Lessons 9 and 11 on the scenes model: the machinery, on small fast calls (the lessons' findings are asserted in
tests/test_lessons_part2.py on docs/findings/09.json and 11.json)."""

from __future__ import annotations

import numpy as np
import pytest

from explainer import verdicts as vd
from explainer.experiments import resolution, samplers, scenes_resolution, scenes_samplers
from explainer.worlds.scenes import ANIMALS


def test_texture_scenes_hold_an_animal_or_a_forest_on_leaves_or_grass():
    scenes = scenes_samplers.texture_scenes(6)
    assert len(scenes) == 6 and len({s.caption for s in scenes}) == 6
    for s in scenes:
        assert s.ground in ("leaves", "grass")
        assert s.kind == "forest" or (s.kind == "single" and s.things[0].name in ANIMALS)


def test_scenes_sampler_study_counts_calls_reuses_its_reference_and_splits_bands(scenes_pipe):
    sc = scenes_samplers.texture_scenes(2)
    st = scenes_samplers.study(scenes_pipe, sc, plan={"dpm++2m": (2, 4), "heun": (2,)}, reference=("dpm++2m", 4))
    assert st.model == "scenes-sd" and st.prompts == [s.caption for s in sc] and st.seeds == [0, 1]
    assert st.run("heun", 2).unet_evals == 3 and st.run("dpm++2m", 4).unet_evals == 4
    assert st.run("dpm++2m", 4).distance == 0.0  # the reference, drawn once
    assert all(len(r.right) == 2 and r.adherence == np.mean(r.right) for r in st.runs)
    coarse, fine = scenes_samplers.bands(st, "dpm++2m", 4)
    assert coarse == [0.0, 0.0] and fine == [0.0, 0.0]
    coarse, fine = scenes_samplers.bands(st, "dpm++2m", 2, 4)
    assert min(coarse) > 0 and min(fine) > 0
    maps = scenes_samplers.detail_maps(st, 0)
    assert [m.shape for m in maps] == [(64, 64)] * 2 and float(maps[1].max()) == 0.0
    # two prompts are too few for an interval: every verdict says so
    assert all(v.status == vd.TOO_FEW for v in scenes_samplers.texture_verdicts(st, a=2, b=4))


def test_coarse_fine_split_puts_a_shift_in_coarse_and_a_checkerboard_in_fine():
    from explainer.experiments.scenes_denoising import coarse_fine_rms

    base = np.full((64, 64, 3), 100, np.uint8)
    shifted = base + 20  # the whole picture lighter: no texture at all
    checker = base + 20 * ((np.indices((64, 64)).sum(0) % 2)[..., None]).astype(np.uint8)  # 1-px texture
    assert coarse_fine_rms(shifted, base) == pytest.approx((20 / 255, 0.0), abs=1e-9)
    c, f = coarse_fine_rms(checker, base)
    assert c == pytest.approx(10 / 255, abs=1e-9) and f == pytest.approx(10 / 255, abs=1e-9)  # its mean and its swing
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    c, f = coarse_fine_rms(a, b)  # the two parts are orthogonal: their squares add up to the whole RMSE squared
    whole = np.sqrt((((a.astype(float) - b) / 255) ** 2).mean())
    assert c ** 2 + f ** 2 == pytest.approx(whole ** 2, rel=1e-9) and f > c  # noise is mostly fine


def test_steps_verdicts_follow_the_changes():
    from types import SimpleNamespace

    # 8 prompts: 20 -> 40 changes every picture by 0.05 (visible), 40 -> 80 by 0.001 (not)
    ch = {(10, 20): 0.1, (20, 40): 0.05, (40, 80): 0.001}
    st = SimpleNamespace(model="m", prompts=[f"p{i}" for i in range(8)],
                         changes=lambda s, a, b: [ch[(a, b)] + 1e-4 * i for i in range(8)])
    v = samplers.steps_verdicts(st)
    assert [x.status for x in v] == [vd.AGREES] * 3 and all(x.claim.startswith("m: ") for x in v)
    assert scenes_samplers.agreeing(v, ["m", "other"]) == {"m": True, "other": False}


def test_latent_table_reads_channels_and_attention_from_the_config(scenes_pipe):
    rows = resolution.latent_table(scenes_pipe, [(64, 64), (64, 128), (128, 128)])
    c, f = scenes_pipe.unet.config.in_channels, scenes_pipe.vae_scale_factor
    assert rows[0]["latent"] == f"{c}x{64 // f}x{64 // f}" and rows[1]["latent"] == f"{c}x{64 // f}x{128 // f}"
    a = resolution.attention_divisor(scenes_pipe)
    assert rows[2]["tokens at finest attention"] == (128 // f // a) ** 2
    assert rows[2]["self-attention pairs"] == 16 * rows[0]["self-attention pairs"]


def test_off_size_reads_every_size_at_the_judges_size(scenes_pipe):
    sc = scenes_resolution.off_size_scenes(2)
    assert all(s.kind == "single" and s.things[0].size == "large" for s in sc)
    off = scenes_resolution.off_size(scenes_pipe, sc, sizes=[(64, 64), (64, 128)], steps=2)
    assert off.images[(64, 128)][0].size == (128, 64)  # PIL: width x height
    assert scenes_resolution.for_judge(off.images[(64, 128)][0]).shape == (64, 64, 3)
    assert all(len(off.values[k][s]) == 2 and set(off.values[k][s]) <= {0.0, 1.0}
               for k in scenes_resolution.KEYS for s in off.sizes)
    v = scenes_resolution.off_size_verdicts(off)
    assert len(v) == 5 and all(x.status == vd.TOO_FEW for x in v[:3])  # two prompts: no interval


def test_cost_verdicts_never_call_one_timed_run_a_verdict():
    costs = [resolution.Cost((64, 64), (8, 8), 1.0, 1.0), resolution.Cost((128, 128), (16, 16), 3.0, 5.0)]
    rows = [{"image": "64x64", "latent positions": 64, "self-attention pairs": 64 ** 2},
            {"image": "128x128", "latent positions": 256, "self-attention pairs": 256 ** 2}]
    v = scenes_resolution.cost_verdicts(costs, rows)
    assert [x.status for x in v] == [vd.TOO_FEW, vd.TOO_FEW, vd.AGREES]
