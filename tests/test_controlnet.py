"""ControlNet (issue 18): exact condition maps, the shipped ControlNets, tracing them bit-identically, the training
command, and what lesson 14 claims (asserted through explainer/experiments/controlnet.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explainer as ex
from explainer import shapes
from explainer.experiments import controlnet as X
from explainer.schedulers import make_scheduler

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ the maps
@pytest.mark.parametrize("seed", range(6))
def test_edge_map_is_the_outline_of_the_objects(seed):
    scene = shapes.sample_scene(seed)
    edges = np.asarray(shapes.render_edges(scene))[..., 0] > 127
    masks = shapes.object_masks(scene)
    assert edges.sum() > 8
    inside = masks.any(0)
    from scipy import ndimage

    band = ndimage.binary_dilation(inside, iterations=1) & ~ndimage.binary_erosion(inside, iterations=2)
    assert (edges & ~band).sum() == 0  # every edge pixel lies on an object's boundary band
    core = ndimage.binary_erosion(inside, iterations=3)
    assert (edges & core).sum() == 0  # and none deep inside an object


@pytest.mark.parametrize("seed", range(6))
def test_segmentation_map_paints_each_object_with_its_class_colour(seed):
    scene = shapes.sample_scene(seed)
    seg = np.asarray(shapes.render_segmentation(scene))
    masks = shapes.object_masks(scene)
    allowed = {shapes.SEGMENTATION_BACKGROUND, *shapes.SEGMENTATION_COLORS.values()}
    assert {tuple(c) for c in seg.reshape(-1, 3)} <= allowed  # no blended colours
    for obj, m in zip(scene.objects, masks, strict=True):
        colour = np.array(shapes.SEGMENTATION_COLORS[obj.shape])
        assert (seg[m] == colour).all(-1).mean() > 0.9
    assert (seg[~masks.any(0)] == 0).all()


def test_condition_maps_match_the_rendered_pixels():
    # the regions the maps mark are exactly what render() draws, as the layout metric reads pixels
    ious = [X.layout_iou(shapes.render(s), s) for s in (shapes.sample_scene(k) for k in range(60))]
    assert min(ious) == 1.0
    wrong = [X.layout_iou(shapes.render(shapes.sample_scene(k + 1)), shapes.sample_scene(k)) for k in range(60)]
    assert np.mean(wrong) < 0.3  # and the metric is not fooled by another scene's layout


def test_unknown_condition_is_refused():
    with pytest.raises(ValueError, match="condition must be one of"):
        shapes.render_condition(shapes.sample_scene(0), "depth")


# ------------------------------------------------------------------------------------------------ loading
def test_load_pipeline_refuses_unknown_controlnet():
    with pytest.raises(ValueError, match="controlnet must be one of"):
        ex.load_pipeline(controlnet="depth")


@pytest.fixture(scope="module")
def random_cn_pipe(shipped_pipe):
    """The shipped model with a ControlNet built from its U-Net, zero convolutions made non-zero (so the residuals
    are not zero and bit-identity is a real check), independent of the shipped ControlNet weights."""
    from explainer.train.controlnet import build_controlnet, controlnet_pipeline

    cn = build_controlnet(shipped_pipe.unet)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in [*cn.controlnet_down_blocks, cn.controlnet_mid_block]:
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
    return controlnet_pipeline(shipped_pipe, cn.eval())


# ------------------------------------------------------------------------------------------------ tracing
@pytest.mark.parametrize("scale,guess", [(1.0, False), (0.5, True)])
def test_trace_of_a_controlnet_pipeline_is_bit_identical_and_records_the_residuals(random_cn_pipe, scale, guess):
    pipe = random_cn_pipe
    scene = shapes.sample_scene(4)
    edges = shapes.render_edges(scene)
    tr = ex.trace(pipe, "a red circle", seed=2, steps=5, cfg=5.0, control_image=edges,
                  controlnet_conditioning_scale=scale, guess_mode=guess)
    own = pipe.scheduler
    pipe.scheduler = make_scheduler("dpm++2m", own.config)
    try:
        ref = pipe("a red circle", image=edges, num_inference_steps=5, guidance_scale=5.0,
                   controlnet_conditioning_scale=scale, guess_mode=guess,
                   generator=torch.Generator().manual_seed(2)).images[0]
    finally:
        pipe.scheduler = own
    assert np.array_equal(np.asarray(tr.image), np.asarray(ref))
    s = tr.settings
    assert s["controlnet_conditioning_scale"] == scale and s["guess_mode"] is guess
    assert s["controlnet_residuals"] == ["down 0", "down 1", "down 2", "down 3", "down 4", "down 5", "mid"]
    assert s["controlnet_residual_sizes"][0] == [8, 8] and s["controlnet_residual_sizes"][-1] == [2, 2]
    norm = tr._t["controlnet.norm"]
    assert norm.shape == (5, 7) and (norm > 0).all()
    assert tr._t["controlnet.map.down 2"].shape == (5, 4, 4)
    assert np.array_equal(tr._t["control.image"].numpy(), np.asarray(edges))
    if guess:  # ControlNet's guess-mode ramp: shallow residuals scaled by 0.1, the mid one by 1
        assert any("guess mode" in note for note in s["notes"])


def test_trace_residual_norms_scale_with_the_conditioning_scale(random_cn_pipe):
    edges = shapes.render_edges(shapes.sample_scene(1))
    a = ex.trace(random_cn_pipe, "a blue square", seed=0, steps=3, cfg=1.0, control_image=edges,
                 controlnet_conditioning_scale=1.0, attention=False)
    b = ex.trace(random_cn_pipe, "a blue square", seed=0, steps=3, cfg=1.0, control_image=edges,
                 controlnet_conditioning_scale=0.5, attention=False)
    # same input latents at step 1, so the residuals differ by exactly the scale
    torch.testing.assert_close(b._t["controlnet.norm"][0], 0.5 * a._t["controlnet.norm"][0], rtol=1e-5, atol=1e-7)


def test_trace_control_arguments_are_checked(random_cn_pipe, shipped_pipe):
    edges = shapes.render_edges(shapes.sample_scene(1))
    with pytest.raises(ValueError, match="control_image is required"):
        ex.trace(random_cn_pipe, "a red circle", steps=2)
    with pytest.raises(ValueError, match="controlnet_conditioning_scale must be"):
        ex.trace(random_cn_pipe, "a red circle", steps=2, control_image=edges, controlnet_conditioning_scale=-1)
    with pytest.raises(ValueError, match="guess_mode must be"):
        ex.trace(random_cn_pipe, "a red circle", steps=2, control_image=edges, guess_mode="yes")
    with pytest.raises(ValueError, match="ControlNet pipelines only"):
        ex.trace(shipped_pipe, "a red circle", steps=2, control_image=edges)


def _state(pipe):
    return pipe.scheduler, dict(pipe.scheduler.config), pipe.controlnet, pipe.unet.training


@pytest.mark.parametrize("make, words", [
    (lambda e: e.resize((7, 5)), r"control_image is 5 x 7 \(height x width\), but the image is drawn at 32 x 32"),
    (lambda e: e.resize((100, 100)), r"control_image is 100 x 100 .* drawn at 32 x 32"),
    (lambda e: np.asarray(e)[:16], r"control_image is 16 x 32 .* drawn at 32 x 32"),
    (lambda e: np.full((32, 32, 3), np.nan), "control_image must be finite: it holds 3,072 NaN"),
    (lambda e: np.where(np.asarray(e) > 0, np.inf, 0.0), "control_image must be finite"),
    (lambda e: np.asarray(e).astype(complex), "control_image must hold numbers"),
    (lambda e: "edges.png", "control_image must be a PIL image or an"),
])
def test_a_control_map_must_have_the_image_size_and_be_finite(random_cn_pipe, make, words):
    edges = shapes.render_edges(shapes.sample_scene(1))
    before = _state(random_cn_pipe)
    with X_calls_counted(random_cn_pipe) as count, pytest.raises(ValueError, match=words):
        ex.trace(random_cn_pipe, "a red circle", steps=2, control_image=make(edges))
    assert count.calls == 0 and _state(random_cn_pipe) == before


def X_calls_counted(pipe):
    from explainer.generation import count_denoiser_calls

    return count_denoiser_calls(pipe)


def test_each_map_of_a_batch_is_checked_and_named_by_its_index(random_cn_pipe):
    edges = shapes.render_edges(shapes.sample_scene(1))
    before = _state(random_cn_pipe)
    with pytest.raises(ValueError, match=r"control_image\[1\] is 16 x 16 .* drawn at 32 x 32"):
        ex.trace_batch(random_cn_pipe, ["a red circle", "a blue square"], steps=2,
                       control_image=[edges, edges.resize((16, 16))])
    with pytest.raises(ValueError, match=r"control_image must be one image or one per prompt \(2\), got 3"):
        ex.trace_batch(random_cn_pipe, ["a red circle", "a blue square"], steps=2, control_image=[edges] * 3)
    with pytest.raises(ValueError, match=r"got uint16 values in \[0, 255\]"):
        ex.trace(random_cn_pipe, "a red circle", steps=2, control_image=np.asarray(edges).astype(np.uint16))
    assert _state(random_cn_pipe) == before


def test_a_map_drawn_at_the_image_size_is_traced_at_that_size_and_the_settings_say_so(random_cn_pipe):
    edges = shapes.render_edges(shapes.sample_scene(1))
    tr = ex.trace(random_cn_pipe, "a red circle", steps=1, cfg=1.0, attention=False, control_image=edges)
    assert tr.image.size == edges.size == (tr.settings["width"], tr.settings["height"])
    # asking for another size names the mismatch instead of stretching the map
    with pytest.raises(ValueError, match=r"control_image is 32 x 32 .* drawn at 64 x 64.*resize"):
        ex.trace(random_cn_pipe, "a red circle", steps=1, height=64, width=64, control_image=edges)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -0.5, 10.5, "1", True, None])
def test_the_conditioning_scale_is_a_finite_number_from_0_to_10_everywhere(random_cn_pipe, scale):
    scenes = [shapes.sample_scene(1)]
    before = _state(random_cn_pipe)
    with pytest.raises(ValueError, match="controlnet_conditioning_scale must be a finite number >= 0 and <= 10"):
        ex.trace(random_cn_pipe, "a red circle", steps=2, control_image=shapes.render_edges(scenes[0]),
                 controlnet_conditioning_scale=scale)
    with X_calls_counted(random_cn_pipe) as count, \
            pytest.raises(ValueError, match="controlnet_conditioning_scale must be a finite number >= 0 and <= 10"):
        X.generate(random_cn_pipe, scenes, "edges", scale=scale, steps=2)
    assert count.calls == 0 and _state(random_cn_pipe) == before


@pytest.mark.parametrize("kw, words", [
    ({"scenes": shapes.sample_scene(1)}, r"scenes must be a list of scenes, got one Scene"),
    ({"scenes": []}, "scenes must be a non-empty list"),
    ({"scenes": ["a red circle"]}, r"scenes\[0\] must be an explainer.shapes.Scene"),
    ({"condition": "depth"}, "condition must be one of"),
    ({"seeds": "0"}, "seeds must be a list of integers"),
    ({"seeds": [0, 1]}, "scenes and seeds must have the same length"),
    ({"seeds": [-1]}, r"seeds\[0\] must be from 0"),
    ({"prompts": "a red circle"}, "prompts must be a list of prompt strings"),
    ({"steps": 0}, "steps must be from 1"),
    ({"cfg": float("nan")}, "cfg must be a number from 0 to 100"),
    ({"guess_mode": "yes"}, "guess_mode must be True or False"),
    ({"batch": 0}, "batch must be from 1"),
])
def test_controlnet_generate_checks_every_argument_before_any_image(random_cn_pipe, kw, words):
    args = {"scenes": [shapes.sample_scene(1)], "condition": "edges", "steps": 2, **kw}
    before = _state(random_cn_pipe)
    with X_calls_counted(random_cn_pipe) as count, pytest.raises(ValueError, match=words):
        X.generate(random_cn_pipe, **args)
    assert count.calls == 0 and _state(random_cn_pipe) == before


def test_controlnet_helpers_refuse_a_pipeline_without_a_controlnet(shipped_pipe):
    scenes = [shapes.sample_scene(1)]
    for call in (lambda: X.generate(shipped_pipe, scenes, "edges", steps=2),
                 lambda: X.generate_without(shipped_pipe, scenes, steps=2),
                 lambda: X.scale_sweep(shipped_pipe, "edges", scenes, steps=2),
                 lambda: X.conflict(shipped_pipe, n=1, steps=2),
                 lambda: X.structure_early(shipped_pipe, "edges", scenes, steps=2),
                 lambda: X.lesson_findings(shipped_pipe, n=2, steps=2)):
        with pytest.raises(ValueError, match="pipe must be a ControlNet pipeline .* the map would be ignored"):
            call()


def test_the_mechanism_helpers_name_what_they_need(shipped_pipe, random_cn_pipe):
    plain = ex.trace(shipped_pipe, "a red circle", steps=2, cfg=1.0, attention=False)
    curve = {"iou": [0.1, 0.5, 0.9], "eval_steps": [0, 10, 20]}
    cases = [
        (lambda: X.anatomy(shipped_pipe), "pipe must be a ControlNet pipeline"),
        (lambda: X.zero_convolutions(shipped_pipe.unet), "controlnet must be a diffusers ControlNetModel"),
        (lambda: X.fresh_controlnet_changes_nothing(random_cn_pipe, "depth"), "condition must be one of"),
        (lambda: X.fresh_controlnet_changes_nothing(random_cn_pipe, seed=-1), "seed must be from 0"),
        (lambda: X.fresh_controlnet_changes_nothing("pipe"), "pipe must be a Stable Diffusion pipeline"),
        (lambda: X.residual_profile(plain), "trace must be a Trace of a ControlNet pipeline"),
        (lambda: X.convergence_step(curve, fraction=1.5), "fraction must be a finite number >= 0 and <= 1"),
        (lambda: X.convergence_step(curve, fraction=float("nan")), "fraction must be a finite number"),
        (lambda: X.convergence_step({"iou": [1]}), "curve must be what training_curve"),
        (lambda: X.live_training(random_cn_pipe, steps=0), "steps must be from 1"),
        (lambda: X.live_training(random_cn_pipe, lr=float("nan")), "lr must be a finite number > 0 and <= 1"),
        (lambda: X.live_training(random_cn_pipe, lr=0), "lr must be a finite number > 0"),
        (lambda: X.live_training(random_cn_pipe, batch=2.5), "batch must be an integer"),
        (lambda: X.live_training(random_cn_pipe, condition="depth"), "condition must be one of"),
    ]
    before = _state(random_cn_pipe)
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()
    assert _state(random_cn_pipe) == before
    assert X.convergence_step(curve, 0.5) == 10


def test_controlnet_generate_equals_the_plain_pipeline_call(random_cn_pipe):
    scene = shapes.sample_scene(2)
    (im,) = X.generate(random_cn_pipe, [scene], "edges", scale=0.5, seeds=[3], steps=2)
    ref = random_cn_pipe(X.layout_prompt(scene), image=shapes.render_edges(scene), num_inference_steps=2,
                         guidance_scale=5.0, controlnet_conditioning_scale=0.5,
                         generator=[torch.Generator().manual_seed(3)]).images[0]
    assert np.array_equal(np.asarray(im), np.asarray(ref))


# ------------------------------------------------------------------------------------------------ mechanism
def test_controlnet_copies_the_encoder_half_and_starts_as_a_no_op(random_cn_pipe, shipped_pipe):
    a = X.anatomy(random_cn_pipe)
    copied = dict(a["copied"])
    assert {"conv_in", "time_embedding", "down_blocks.0", "down_blocks.1", "down_blocks.2", "mid_block"} == set(copied)
    assert not any(k.startswith("up_blocks") for k in copied)
    assert [r[0] for r in a["residuals"]] == ["down 0", "down 1", "down 2", "down 3", "down 4", "down 5", "mid"]
    assert a["copied_params"] < a["unet_params"] / 2
    fresh = X.fresh_controlnet_changes_nothing(shipped_pipe)
    assert fresh["largest_zero_conv"] == 0.0 and fresh["max_residual"] == 0.0 and fresh["max_output_change"] == 0.0


def test_train_command_refuses_bad_condition(capsys):
    from explainer.train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--stage", "controlnet", "--condition", "depth"])
    assert "--condition" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ findings
@pytest.fixture(scope="module", params=["edges", "segmentation"])
def findings(request):
    """Lesson 14's findings for each shipped ControlNet (the lesson runs edges; the claims hold for segmentation)."""
    from explainer.models import CONTROLNETS

    if not (CONTROLNETS[request.param] / "config.json").exists():
        pytest.skip(f"the shipped {request.param} ControlNet is not there yet")
    pipe = ex.load_pipeline(controlnet=request.param)
    return X.lesson_findings(pipe, request.param, n=8, steps=8, conflict_n=8)  # as lesson 14: 8 units give an interval


