"""The numbers lessons 1-6 print beside the claims, asserted on the shipped model (with margins: the model may be
retrained). Each test calls the lesson's own experiment function with the lesson's own arguments."""

from __future__ import annotations

import numpy as np
import pytest

from explainer import shapes
from explainer.experiments import attention, denoising, latents, pipeline_tour, training, words


@pytest.fixture(scope="module")
def pipe(shipped_pipe):
    return shipped_pipe


# --------------------------------------------------------------------------------------------- lesson 1
def test_lesson1_hand_loop_is_the_pipeline(pipe):
    tour = pipeline_tour.run_by_hand(pipe, "a large red circle on the left", seed=0, steps=25, cfg=7.5)
    assert tour.max_pixel_difference <= 1  # the hand-written loop reproduces pipe(...)
    assert tour.unet_calls == 50
    shapes_ = {s["stage"].split(" (")[0]: s["shape"] for s in tour.stages}
    assert shapes_["token ids"] == (1, 24)
    assert shapes_["text embeddings"] == (1, 24, 128)
    assert shapes_["noise latents"] == (1, 4, 8, 8)
    assert shapes_["VAE decode"] == (1, 3, 32, 32)
    assert 0.8 < tour.noise_std < 1.2  # generation starts from pure Gaussian noise
    assert tour.tokens[1:-1] == "a large red circle on the left".split()


def test_lesson1_tour_on_a_tiny_pipeline(tiny_sd):
    tour = pipeline_tour.run_by_hand(tiny_sd, "a red circle", seed=1, steps=4, cfg=3.0)
    assert tour.max_pixel_difference <= 1
    assert tour.unet_calls == 8


# --------------------------------------------------------------------------------------------- lesson 2
def test_lesson2_wording_moves_the_embedding(pipe):
    sims = words.wording_similarity(pipe, n=40)
    assert all(v < 0.9999 for v in sims.values())  # every change of wording moves the embedding
    assert sims["same meaning (synonym)"] > sims["unrelated scene"] + 0.01
    # the lesson: a synonym moves it less than any one word that changes the meaning
    assert sims["same meaning (synonym)"] > max(sims["other colour"], sims["other shape"], sims["other position"])
    assert min(sims["other colour"], sims["other shape"], sims["other position"]) > sims["unrelated scene"]


def test_lesson2_neighbours_share_meaning(pipe):
    mm = words.meaning_map(pipe, n=150)
    for attr in ("colour", "shape"):
        assert mm.knn_accuracy[attr] > mm.chance[attr] + 0.2, (attr, mm.knn_accuracy, mm.chance)


def test_lesson2_clip_matches_images_and_captions(pipe):
    from explainer import plots

    ret = words.clip_retrieval(plots.load_clip(pipe), n=64)
    assert ret.image_to_caption > 10 * ret.chance
    assert ret.matched_mean > ret.unmatched_mean + 0.2


def test_knn_accuracy_on_obvious_clusters():
    x = np.array([[1, 0], [0.9, 0.1], [1, 0.05], [0, 1], [0.1, 0.9], [0.05, 1]])
    assert words.knn_accuracy(x, list("aaabbb"), k=2) == 1.0


# --------------------------------------------------------------------------------------------- lesson 3
def test_lesson3_compression_and_round_trip(pipe):
    c = latents.compression(pipe)
    assert c["pixel_values"] == 3072 and c["latent_values"] == 256 and c["factor"] == 12
    rec = latents.reconstruction(pipe, n=64)
    assert rec.psnr > 25


def test_lesson3_latent_distance_is_visual(pipe):
    ch = latents.change_one_thing(pipe, n=24)
    assert ch.latent["moved 1 pixel"] < 0.5 * ch.latent["other colour"]
    assert ch.latent["moved 1 pixel"] < 0.5 * ch.latent["unrelated scene"]
    order_latent = sorted(ch.latent, key=ch.latent.get)
    order_pixel = sorted(ch.pixel, key=ch.pixel.get)
    assert order_latent[0] == order_pixel[0] == "moved 1 pixel"


