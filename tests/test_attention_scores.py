"""Scores of attention maps against object masks: synthetic maps whose answers are worked out by hand, masks checked
against the renderer's pixels, and the lesson-6 section "Is the map right?" on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainer import attention_scores as S
from explainer import judge as J
from explainer import shapes


def quadrant_mask() -> np.ndarray:
    m = np.zeros((32, 32))
    m[:16, :16] = 1.0  # the top-left quarter: 256 of 1024 pixels
    return m


# ------------------------------------------------------------------------------------------ hand-worked answers
def test_a_map_equal_to_its_mask_scores_perfectly():
    m = quadrant_mask()
    s = S.score_map(m, m)
    assert s.pointing and s.mass_inside == 1.0 and s.auc == 1.0 and s.best_iou == 1.0
    assert s.area == 0.25


def test_the_inverted_map_scores_zero():
    m = quadrant_mask()
    s = S.score_map(1 - m, m)
    assert not s.pointing and s.mass_inside == 0.0 and s.auc == 0.0
    assert s.best_iou == 0.25  # the best it can do is take every pixel: 256 / 1024


def test_a_uniform_map_scores_chance():
    m = quadrant_mask()
    s = S.score_map(np.ones((8, 8)), m)
    assert s.auc == 0.5 and s.mass_inside == pytest.approx(0.25)
    assert not s.pointing  # every pixel ties for the peak; only a quarter of them are inside
    assert S.pointing_game(np.ones((8, 8)), 1 - m)  # three quarters inside: most of the tied peak


def test_a_one_hot_8x8_map_is_upsampled_bilinearly():
    # Cell (1, 1) upsampled x4 (align_corners=False): pixel p reads source x = (p + 0.5) / 4 - 0.5, so the cell's
    # weight is positive for p = 2..9 on each axis: 64 pixels, all inside the quarter (0..15).
    a = np.zeros((8, 8))
    a[1, 1] = 1.0
    up = S.upsample_maps(a)[0].numpy()
    assert (up > 0).sum() == 64 and (up[2:10, 2:10] > 0).all()
    m = quadrant_mask()
    s = S.score_map(a, m)
    assert s.pointing and s.mass_inside == pytest.approx(1.0)
    # AUC: 64 of 256 object pixels beat every (zero) background pixel; the other 192 tie with all of them
    assert s.auc == pytest.approx(64 / 256 + 0.5 * 192 / 256)  # 0.625
    # the same map far from the object: cell (6, 6) covers pixels 22..29
    b = np.zeros((8, 8))
    b[6, 6] = 1.0
    s = S.score_map(b, m)
    assert not s.pointing and s.mass_inside == 0.0
    assert s.auc == pytest.approx(0.5 * (768 - 64) / 768)  # object pixels tie with the 704 zero background pixels


def test_a_gradient_ranks_the_right_half_perfectly():
    a = np.tile(np.arange(32.0), (32, 1))  # value = column
    m = np.zeros((32, 32))
    m[:, 16:] = 1.0
    s = S.score_map(a, m)
    assert s.auc == 1.0 and s.best_iou == 1.0 and s.threshold == 16.0 and s.pointing
    assert s.mass_inside == pytest.approx(sum(range(16, 32)) / sum(range(32)))  # 376 / 496


def test_ties_count_half_and_the_best_threshold_is_found():
    a = np.array([[1.0, 1.0], [0.0, 2.0]])
    m = np.array([[1.0, 0.0], [0.0, 1.0]])
    # object values {1, 2}, background {1, 0}: pairs 1v1 (tie) 1v0 2v1 2v0 -> 3.5 / 4
    assert S.roc_auc(a, m) == 0.875
    # t = 2 keeps {2}: IoU 1/2; t = 1 keeps three pixels, two of them the object: 2/3; t = 0 keeps all: 2/4
    assert S.best_iou(a, m) == (pytest.approx(2 / 3), 1.0)


def test_soft_masks_weigh_mass_by_coverage_and_binarise_at_half():
    a = np.ones((2, 2))
    m = np.array([[0.5, 0.0], [0.0, 0.0]])
    assert S.mass_inside(a, m) == 0.125
    assert not S.pointing_game(a, m)  # 1 of the 4 tied peak pixels inside
    assert S.roc_auc(a, m) == 0.5


def test_auc_agrees_with_scikit_learn_and_batches_with_single_maps():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    maps = rng.integers(0, 5, (6, 8, 8)).astype(float)  # many ties
    masks = (rng.random((6, 32, 32)) > 0.7).astype(float)
    batch = S.score_maps(maps, masks)
    for i in range(6):
        up = S.upsample_maps(maps[i])[0].numpy().ravel()
        assert batch["auc"][i] == pytest.approx(roc_auc_score(masks[i].ravel() > 0.5, up))
        brute = max(((up >= t) & (masks[i].ravel() > 0.5)).sum() / ((up >= t) | (masks[i].ravel() > 0.5)).sum()
                    for t in np.unique(up))
        assert batch["best_iou"][i] == pytest.approx(brute)
        assert batch["mass_inside"][i] == pytest.approx(S.mass_inside(maps[i], masks[i]))
        assert batch["pointing"][i] == S.pointing_game(maps[i], masks[i])


def test_bad_input_is_refused_with_the_parameter_named():
    m = quadrant_mask()
    with pytest.raises(ValueError, match="mask"):
        S.score_map(np.ones((8, 8)), m * 2)
    with pytest.raises(ValueError, match="amap"):
        S.score_map(np.ones(8), m)
    with pytest.raises(ValueError, match="finite"):
        S.score_map(np.full((8, 8), np.nan), m)
    with pytest.raises(ValueError, match="at least as fine"):
        S.score_map(np.ones((32, 32)), np.ones((8, 8)))
    with pytest.raises(ValueError, match="n must be"):
        S.judge_mask_reliability(0)
    assert np.isnan(S.roc_auc(np.ones((8, 8)), np.zeros((32, 32))))  # no object: the AUC is undefined


# ------------------------------------------------------------------------------------------ masks
def test_render_masks_are_the_renderers_own_coverage():
    for seed in range(20):
        scene = shapes.sample_scene(seed, two_object_p=0.0)
        (obj,) = scene.objects
        cover = S.render_masks(scene)[0]
        img = np.asarray(shapes.render(scene), dtype=float)
        bg = np.array(shapes.BACKGROUNDS[scene.background], float)
        col = np.array(shapes.COLORS[obj.color], float)
        # every rendered pixel is the background blended with the object's colour by exactly this coverage
        assert np.abs(img - (bg + cover[..., None] * (col - bg))).max() <= 1.0
    circle = shapes.Scene((shapes.ShapeObject("red", "circle", "large", 16.0, 16.0),), "black")
    area = S.render_masks(circle)[0].sum() / (np.pi * shapes.RADIUS["large"] ** 2)
    assert 1.0 < area < 1.06  # PIL fills the edge pixels of a shape: a few % above the geometric area


def test_a_later_object_hides_an_earlier_one():
    objs = (shapes.ShapeObject("red", "square", "large", 14.0, 16.0), shapes.ShapeObject("blue", "square", "large",
                                                                                           18.0, 16.0))
    scene = shapes.Scene(objs, "black", "left of")
    a, b = S.render_masks(scene)
    assert (a + b).max() <= 1.0 + 1e-9 and b.sum() > a.sum()


def test_judge_masks_match_the_renderer_on_renders():
    r = S.judge_mask_reliability(30)
    assert r.found == 1.0 and r.mean_iou > 0.9
    scene = shapes.sample_scene(3, two_object_p=1.0)
    found = S.judged_masks(shapes.render(scene))
    assert sorted(o.color for o, _ in found) == sorted(o.color for o in scene.objects)
    j = J.judge(shapes.render(scene))
    assert [o for o, _ in found] == j.objects  # same objects, same order as the judge lists them


# ------------------------------------------------------ is the map right? (benchmarks/attention_quality.py, shapes-sd)
@pytest.fixture(scope="module")
def pipe():
    import explainer as ex

    torch.set_num_threads(1)
    return ex.load_pipeline()


@pytest.fixture(scope="module")
def quality(pipe):
    from explainer.experiments import attention_quality as Q

    return Q.map_quality(pipe, n=12, steps=20)  # >= 8 usable images: the bootstrap gives no interval from fewer


def test_word_roles_split_the_prompt_at_the_relation(pipe):
    from explainer.experiments import attention_quality as Q
    from explainer.words import tokenize

    roles = Q.word_roles(tokenize(pipe.tokenizer, "a large red circle left of a small blue square")[0])
    assert [(w, c, o) for _, w, c, o in roles] == [
        ("a", "article", 0), ("large", "size", 0), ("red", "colour", 0), ("circle", "shape", 0),
        ("left", "relation", None), ("of", "relation", None), ("a", "article", 1), ("small", "size", 1),
        ("blue", "colour", 1), ("square", "shape", 1)]


def test_map_quality_localises_at_8x8_not_at_2x2(quality):
    """The verdicts benchmarks/attention_quality.py prints, computed as it computes them."""
    from explainer.experiments import attention_quality as Q

    row = {(r["method"], r["level"], r["steps"]): r for r in quality.summary}
    fine, coarse, daam = row[("summed", "8x8", "1-20")], row[("summed", "2x2", "1-20")], quality.daam
    assert quality.n_usable >= 8
    assert fine["auc"] - fine["auc_ci"] > coarse["auc"] + coarse["auc_ci"]  # "the 8x8 level localises words"
    assert abs(coarse["auc"] - 0.5) <= coarse["auc_ci"] + 0.1  # "the 2x2 maps are at chance"
    assert fine["auc"] - fine["auc_ci"] > 0.8
    later, half, n = Q.paired_difference(quality.scores, dict(method="raw", level="8x8", steps="11-15"),
                                         dict(method="raw", level="8x8", steps="1-5"))
    assert n == quality.n_usable and later - half > 0  # "later steps localise better"
    # "the map ranks pixels right, but most of its weight is spread over the rest of the picture"
    assert daam["auc"] > 0.85 and daam["mass_inside"] < 0.3
    # adding all levels (DAAM) points less often than the 8x8 level alone
    assert daam["pointing"] < fine["pointing"]


def test_map_quality_function_words(quality):
    from explainer.experiments import attention_quality as Q

    def cell(cls):
        return next(x for x in Q.summarise(quality.scores, classes=(cls,))
                    if (x["method"], x["level"], x["steps"]) == ("summed", "8x8", "1-20"))

    colour, size, article, relation = cell("colour"), cell("size"), cell("article"), cell("relation")
    assert size["auc"] + size["auc_ci"] < colour["auc"] - colour["auc_ci"]  # size words do not point at the object
    assert abs(article["auc"] - 0.5) <= article["auc_ci"] + 0.1  # articles: chance
    assert relation["auc"] - relation["auc_ci"] > 0.7  # relation words land on the two objects at 8x8


def test_map_quality_has_a_misleading_map(quality):
    mis = quality.misleading
    assert mis is not None and mis.other_mass > mis.own_mass
    assert mis.own_mask.shape == mis.other_mask.shape == tuple(mis.amap.shape) == (32, 32)


def test_map_quality_renders_agree_early_noise_localises_worse(pipe):
    from explainer.experiments import attention_quality as Q

    rs = {(r["level"], r["steps"]): r for r in Q.summarise(Q.render_attention(pipe, n=16, timesteps=(900, 500, 100)))}
    assert {lv for lv, _ in rs} == {"8x8", "4x4", "2x2", "all"} and rs[("8x8", "t=500")]["n"] == 16
    t900, t500 = rs[("8x8", "t=900")], rs[("8x8", "t=500")]
    assert t900["auc"] + t900["auc_ci"] < t500["auc"] - t500["auc_ci"]
    assert abs(rs[("2x2", "t=500")]["auc"] - 0.5) <= rs[("2x2", "t=500")]["auc_ci"] + 0.1


def test_attention_explorer_outlines_the_named_object_and_scores_the_map(pipe):
    import io

    from PIL import Image

    import explainer as ex
    from explainer import widgets

    tr = ex.trace(pipe, "a red circle left of a blue square", seed=0, steps=8)
    w = widgets.attention_explorer(tr, token="circle")
    judged = [o for o, _ in S.judged_masks(tr.image)]
    assert [label for label, _ in w.mask.options][2:] == [f"{o.color} {o.shape}" for o in judged]
    assert judged, "the judge found nothing in the image"
    w.mask.value = 0  # the largest judged object, whatever the word
    _, mask = S.judged_masks(tr.image)[0]
    amap = tr.attention("circle").float().numpy()
    s = S.score_map(amap, mask)
    assert "class='explainer-map-score'" in w.caption.value
    assert f"AUC {s.auc:.2f}" in w.caption.value and f"mass inside {s.mass_inside:.0%}" in w.caption.value
    outlined = np.asarray(Image.open(io.BytesIO(w.overlay.value)).convert("RGB"))
    w.mask.value = None
    plain = np.asarray(Image.open(io.BytesIO(w.overlay.value)).convert("RGB"))
    assert "AUC" not in w.caption.value
    changed = (outlined != plain).any(-1)
    assert changed.any() and (outlined[changed] == (60, 255, 60)).all()  # only outline pixels, all drawn in green


# ------------------------------------------------------------------------------ ConceptAttention (SD3-style DiT)
def test_concept_attention_leaves_the_picture_unchanged_and_is_a_softmax_over_concepts():
    from explainer.experiments import concepts as Q
    from explainer.testing import build_tiny_sd3

    dit = build_tiny_sd3()
    prompt = "a red circle left of a blue square"
    cm = Q.concept_attention(dit, prompt, ["red", "circle", "blue", "square"], seed=3, steps=3)
    plain = dit(prompt, num_inference_steps=3, guidance_scale=7.5, generator=torch.Generator().manual_seed(3)).images[0]
    assert np.array_equal(np.asarray(plain), np.asarray(cm.image))  # concepts are read beside the model, never fed in
    calls, blocks, n_concepts, h, w = cm.maps.shape
    assert (blocks, n_concepts) == (len(dit.transformer.transformer_blocks), 4) and h == w and calls >= 3
    assert torch.allclose(cm.maps.sum(2), torch.ones(calls, blocks, h, w), atol=1e-5)
    with pytest.raises(ValueError, match="concept must be one of"):
        cm.map("green")
    with pytest.raises(ValueError, match="at least two"):
        Q.concept_attention(dit, prompt, ["red"], steps=2)


def test_concept_attention_refuses_a_unet_pipeline(pipe):
    from explainer.experiments import concepts as Q

    with pytest.raises(ValueError, match="SD3-style"):
        Q.concept_attention(pipe, "a red circle", ["red", "circle"])


def test_leakage_is_the_colour_words_share_on_the_other_object(pipe):
    """Swap each image's two object masks and the leakage (share on the *other* object, all steps) becomes the
    share on the word's *own* object; the two shares of disjoint objects never add up to more than the whole map."""
    import dataclasses

    from explainer.experiments import attention_quality as Q

    runs = Q.generated_runs(pipe, n=6, steps=8)
    lk = Q.leakage(runs, n_boot=50)
    assert lk.n_images == 6 and 0 < lk.n_scored <= 6 and len(lk.own) == lk.n_scored
    everything = list(lk.per_range)[-1]  # the last range covers every step, as `own` does
    assert everything == f"1-{runs.steps}"
    swapped = Q.leakage(dataclasses.replace(runs, masks=[(b, a) for a, b in runs.masks]), n_boot=50)
    np.testing.assert_allclose(swapped.per_range[everything], lk.own, atol=1e-6)
    np.testing.assert_allclose(swapped.own, lk.per_range[everything], atol=1e-6)
    assert (lk.per_range[everything] + lk.own <= 1 + 1e-6).all()
    row = lk.summary["wrong colour"][everything]
    assert row["n_ok"] + row["n_fail"] == lk.n_scored


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, words", [
    (lambda: S.upsample_maps(np.ones((4, 4)), size=0), r"size \(or a \(height, width\) pair\) must be an integer >= 1"),
    (lambda: S.upsample_maps(np.ones((4, 4)), size=-8), "size .* must be an integer >= 1"),
    (lambda: S.upsample_maps(np.ones((4, 4)), size="32"), "size .* must be an integer"),
    (lambda: S.upsample_maps(np.ones((4, 4)), size=True), "size .* must be an integer"),
    (lambda: S.upsample_maps(np.ones((4, 4)), size=(32,)), r"size must be an int or \(height, width\)"),
    (lambda: S.upsample_maps(np.ones((4, 4)), size=(32, 0)), r"size\[1\] \(width\) must be an integer >= 1"),
    (lambda: S.upsample_maps(np.ones((4, 4)), size=10**6), "size .* <= 4096"),
    (lambda: S.score_map("a map", np.ones((32, 32))), "amap must be a numeric 2D map"),
    (lambda: S.score_map(np.ones((4, 4)), None), "mask must be a numeric 2D map"),
    (lambda: S.score_map(np.full((4, 4), np.nan), np.ones((32, 32))), "amap must be finite"),
    (lambda: S.score_map(np.ones((4, 4)), np.full((32, 32), 2.0)), r"mask must hold coverage values in \[0, 1\]"),
    (lambda: S.mask_iou(np.ones((32, 32)), np.ones((16, 16))), "a and b must have the same shape"),
    (lambda: S.render_masks(shapes.sample_scene(1), size=0), "size must be an integer >= 1"),
    (lambda: S.render_masks("a red circle"), "scene must be an explainer.shapes.Scene"),
    (lambda: S.judge_mask_reliability(n=2, two_object_p=1.5), "two_object_p must be a finite number >= 0 and <= 1"),
    (lambda: S.judge_mask_reliability(n=2, two_object_p=float("nan")), "two_object_p must be a finite number"),
    (lambda: S.judge_mask_reliability(n=0), "n must be from 1"),
    (lambda: S.judge_mask_reliability(n=2, start_seed=-1), "start_seed must be from 0"),
    (lambda: S.judge_mask_reliability(n=2, degrade="yes"), "degrade must be True or False"),
    (lambda: S.outline_rgb(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8)), colour=(0, 300, 0)),
     r"colour must be an \(r, g, b\) triple of integers from 0 to 255"),
    (lambda: S.outline_rgb(np.zeros((8, 8)), np.ones((8, 8))), r"rgb must be an \(h, w, 3\) uint8 array"),
    (lambda: S.outline_rgb(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8)), display_px=0), "display_px must be"),
])
def test_score_functions_name_the_bad_argument_and_its_range(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_a_size_pair_and_an_int_give_the_same_upsampling():
    m = np.arange(16, dtype=float).reshape(4, 4)
    assert torch.equal(S.upsample_maps(m, 32), S.upsample_maps(m, (32, 32)))
    assert S.upsample_maps(m, (8, 16)).shape == (1, 8, 16)


def test_the_map_quality_studies_check_their_arguments_before_any_run(pipe):
    from explainer.experiments import attention_quality as Q
    from explainer.experiments import concepts as C
    from explainer.generation import count_denoiser_calls
    from explainer.testing import build_tiny_sd3

    dit = build_tiny_sd3()
    cases = [
        (lambda: Q.scenes_for(0), "n must be from 1"),
        (lambda: Q.scenes_for(2, seed=-1), "seed must be from 0"),
        (lambda: Q.generated_runs(pipe, n=2, steps=0), "steps must be from 1"),
        (lambda: Q.generated_runs(pipe, n=2, cfg=float("nan")), "cfg must be a number from 0 to 100"),
        (lambda: Q.generated_runs(pipe, n=2, batch=0), "batch must be from 1"),
        (lambda: Q.map_quality(pipe, n=2, seed="0"), "seed must be an integer"),
        (lambda: Q.render_attention(pipe, n=2, timesteps=[900, 1000]), r"timesteps\[1\] must be an integer >= 0"),
        (lambda: Q.render_attention(pipe, n=2, timesteps=[]), "timesteps must be a non-empty list"),
        (lambda: Q.render_attention(pipe, n=2, timesteps=[50.5]), r"timesteps\[0\] must be an integer"),
        (lambda: C.concept_attention(dit, "a red circle", "red"), "concepts must be a list of prompt strings"),
        (lambda: C.concept_attention(dit, "a red circle", ["red", ""]), r"concepts\[1\] must be a non-empty"),
        (lambda: C.concept_attention(dit, "a red circle", ["red", "circle"], steps=0), "steps must be from 1"),
        (lambda: C.score_concepts(pipe, n=2), "score_concepts needs an SD3-style pipeline"),
    ]
    with count_denoiser_calls(pipe) as count, count_denoiser_calls(dit) as dit_count:
        for call, words in cases:
            with pytest.raises(ValueError, match=words):
                call()
    assert count.calls == 0 and dit_count.calls == 0