def test_lesson14_exact_facts(findings):
    assert findings["fresh"]["max_output_change"] == 0.0
    assert findings["scale0_equals_without"]  # every residual times 0 is added: the plain U-Net, bit for bit
    assert findings["table"][0].agrees and findings["table"][1].agrees


def test_lesson14_the_controlnet_makes_the_output_follow_the_map(findings):
    sweep = findings["sweep"]
    assert sweep["scales"][1.0].iou > sweep["without"].iou + 0.1
    assert findings["table"][2].agrees  # the paired bootstrap interval of IoU(with) - IoU(without) is above 0


def test_lesson14_map_sets_where_prompt_sets_what_and_structure_comes_early(findings):
    conf = findings["conflict"]["scales"]
    top = max(conf)
    # a square's edges, prompt "a red circle": the output lands on the map's region, but stays a red circle
    assert conf[top]["iou"] > conf[0.0]["iou"] + 0.3
    assert conf[top]["map_shape"] <= 0.2 and conf[top]["prompt_color"] >= 0.8
    assert findings["table"][4].status == "does not agree" and findings["table"][5].agrees
    # the residuals are larger in the first half of the steps in every traced run
    assert min(findings["early"]["shares"]) > 0.5 and findings["table"][6].agrees


def test_shipped_controlnets_are_standard_diffusers_folders_within_budget():
    from explainer.models import CONTROLNETS

    total = 0
    for name, path in CONTROLNETS.items():
        if not (path / "config.json").exists():
            pytest.skip(f"the shipped {name} ControlNet is not there yet")
        files = list(path.glob("*.safetensors"))
        assert files and not list(path.glob("*.bin"))
        total += sum(f.stat().st_size for f in files)
        pipe = ex.load_pipeline(controlnet=name)
        assert type(pipe).__name__ == "StableDiffusionControlNetPipeline"
        assert pipe.controlnet.dtype == torch.float32  # fp16 on disk, fp32 on the CPU
    assert total <= 14 * 1024 * 1024
