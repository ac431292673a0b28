"""Lessons 7-13 (part 2, the controls people turn): the numbers each lesson prints and states, asserted with margins.

Every test calls the lesson's own experiment function with the lesson's own arguments (shared per module, so each
experiment runs once), on the shipped model. Where our small model disagrees with a popular claim the lesson says so;
these tests pin what the lesson says, not the popular claim.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explainer import plots
from explainer import verdicts as vd
from explainer.experiments import families, guidance, negative, resolution, samplers, seeds, summaries


# --------------------------------------------------------------------------------------------- lesson 7
@pytest.fixture(scope="module")
def cfg_trace(shipped_pipe):
    import explainer as ex

    return ex.trace(shipped_pipe, "a red circle left of a blue square", seed=0, steps=25, cfg=7.5)


@pytest.fixture(scope="module")
def sweep(shipped_pipe):
    return guidance.cfg_sweep(shipped_pipe)


def test_cfg_formula_holds_on_the_recorded_tensors(cfg_trace):
    check = guidance.check_formula(cfg_trace)
    assert check.steps == 25
    assert check.max_abs_error <= 1e-5 * max(1.0, check.max_abs_guided)


def test_cfg_delta_concentrates_on_the_objects_and_acts_early(cfg_trace):
    check = guidance.check_formula(cfg_trace)
    assert check.inside_share > check.footprint_share + 0.03
    assert check.first_half_effect > 0.5  # weighted by the sampler's step size, the push is early


def _verdict(vs, start: str):
    hits = [v for v in vs if v.claim.startswith(start)]
    assert len(hits) == 1, (start, [v.claim for v in vs])
    return hits[0]


def test_cfg_sweep_columns_are_what_the_table_says(sweep):
    # the table's columns, recomputed from the outside from the images with the judge
    from explainer.judge import judge, judge_against, parse_prompt

    for s in (1.0, 20.0):
        ims = sweep.images[s]
        objects = np.mean([bool(judge_against(im, p)["objects"]) for im, p in zip(ims, sweep.prompts, strict=True)])
        assert sweep.adherence[s]["objects"] == pytest.approx(objects)
        extra = np.mean([judge(im).count > len(parse_prompt(p).objects) for im, p in zip(ims, sweep.prompts,
                                                                                         strict=True)])
        assert sweep.extra_objects[s] == pytest.approx(extra)
        fates = sweep.fates[s]
        assert len(fates) == 2 * len(ims)
        right = sum(judge(im).find(color=o.color, shape=o.shape) is not None
                    for im, p in zip(ims, sweep.prompts, strict=True) for o in parse_prompt(p).objects)
        assert fates.count("right") == right


def test_cfg_explorer_captions_say_what_the_judge_reads(sweep):
    # the explorer's caption per image: "as asked" exactly when the judge finds the whole prompt, and otherwise it
    # names every named object the judge cannot find with its colour and shape
    from explainer.judge import judge, judge_against, parse_prompt

    for s in (1.0, 20.0):
        for k, (im, p) in enumerate(zip(sweep.images[s], sweep.prompts, strict=True)):
            text = sweep.image_summary(s, k)
            assert (text == "as asked") == bool(judge_against(im, p)["all"]), (s, k, text)
            for o in parse_prompt(p).objects:
                if judge(im).find(color=o.color, shape=o.shape) is None:
                    assert f"{o.color} {o.shape}" in text, (s, k, text)


def test_cfg_sweep_matches_what_the_lesson_says(sweep):
    a = {s: sweep.adherence[s]["all"] for s in sweep.scales}
    v = guidance.verdicts(sweep)
    # "CFG 1 already draws both objects in most images"
    assert sweep.adherence[1.0]["objects"] >= 0.75
    assert _verdict(v, "low CFG skips parts").status != vd.AGREES
    # "the best scale beats the extremes at the high end clearly"
    best = max(sweep.scales, key=lambda s: a[s])
    assert 1.0 <= best <= 7.5
    assert _verdict(v, f"a middle scale is the sweet spot: CFG {best:g} (best here) beats CFG 20").status == vd.AGREES
    # README: "CFG 3 vs 1 and 7.5 is within noise (36 images)"
    for other in (1.0, 3.0, 7.5):
        if other != best:
            assert _verdict(v, f"a middle scale is the sweet spot: CFG {best:g} (best here) beats CFG {other:g}"
                            ).status == vd.NOISE
    # "over-saturation: it is there, and measured: saturation rises and many more channel values clip at CFG 20"
    assert _verdict(v, "high CFG over-saturates").status == vd.AGREES
    assert _verdict(v, "high CFG clips colour values").status == vd.AGREES
    assert sweep.saturation[20.0] > sweep.saturation[1.0] + 0.03
    assert sweep.clipped[20.0] > 5 * sweep.clipped[1.0]
    # "at 12 and 20 the objects mostly do not vanish: they change colour or lose their shape, and extra blobs appear"
    for s in (12.0, 20.0):
        changed = sweep.fate_share(s, "recoloured") + sweep.fate_share(s, "reshaped")
        assert changed > sweep.fate_share(s, "gone"), s
    assert _verdict(v, "at CFG 20 a named object that goes wrong changes").status == vd.AGREES
    assert _verdict(v, "high CFG adds extra objects").status == vd.AGREES
    # "the relation column hardly moves with the scale"
    rel = [sweep.adherence[s]["relation"] for s in sweep.scales]
    assert max(rel) - min(rel) <= 0.1, rel
    assert _verdict(v, "more guidance draws the relation right").status != vd.AGREES


def test_cfg_branches_at_step_9_are_nearly_the_same_picture(cfg_trace):
    late, first = guidance.branch_gap(cfg_trace, 8), guidance.branch_gap(cfg_trace, 0)
    # "their difference is small next to a whole picture"; guidance multiplies it by CFG - 1
    assert late["cond_vs_uncond"] < 0.25 * late["picture"]
    assert late["guided_vs_cond"] == pytest.approx(6.5 * late["cond_vs_uncond"])
    # "at step 1 the gap between the branches is larger"
    assert first["cond_vs_uncond"] > late["cond_vs_uncond"]
    # and the same numbers from the recorded predictions, recomputed from x0 = x - sigma * eps
    st = cfg_trace.steps[8]
    gap = float((float(st.sigma) * (st.noise_cond - st.noise_uncond)).double().pow(2).mean().sqrt())
    assert late["cond_vs_uncond"] == pytest.approx(gap, rel=1e-4)


def test_running_example_is_judged(cfg_trace):
    from explainer.judge import judge_against

    v = guidance.running_example(cfg_trace)
    checks = judge_against(cfg_trace.image, cfg_trace.prompt)
    assert v.agrees == bool(checks["all"])
    assert ("relation" in v.numbers.split("wrong: ")[1]) == (checks["relation"] is False)


# --------------------------------------------------------------------------------------------- lesson 8
@pytest.fixture(scope="module")
def neg_what(shipped_pipe):
    return negative.what_negative_is(shipped_pipe, prompt="a circle", negative="red", seed=0)[0]


@pytest.fixture(scope="module")
def neg_effect(shipped_pipe):
    return negative.negative_effect(shipped_pipe, prompt="a circle", negative="white", seeds=range(24))


def test_negative_prompt_is_the_unconditional_branch(neg_what):
    assert "red" in neg_what.negative_tokens
    assert "red" not in neg_what.plain_uncond_tokens
    assert neg_what.uncond_vs_negative_encoding < 1e-5
    assert neg_what.uncond_vs_empty_encoding < 1e-5
    assert neg_what.cond_same < 1e-5
    assert neg_what.formula_error < 1e-4
    assert neg_what.moved_away > 0.999


def test_negative_prompt_pushes_white_away(neg_what, neg_effect):
    # "white" is the colour our model picks most often for "a circle"; the negative prompt removes it
    assert sum(neg_effect.colours_with.values()) == 24
    without = neg_effect.colours_without
    assert max(without, key=without.get) == "white" and neg_effect.share("white", with_negative=False) >= 0.3
    assert neg_effect.share("white", with_negative=True) <= 0.1
    # ... and the circle stays: the judge accepts about as many circles with the negative prompt as without
    assert neg_effect.asked_kept_with >= neg_effect.asked_kept_without - 0.1
    v = summaries.lesson8(neg_what, neg_effect)
    assert [x.status for x in v[:3]] == [vd.AGREES] * 3, [x.sentence() for x in v]


# --------------------------------------------------------------------------------------------- lesson 9
@pytest.fixture(scope="module")
def study(shipped_pipe):
    return samplers.sampler_study(shipped_pipe)


def test_sampler_study_counts_network_evaluations(study):
    for r in study.runs:
        expected = 2 * r.steps - 1 if r.sampler == "heun" else r.steps
        assert r.unet_evals == expected, (r.sampler, r.steps, r.unet_evals)


def test_more_steps_get_closer_to_the_reference_with_diminishing_returns(study):
    d = {n: study.run("dpm++2m", n).distance for n in (5, 10, 20, 40, 80)}
    assert d[5] > d[20] > d[80]
    assert study.change("dpm++2m", 20, 40) >= study.change("dpm++2m", 40, 80) - 1e-3
    assert d[80] < 0.02  # 80 and 100 steps agree closely: the reference is converged enough
    # what lesson 9 says: 10 -> 20 is a visible change, 20 -> 40 is not (yardstick RMSE 0.02)
    assert study.change("dpm++2m", 10, 20) > 0.02 > study.change("dpm++2m", 20, 40)


def test_heun_loses_per_network_evaluation(study):
    assert study.run("heun", 10).distance > study.run("euler", 20).distance


def test_dpm_is_not_the_best_deterministic_sampler_at_few_steps(study):
    # lesson 9: "on our model the multistep method does not win at 5 or 10 steps"
    for n in (5, 10):
        assert study.run("dpm++2m", n).distance > min(study.run("euler", n).distance, study.run("ddim", n).distance)


@pytest.fixture(scope="module")
def few(shipped_pipe):
    return samplers.few_step_adherence(shipped_pipe, n=16)


def test_lcm_judged_by_adherence(few, study):
    assert len(few.prompts) == 16 and all(len(v) == 16 for v in few.adherent.values())
    # "at 4-5 steps both samplers get only a few of the 16 pictures right"
    assert few.rate("lcm", 4) <= 0.25 and few.rate("dpm++2m", 5) <= 0.25
    # "neither comes near an ordinary 25-step run"
    assert few.rate("dpm++2m", 25) >= max(few.rate("lcm", 8), few.rate("dpm++2m", 5)) + 0.4
    v = samplers.sampler_verdicts(study, few)
    assert _verdict(v, "LCM at 4 steps falls short of an ordinary 25-step run").status == vd.AGREES
    assert _verdict(v, "diminishing returns").status == vd.AGREES
    assert _verdict(v, "Heun wins per U-Net evaluation").status == vd.DISAGREES


def test_sampler_traces_share_their_start(shipped_pipe):
    trs = samplers.sampler_traces(shipped_pipe)
    assert [t.settings["scheduler"] for t in trs] == ["euler", "dpm++2m", "ddim", "heun"]
    starts = [t.steps[0].latents for t in trs]
    # Euler/Heun scale the starting noise by sigma_max; DDIM/DPM++ do not: compare directions
    for s in starts[1:]:
        cos = float((s.flatten() @ starts[0].flatten()) / (s.norm() * starts[0].norm()))
        assert cos > 0.999
    # on lesson 9's map (plots.trajectory puts Euler/Heun on the DDIM/DPM++ scale) they start at one point
    paths = [torch.from_numpy(plots.trajectory(t)) for t in trs]
    for q in paths[1:]:
        torch.testing.assert_close(q[0], paths[0][0], rtol=0, atol=0.02 * float(paths[0][0].abs().max()))
        assert float((q[-1] - paths[0][-1]).norm() / paths[0][-1].norm()) < 0.2  # ... and end close together


# --------------------------------------------------------------------------------------------- lesson 10
def test_same_seed_same_settings_identical_bits(shipped_pipe):
    rep, _ = seeds.reproducibility(shipped_pipe, prompt="a red circle left of a blue square", seed=0, other_seed=1)
    assert rep.identical and rep.max_pixel_difference == 0 and rep.noise_identical
    assert rep.other_seed_differs


def test_same_seed_keeps_layout_better_than_another_seed(shipped_pipe):
    lay = seeds.layout_study(shipped_pipe)
    # lesson 10 says: on our model the seed keeps the layout only as a weak tendency
    assert lay.same_seed_iou > lay.other_seed_iou
    assert lay.same_seed_shift < lay.other_seed_shift
    assert lay.same_seed_iou - lay.other_seed_iou < 0.15
    assert len(lay.same_ious) == 3 * 8 and np.mean(lay.same_ious) == pytest.approx(lay.same_seed_iou)
    v = summaries.lesson10(seeds.reproducibility(shipped_pipe, prompt="a red circle left of a blue square", seed=0,
                                                 other_seed=1)[0], lay, seeds.noise_norms(0, 1))
    assert v[0].agrees and v[1].agrees and v[-1].agrees
    assert v[3].status != vd.DISAGREES  # "only weakly"


def test_slerp_keeps_the_noise_size():
    n = seeds.noise_norms(0, 1)
    assert abs(n["slerp_midpoint"] - (n["seed_a"] + n["seed_b"]) / 2) < 0.05 * n["seed_a"]
    assert n["lerp_midpoint"] < 0.8 * min(n["seed_a"], n["seed_b"])


# --------------------------------------------------------------------------------------------- lesson 11
def test_latent_table(shipped_pipe):
    rows = resolution.latent_table(shipped_pipe)
    assert rows[0]["latent"] == "4x8x8" and rows[0]["compression"] == 12
    assert rows[1]["tokens at finest attention"] == 4 * rows[0]["tokens at finest attention"]


def test_cost_grows_with_resolution(shipped_pipe):
    costs = resolution.cost_vs_resolution(shipped_pipe, sizes=[(32, 32), (64, 64), (96, 96), (128, 128)], steps=10)
    assert costs[-1].seconds > costs[0].seconds
    if resolution.memory_supported():
        assert costs[-1].peak_bytes > costs[0].peak_bytes
    else:
        assert all(math.isnan(c.peak_bytes) for c in costs)


def test_tracemalloc_misses_torch_memory(shipped_pipe):
    tm = resolution.tracemalloc_peak(lambda: resolution.generate_many(shipped_pipe, ["a red circle"], [0], steps=2,
                                                                       height=128, width=128))
    assert tm < 8 * 2**20  # a 128x128 run moves far more than this through torch


def test_model_does_best_at_its_training_size(shipped_pipe):
    off = resolution.off_size(shipped_pipe)
    assert off.adherence[(32, 32)] >= off.adherence[(64, 64)]
    assert off.one_object[(32, 32)] >= off.one_object[(64, 64)]
    # lesson 11 says: at other sizes it keeps the colour but draws extra objects
    for size in ((64, 64), (32, 64)):
        assert off.mean_objects[size] > off.mean_objects[(32, 32)] + 0.5
        assert off.colour[size] >= 0.5


# --------------------------------------------------------------------------------------------- lesson 12
def test_parameter_counts_and_the_tiny_dit(shipped_pipe):
    rows = families.component_params(shipped_pipe)
    assert rows["tokenizer"][1] == 0 and rows["scheduler"][1] == 0
    assert rows["unet"][1] == max(n for _, n in rows.values())
    dit = families.build_tiny_dit(shipped_pipe, layers=8, width=256, heads=4, patch=1)
    run = families.run_dit(dit, shipped_pipe, prompt="a red circle", steps=10)
    assert run.image.size == (32, 32)
    assert run.transformer_params == sum(p.numel() for p in dit.transformer.parameters())
    # transformer pipelines are traced through the adapter seam now (PixArt-style tiny DiT)
    assert run.traced, run.trace_message


def test_families_table_names_its_sources():
    names = [row["family"] for row in families.FAMILIES]
    assert any("SDXL" in n for n in names) and any("FLUX" in n for n in names)
    assert all(row["source"] for row in families.FAMILIES)
    assert "860 M" in families.FAMILIES[0]["denoiser"]


# --------------------------------------------------------------------------------------------- lesson 13
def test_playground_runs_headless_and_the_challenge_checkers_work(shipped_pipe):
    from explainer import widgets

    pg = widgets.playground(shipped_pipe, prompt="a red circle left of a blue square", seed=0, cfg=7.5, steps=25)
    pg.run()
    assert pg.trace is not None and pg.image.value and not pg.message.value
    from explainer.judge import judge_against

    # challenge 2's checker: at the scale it returns both objects are judged present, and at the scale before not
    scales = (1, 1.5, 2, 3, 4, 5, 7.5)
    s = guidance.second_object_scale(shipped_pipe, "a yellow star above a green square", seed=0, scales=scales)
    if s is not None:
        im = guidance.generate_many(shipped_pipe, ["a yellow star above a green square"], [0], cfg=s)[0]
        assert judge_against(im, "a yellow star above a green square")["objects"]
        if scales.index(s) > 0:
            prev = guidance.generate_many(shipped_pipe, ["a yellow star above a green square"], [0],
                                          cfg=scales[scales.index(s) - 1])[0]
            assert not judge_against(prev, "a yellow star above a green square")["objects"]
    v = summaries.lesson13(judge_against(pg.trace.image, pg.prompt.value), pg.prompt.value)
    assert v[0].agrees == bool(judge_against(pg.trace.image, pg.prompt.value)["all"])