def test_lesson3_neighbours_and_interpolation(pipe):
    nb = latents.latent_neighbours(pipe, n=200)
    assert nb.knn_accuracy["background"] > nb.chance["background"] + 0.3
    it = latents.interpolate(pipe, frames=7)
    assert it.mean_abs_difference < 20  # a straight latent line looks like a pixel cross-fade


# --------------------------------------------------------------------------------------------- lesson 4
def test_lesson4_structure_before_detail(pipe):
    res = denoising.structure_then_detail(pipe, n=8, steps=25)
    assert res.coarse_settle < res.fine_settle
    assert res.lock["position"] <= min(res.lock["shape"], res.lock["colour"])  # where first, what later


def test_settle_and_lock_steps():
    assert denoising.settle_step(np.array([1.0, 0.5, 0.2, 0.05, 0.0])) == 4
    assert denoising.lock_step(["a", "b", "b", "c", "c"]) == 4
    assert denoising.lock_step(["c", "c"]) == 1


# --------------------------------------------------------------------------------------------- lesson 5
@pytest.fixture(scope="module")
def live(pipe):
    return training.train_tiny(pipe, n_images=2000, steps=80, checkpoints=(0, 40, 80), eval_every=40)


def test_lesson5_live_training_lowers_the_loss(live):
    assert live.heldout[80] < 0.8 * live.heldout[0]
    assert set(live.snapshots) == {0, 40, 80}


def test_lesson5_little_data_generalises_worse(pipe, live):
    few = training.train_tiny(pipe, n_images=32, steps=80, eval_every=40)
    gap_few = few.heldout[80] - few.train_eval[80]
    gap_many = live.heldout[80] - live.train_eval[80]
    assert gap_few > gap_many
    assert few.heldout[80] > live.heldout[80]


def test_lesson5_no_copies_and_held_out_pairs(pipe):
    near = training.nearest_training(pipe, n=6)
    # generated pictures are not closer to the training set than correct new pictures are
    assert np.median(near.gen_distance) >= np.median(near.real_distance)  # lesson 5: further away, not closer
    ho = training.held_out_combos(pipe, seeds_per=2)
    assert ho.in_training == 0
    assert ho.colour >= 0.5
    assert 0.4 <= ho.both <= ho.seen_both  # many held-out pairs drawn right, less reliably than seen ones


def test_training_set_matches_the_training_script():
    images, scenes = training.training_images(5000)
    assert images.shape == (5000, 32, 32, 3)
    assert scenes[7] == shapes.sample_scene(7)
    assert not any((o.color, o.shape) in shapes.HELD_OUT for s in scenes for o in s.objects)


# --------------------------------------------------------------------------------------------- lesson 6
def test_lesson6_words_land_on_their_objects(pipe):
    hits = attention.word_lands_on_object(pipe, n=8, steps=20)
    assert hits.judged >= 4
    assert hits.circle_hits + hits.square_hits >= 0.7 * 2 * hits.judged


def test_lesson6_self_attention_reaches_everywhere(pipe):
    sa = attention.self_attention_at(pipe, "a red circle left of a blue square", seed=0, steps=20)
    assert sa.maps.shape[1:] == (8, 8)
    np.testing.assert_allclose(sa.maps.sum(dim=(1, 2)).numpy(), 1.0, atol=1e-4)
    assert (sa.maps > 0).all()
    assert sa.far_share > 0.3  # the lesson: much of the attention goes more than two positions away
    assert sa.own_object_share < 2 * sa.own_object_area  # ... and no spotlight on the own object at this layer


def test_lesson6_text_and_time(pipe):
    abl = attention.text_for_first_k(pipe, n=8, ks=(0, 2, 5, 10, 20), steps=20)
    assert abl.adherence[20]["all"] > abl.adherence[0]["all"]
    assert abl.adherence[0]["color"] < 0.5
    sweep = attention.timestep_sweep(pipe, true_ts=(100, 400, 700), n=16)
    for true_t, best in zip(sweep.true_ts, sweep.best_told, strict=True):
        assert abs(best - true_t) <= 200


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
