"""Lessons 1-6: what each lesson found, asserted on the findings it exports (docs/findings/NN.json, which the notebook
test re-exports and compares, so they are what the lesson measures now) -- no experiment runs twice in the suite.
Beside them, the experiments' mechanics checked from the outside on cheap inputs (tiny pipelines, a few calls)."""

from __future__ import annotations

import numpy as np
import pytest

from explainer import shapes
from explainer import verdicts as vd
from explainer.experiments import attention, denoising, pipeline_tour, summaries, training, words


@pytest.fixture(scope="module")
def pipe(shipped_pipe):
    return shipped_pipe


def _status(rec: dict, start: str) -> str:
    return summaries.verdict(rec, start)["status"]


# --------------------------------------------------------------------------------------------- lesson 1
def test_lesson1_hand_loop_is_the_pipeline():
    f = summaries.load("01")
    n = f["numbers"]
    # the hand-written loop gives pipe(...)'s image bit for bit, with two U-Net passes per step
    assert n["max_pixel_difference"] == 0 and n["unet_calls"] == 2 * n["steps"] == 50
    assert [v["status"] for v in f["verdicts"][:3]] == [vd.AGREES] * 3
    assert n["shapes"]["token ids"] == [1, 24] and n["shapes"]["text embeddings"] == [1, 24, 128]
    assert n["shapes"]["noise latents"] == [1, 4, 8, 8] and n["shapes"]["VAE decode"] == [1, 3, 32, 32]
    assert 0.8 < n["noise_std"] < 1.2  # generation starts from pure Gaussian noise
    assert n["tokens"][1:-1] == "a large red circle on the left".split()


def test_lesson1_tour_on_a_tiny_pipeline(tiny_sd):
    tour = pipeline_tour.run_by_hand(tiny_sd, "a red circle", seed=1, steps=4, cfg=3.0)
    assert tour.max_pixel_difference == 0
    assert tour.unet_calls == 8


# --------------------------------------------------------------------------------------------- lesson 2
def test_lesson2_wording_neighbours_and_clip():
    f = summaries.load("02")
    n = f["numbers"]
    sims = n["similarity"]
    assert all(v < 0.9999 for v in sims.values())  # every change of wording moves the embedding
    one = [sims["other colour"], sims["other shape"], sims["other position"]]
    assert sims["same meaning (synonym)"] > max(one) and min(one) > sims["unrelated scene"]
    for attr in ("colour", "shape"):
        assert n["knn"][attr] > n["chance"][attr] + 0.2
    assert n["image_to_caption"] > 10 * n["retrieval_chance"] and n["matched"] > n["unmatched"] + 0.2
    assert all(v["status"] == vd.AGREES for v in f["verdicts"]), f["verdicts"]


def test_lesson2_wording_similarity_runs_on_a_small_sample(pipe):
    sims = words.wording_similarity(pipe, n=4)
    assert set(sims) >= {"same meaning (synonym)", "other colour", "unrelated scene"}


def test_knn_accuracy_on_obvious_clusters():
    x = np.array([[1, 0], [0.9, 0.1], [1, 0.05], [0, 1], [0.1, 0.9], [0.05, 1]])
    assert words.knn_accuracy(x, list("aaabbb"), k=2) == 1.0


# --------------------------------------------------------------------------------------------- lesson 3
def test_lesson3_compression_distance_neighbours_and_walk():
    f = summaries.load("03")
    n = f["numbers"]
    assert n["factor"] == 12 and n["psnr_pooled"] > 25
    # the two PSNRs the lesson explains: the mean of per-scene PSNRs is above the PSNR of the pooled error
    assert n["psnr_mean_each"] > n["psnr_pooled"]
    order = sorted(n["latent_distance"], key=n["latent_distance"].get)
    assert order[0] == sorted(n["pixel_distance"], key=n["pixel_distance"].get)[0] == "moved 1 pixel"
    assert n["latent_distance"]["moved 1 pixel"] < 0.5 * n["latent_distance"]["other colour"]
    assert n["knn"]["background"] > n["chance"]["background"] + 0.3
    assert _status(f, "latent neighbours share their shape") == vd.NOISE
    # the walk: a small mean difference, yet a frame with many pixels in a colour of neither end
    assert n["walk"]["all"] < 20 and n["walk"]["worst_off_line"] > 0.05
    assert _status(f, "a straight latent line") == vd.DISAGREES


def test_walk_difference_counts_colours_in_neither_end():
    from types import SimpleNamespace

    a, b = np.zeros((4, 4, 3)), np.full((4, 4, 3), 200.0)
    mid = np.full((4, 4, 3), 100.0)
    green = mid.copy()
    green[0, 0] = (0, 200, 0)  # one pixel in a colour no mix of black and grey gives
    it = SimpleNamespace(latent_path=np.stack([a, green, b]), pixel_path=np.stack([a, mid, b]), alphas=[0, 0.5, 1])
    w = summaries.walk_difference(it)
    assert w["off_line"] == [1 / 16] and w["worst_alpha"] == 0.5


