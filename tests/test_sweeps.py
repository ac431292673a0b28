"""Grids and interpolation: every cell / end frame equals the single run bit for bit; batching is used and is exact."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch

from explainer import generation
from explainer.plots import plot_grid, plot_interpolation
from explainer.sweeps import generate, grid, interpolate_prompts, interpolate_seeds, slerp

PROMPT = "a red circle left of a blue square"
STEPS = 3


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def assert_cells_equal_single_runs(pipe, res, prompt=PROMPT):
    rows, cols = res.shape
    for r in range(rows):
        for c in range(cols):
            s = res.cell_settings(r, c)
            ref = generate(pipe, prompt, **s)
            assert same(ref, res.image(r, c)), f"cell {r},{c} {s} differs from its single run"


def test_seed_by_cfg_grid_is_batched_and_equals_single_runs(tiny_sd):
    res = grid(tiny_sd, PROMPT, seeds=[0, 1], cfgs=[1.0, 3.0, 7.5], steps=STEPS)
    assert res.shape == (2, 3) and res.row_axis == "seeds" and res.col_axis == "cfgs"
    # CFG > 1 cells share one call, CFG <= 1 cells another (their single runs use U-Net batch 2 and 1)
    assert res.batched_cells == 6 and res.pipeline_calls == 2
    assert_cells_equal_single_runs(tiny_sd, res)
    assert not same(res.image(0, 1), res.image(0, 2)) and not same(res.image(0, 1), res.image(1, 1))


def test_negative_prompt_grid_sdxl_ancestral(tiny_sdxl):
    res = grid(tiny_sdxl, PROMPT, seeds=[0, 1], negative_prompts=[None, "blue square"], steps=STEPS,
               schedulers="euler_a")
    assert res.batched_cells == 4 and res.pipeline_calls == 1
    assert_cells_equal_single_runs(tiny_sdxl, res)


def test_cfg_off_cells_are_batched_and_equal_single_runs_sdxl(tiny_sdxl):
    # without CFG every convolution runs per sample inside the batch (a single run calls the U-Net at batch 1)
    res = grid(tiny_sdxl, PROMPT, seeds=[0, 1, 2], cfgs=[0.5, 1.0], steps=STEPS, rows="cfgs")
    assert res.batched_cells == 6 and res.pipeline_calls == 1
    assert_cells_equal_single_runs(tiny_sdxl, res)
    # a scale <= 1 is never read (no unconditional pass): both rows are the same pictures
    assert all(same(res.image(0, c), res.image(1, c)) for c in range(3))


def test_grid_cell_equals_trace_image(tiny_sd):
    from explainer.trace import trace

    res = grid(tiny_sd, PROMPT, seeds=[5, 6], cfgs=4.0, steps=STEPS)
    tr = trace(tiny_sd, PROMPT, seed=6, steps=STEPS, cfg=4.0, attention=False)
    assert same(tr.image, res.image(0, 1))


def test_steps_by_scheduler_grid_and_figure_labels(tiny_sd):
    res = grid(tiny_sd, PROMPT, steps=[2, 3], schedulers=["ddim", "heun"], seeds=3, cfgs=5.0, rows="schedulers")
    assert res.row_axis == "schedulers" and res.row_values == ["ddim", "heun"] and res.col_values == [2, 3]
    assert_cells_equal_single_runs(tiny_sd, res)
    fig = plot_grid(res)
    texts = [t.get_text() for ax in fig.axes for t in (ax.title, ax.yaxis.label)]
    assert {"2 steps", "3 steps"} <= set(texts) and {"ddim", "heun"} <= set(texts)
    title = fig._suptitle.get_text().replace("\n", " ").replace("\u00a0", " ")
    assert PROMPT in title and "seed 3" in title and "CFG 5" in title
    assert len(fig.axes) == 4 and all(len(ax.images) == 1 for ax in fig.axes)
    np.testing.assert_array_equal(fig.axes[3].images[0].get_array(), np.asarray(res.image(1, 1)))


def test_one_axis_and_progress(tiny_sd):
    seen = []
    res = grid(tiny_sd, PROMPT, seeds=[0, 1, 2], steps=2, progress=lambda d, t: seen.append((d, t)))
    assert res.shape == (1, 3) and res.row_axis is None
    assert seen[-1] == (3, 3)
    assert res.col_labels() == ["seed 0", "seed 1", "seed 2"]


@pytest.mark.parametrize("kwargs, words", [
    (dict(seeds=[0, 1], cfgs=[2, 3], steps=[2, 3]), "at most two axes"),
    (dict(steps=0), "steps"),
    (dict(cfgs=[1, float("nan")]), "cfgs"),
    (dict(schedulers=["ddim", "nope"]), "scheduler"),
    (dict(seeds=[]), "empty"),
    (dict(seeds=[-1]), "seeds"),
    (dict(seeds=[0, 1], rows="cfgs"), "rows"),
])
def test_bad_arguments_are_named(tiny_sd, kwargs, words):
    with pytest.raises(ValueError, match=words):
        grid(tiny_sd, PROMPT, **kwargs)


def test_self_check_refuses_inexact_batching(tiny_sd, monkeypatch):
    generation.VERDICTS.clear()
    monkeypatch.setattr(generation, "exact_batching", functools.partial(generation.exact_batching, chunk=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = grid(tiny_sd, PROMPT, seeds=[0, 1, 2], steps=2)
    generation.VERDICTS.clear()
    assert res.batched_cells == 0 and res.notes and any("not batching" in str(w.message) for w in caught)
    # the fallback ran the cells one by one; they equal the exact batched run (a different path to the same bits)
    monkeypatch.undo()
    exact = grid(tiny_sd, PROMPT, seeds=[0, 1, 2], steps=2)
    generation.VERDICTS.clear()
    assert exact.batched_cells == 3
    assert all(same(exact.image(0, c), res.image(0, c)) for c in range(3))


def test_per_sample_scale():
    s = generation._PerSampleScale([2.0, 3.0])
    assert s > 1 and float(s) == 2.0
    x = torch.ones(2, 3)
    assert torch.equal(s * x, torch.tensor([[2.0] * 3, [3.0] * 3])) and s.calls == 1
    _ = x * s  # the wrong way round: torch sees the float; the counter shows the guess was not used
    assert s.calls == 1
    y = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    both = generation._PerSampleScale([7.3, 9.1]) * y  # row i: bit-identical to the plain float scale times row i
    assert torch.equal(both[0], 7.3 * y[0]) and torch.equal(both[1], 9.1 * y[1])


def test_slerp():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 8, 8, generator=g), torch.randn(4, 8, 8, generator=g)
    assert torch.equal(slerp(a, b, 0), a) and torch.equal(slerp(a, b, 1), b)
    mid = slerp(a, b, 0.5)
    # near-orthogonal Gaussian vectors: the norm stays close to theirs (a straight line would shrink it by ~0.7)
    assert abs(mid.norm() / a.norm() - 1) < 0.1 and (0.5 * (a + b)).norm() / a.norm() < 0.8
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a, atol=1e-5)  # parallel: the straight line
    e = torch.randn(1, 5, 16, generator=g)
    assert slerp(e, -e + 0.1, 0.3, dim=-1).shape == e.shape


def test_interpolate_seeds_end_frames_equal_single_runs(tiny_sd):
    f = interpolate_seeds(tiny_sd, PROMPT, 3, 4, frames=3, steps=STEPS)
    assert len(f.images) == 3 and f.ts == [0, 0.5, 1] and f.batched
    assert same(f.images[0], generate(tiny_sd, PROMPT, 3, steps=STEPS))
    assert same(f.images[-1], generate(tiny_sd, PROMPT, 4, steps=STEPS))
    serial = interpolate_seeds(tiny_sd, PROMPT, 3, 4, frames=3, steps=STEPS, batch=False)
    assert all(same(x, y) for x, y in zip(f.images, serial.images, strict=True))
    fig = plot_interpolation(f)
    assert [ax.title.get_text() for ax in fig.axes][0] == "seed 3" and "seed 3" in fig._suptitle.get_text()


def test_interpolate_prompts_end_frames_equal_single_runs(tiny_sd):
    f = interpolate_prompts(tiny_sd, "a red circle", "a blue square", seed=2, frames=3, steps=STEPS,
                            scheduler="euler_a")
    assert same(f.images[0], generate(tiny_sd, "a red circle", 2, steps=STEPS, scheduler="euler_a"))
    assert same(f.images[-1], generate(tiny_sd, "a blue square", 2, steps=STEPS, scheduler="euler_a"))
    with pytest.raises(ValueError, match="frames"):
        interpolate_prompts(tiny_sd, "a", "b", frames=1)


def test_shipped_model_grid_is_exact(shipped_pipe):
    res = grid(shipped_pipe, PROMPT, seeds=[0, 1], cfgs=[3.0, 7.5], steps=4)
    assert res.batched_cells == 4
    assert_cells_equal_single_runs(shipped_pipe, res)


# --------------------------------------------------------------------------------------------- the CFG sweep's checks
def _guidance():
    from explainer.experiments import guidance

    return guidance


@pytest.mark.parametrize("kw, words", [
    ({"prompts": []}, "prompts must hold at least one prompt"),
    ({"prompts": [""]}, r"prompts\[0\] must be a non-empty string"),
    ({"prompts": ["a red circle", 7]}, r"prompts\[1\] must be a string"),
    ({"prompts": None}, "prompts must be a prompt string or a list"),
    ({"seeds": []}, "seeds must hold at least one seed"),
    ({"seeds": [1.5]}, r"seeds\[0\] must be an integer from 0 to 2\*\*64-1, got float"),
    ({"seeds": [-1]}, r"seeds\[0\] must be from 0 to 2\*\*64-1"),
    ({"seeds": [True]}, r"seeds\[0\] must be an integer"),
    ({"seeds": "01"}, "seeds must be an integer or a list of integers"),
    ({"scales": []}, "scales must hold at least one value"),
    ({"scales": [0]}, r"scales\[0\] must be a finite number > 0 and <= 100"),
    ({"scales": [-3.0]}, r"scales\[0\] must be a finite number > 0 and <= 100"),
    ({"scales": [float("nan")]}, r"scales\[0\] must be a finite number > 0 and <= 100, got nan"),
    ({"scales": [float("inf")]}, r"scales\[0\] must be a finite number"),
    ({"scales": ["7.5"]}, r"scales\[0\] must be a finite number .* got str"),
    ({"scales": [3.0, 3.0]}, "scales must be distinct"),
    ({"steps": 0}, "steps must be from 1 to 1000"),
    ({"steps": 2.0}, "steps must be an integer from 1 to 1000"),
    ({"steps": True}, "steps must be an integer"),
])
def test_cfg_sweep_refuses_bad_arguments_before_any_image(tiny_sd, kw, words):
    args = {"prompts": ["a red circle"], "seeds": [0], "scales": [1.0], "steps": 1, **kw}
    before = tiny_sd.scheduler
    with generation.count_denoiser_calls(tiny_sd) as count, pytest.raises(ValueError, match=words):
        _guidance().cfg_sweep(tiny_sd, **args)
    assert count.calls == 0 and tiny_sd.scheduler is before


def test_cfg_sweep_takes_one_prompt_string_as_one_prompt(tiny_sd):
    sw = _guidance().cfg_sweep(tiny_sd, "a red circle", seeds=[0, 1], scales=[1.0, 3.0], steps=1)
    assert sw.prompts == ["a red circle", "a red circle"] and sw.seeds == [0, 1]  # not 12 one-letter prompts
    assert sorted(sw.images) == [1.0, 3.0] and all(len(v) == 2 for v in sw.images.values())


def test_the_cfg_explorer_and_verdicts_refuse_an_empty_or_foreign_sweep(tiny_sd):
    from explainer.widgets import cfg_explorer

    G = _guidance()
    empty = G.CfgSweep([], [], [], {}, {}, {}, {}, {}, {})
    for bad, words in ((empty, "sweep is empty"), ("sweep", "sweep must be the result of"),
                       (G.CfgSweep([1.0], ["a"], [0], {}, {}, {}, {}, {}, {}), "no complete images")):
        with pytest.raises(ValueError, match=words):
            cfg_explorer(bad)
        with pytest.raises(ValueError, match=words):
            G.verdicts(bad)
    sw = G.cfg_sweep(tiny_sd, "a red circle", seeds=[0], scales=[1.0, 3.0], steps=1)
    with pytest.raises(ValueError, match=r"mid must be one of \[1.0, 3.0\], got 7.5"):
        G.verdicts(sw, low=1.0, mid=7.5, high=3.0)


@pytest.mark.parametrize("call, words", [
    (lambda G, p: G.generate_many(p, "a red circle", [0, 1]), "prompts and seeds must have the same length"),
    (lambda G, p: G.generate_many(p, ["a red circle"], "0"), "seeds must be an integer or a list"),
    (lambda G, p: G.generate_many(p, ["a red circle"], [0], cfg=float("nan")), "cfg must be a number from 0"),
    (lambda G, p: G.generate_many(p, ["a red circle"], [0], output="png"), "output must be one of"),
    (lambda G, p: G.generate_many(p, ["a red circle"], [0], max_batch=0), "max_batch must be from 1"),
    (lambda G, p: G.second_object_scale(p, "a red circle", 0, scales=[]), "scales must hold at least one"),
    (lambda G, p: G.adherence_table([], "a red circle"), "prompts must be a list of prompt strings"),
])
def test_the_guidance_helpers_check_their_arguments(tiny_sd, call, words):
    with generation.count_denoiser_calls(tiny_sd) as count, pytest.raises(ValueError, match=words):
        call(_guidance(), tiny_sd)
    assert count.calls == 0


def test_the_cfg_trace_helpers_need_a_guided_trace(tiny_sd):
    from explainer.trace import trace

    G = _guidance()
    plain = trace(tiny_sd, "a red circle", steps=2, cfg=1.0, attention=False)
    for call in (lambda: G.check_formula(plain), lambda: G.branch_gap(plain, 0)):
        with pytest.raises(ValueError, match="tr must be traced with cfg > 1"):
            call()
    guided = trace(tiny_sd, "a red circle", steps=2, cfg=3.0, attention=False)
    with pytest.raises(ValueError, match="step must be from 0 to 1"):
        G.branch_gap(guided, 2)
    assert G.branch_gap(guided, -1)["step"] == 2


def test_the_image_statistics_and_the_running_example_name_a_non_image():
    G = _guidance()
    for call, words in ((lambda: G.saturation("image.png"), "image must be a PIL image"),
                        (lambda: G.clipped_fraction(np.zeros((8, 8))), "image must be a PIL image or an"),
                        (lambda: G.running_example("a trace"), "tr must be a Trace")):
        with pytest.raises(ValueError, match=words):
            call()
    assert G.saturation(np.zeros((4, 4, 3), np.uint8)) == 0.0


def test_the_formula_check_refuses_what_it_cannot_measure_instead_of_dividing_by_zero(tiny_sd):
    from explainer.trace import trace

    G = _guidance()
    empty = trace(tiny_sd, "", steps=2, cfg=3.0, attention=False)  # the empty prompt is the unconditional one
    with pytest.raises(ValueError, match="identical at every step"):
        G.check_formula(empty)
    one = trace(tiny_sd, "a red circle", steps=1, cfg=3.0, attention=False)
    with pytest.raises(ValueError, match="tr must have at least 2 steps"):
        G.check_formula(one)
    assert G.branch_gap(one, 0)["step"] == 1
    sw = G.cfg_sweep(tiny_sd, "a red circle", seeds=[0], scales=[2.0], steps=1)
    with pytest.raises(ValueError, match=r"scale must be one of \[2.0\]"):
        sw.fate_share(3.0, "right")
    with pytest.raises(ValueError, match="fate must be one of"):
        sw.fate_share(2.0, "lost")
    assert 0.0 <= sw.fate_share(2.0, "right") <= 1.0


def test_cfg_sweep_names_a_pipeline_its_sampler_does_not_fit():
    from explainer.testing import build_tiny_sd3

    flow = build_tiny_sd3()
    for pipe, words in ((flow, "pipe must be a U-Net pipeline .* does not fit StableDiffusion3Pipeline"),
                        ("shapes-sd", "pipe must be a diffusers pipeline")):
        with pytest.raises(ValueError, match=words):
            _guidance().cfg_sweep(pipe, "a red circle", seeds=[0], scales=[2.0], steps=1)