# --------------------------------------------------------------------------------------------- lesson 4
def test_lesson4_structure_swap_and_image_to_image():
    f = summaries.load("04")
    n = f["numbers"]
    half = n["halving"]
    # the coarse error halves within the first steps, the fine error only later; the paired interval says so
    assert np.median(half["coarse"]) <= 8 and np.median(half["fine"]) >= np.median(half["coarse"]) + 3, half
    assert _status(f, "structure first: the coarse error halves") == vd.AGREES
    # a prompt swapped part-way: the position follows the first prompt from an early k, colour and shape later
    k = n["first_k"]
    assert k["position"] <= 25 / 3 and k["position"] < min(k["colour"], k["shape"])
    assert _status(f, "swapped after step 12 of 25: the position stays") == vd.AGREES
    assert _status(f, "swapped after step 12: the shape follows") == vd.AGREES
    assert _status(f, "at strength 0.2 the picture keeps the source's position") == vd.AGREES


def test_swap_prompt_rejects_a_swap_step_out_of_range(pipe):
    with pytest.raises(ValueError, match="ks must lie in 0..steps"):
        denoising.swap_prompt(pipe, ks=(30,), steps=25)


def test_settle_and_lock_steps():
    assert denoising.settle_step(np.array([1.0, 0.5, 0.2, 0.05, 0.0])) == 4
    assert denoising.half_step(np.array([1.0, 0.7, 0.5, 0.2])) == 3
    assert denoising.lock_step(["a", "b", "b", "c", "c"]) == 4
    assert denoising.lock_step(["c", "c"]) == 1


# --------------------------------------------------------------------------------------------- lesson 5
def test_lesson5_training_runs_are_samples_and_no_copies():
    f = summaries.load("05")
    n = f["numbers"]
    # one training run each: reported, never judged
    assert _status(f, "training lowers the held-out loss") == vd.TOO_FEW
    assert _status(f, "little data generalises worse") == vd.TOO_FEW
    assert n["heldout"]["80"] < 0.8 * n["heldout"]["0"]
    assert n["held_out_in_training"] == 0 and 0.4 <= n["held_out_both"] <= n["seen_both"]
    assert _status(f, "the model does not copy") != vd.DISAGREES  # never closer than fresh renders


def test_lesson5_live_training_is_deterministic_and_snapshots(pipe):
    a = training.train_tiny(pipe, n_images=64, steps=4, checkpoints=(0, 4), eval_every=4, n_heldout=16)
    b = training.train_tiny(pipe, n_images=64, steps=4, checkpoints=(0, 4), eval_every=4, n_heldout=16)
    assert set(a.snapshots) == {0, 4} and a.heldout == b.heldout


def test_training_set_matches_the_training_script():
    images, scenes = training.training_images(5000)
    assert images.shape == (5000, 32, 32, 3)
    assert scenes[7] == shapes.sample_scene(7)
    assert not any((o.color, o.shape) in shapes.HELD_OUT for s in scenes for o in s.objects)


# --------------------------------------------------------------------------------------------- lesson 6
def test_lesson6_words_self_attention_text_and_time():
    f = summaries.load("06")
    n = f["numbers"]
    assert n["judged"] >= 4 and n["noun_hits"] >= 0.7 * 2 * n["judged"]
    assert _status(f, "each noun's cross-attention lands") == vd.AGREES
    assert n["colour_hits"] <= n["noun_hits"]
    assert _status(f, "the U-Net relies on the timestep") == vd.AGREES
    for true_t, best in n["best_told"].items():
        assert abs(best - int(true_t)) <= 200
    # text for the whole run beats none; without text the colour is mostly wrong
    assert n["ablation"]["20"]["all"] > n["ablation"]["0"]["all"] and n["ablation"]["0"]["color"] < 0.5
    # self-attention: close to the uniform baseline; whatever the table says is what the lesson's sentence says
    assert abs(n["far"] - n["far_uniform"]) < 0.15 and n["own"] < 2 * n["own_area"]


def test_self_attention_query_map_sums_to_one_and_its_baseline(pipe):
    sa = attention.self_attention_at(pipe, "a red circle left of a blue square", seed=0, steps=4)
    assert sa.maps.shape[1:] == (8, 8)
    np.testing.assert_allclose(sa.maps.sum(dim=(1, 2)).numpy(), 1.0, atol=1e-4)
    r, c = sa.query  # the uniform baseline, counted from the outside: positions more than 2 away (Chebyshev)
    far = sum(max(abs(i - r), abs(j - c)) > 2 for i in range(8) for j in range(8)) / 64
    assert sa.uniform_far_share == pytest.approx(far)


def test_self_attention_probe_leaves_the_output_unchanged(tiny_sd):
    import torch

    layer = attention.self_attention_layers(tiny_sd.unet)[0]
    run = lambda: tiny_sd("a red circle", num_inference_steps=3, generator=torch.Generator().manual_seed(0),  # noqa: E731
                          output_type="np").images
    before = run()
    with attention.record_self_attention(tiny_sd.unet, layer, 1) as probe:
        during = run()
    assert len(probe.calls) == 3
    np.testing.assert_array_equal(before, during)
    np.testing.assert_allclose(probe.calls[0].sum(-1).numpy(), 1.0, atol=1e-5)
