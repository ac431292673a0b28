"""The numbers lessons 1-6 print beside the claims, asserted on the shipped model (with margins: the model may be
retrained). Each test calls the lesson's own experiment function with the lesson's own arguments."""

from __future__ import annotations

import numpy as np
import pytest

from explainer import plots, shapes
from explainer import verdicts as vd
from explainer.experiments import attention, denoising, latents, pipeline_tour, summaries, training, words


@pytest.fixture(scope="module")
def pipe(shipped_pipe):
    return shipped_pipe


# --------------------------------------------------------------------------------------------- lesson 1
def test_lesson1_hand_loop_is_the_pipeline(pipe):
    tour = pipeline_tour.run_by_hand(pipe, "a large red circle on the left", seed=0, steps=25, cfg=7.5)
    # README and lesson 1: the hand-written loop gives pipe(...)'s image bit for bit
    assert np.array_equal(np.asarray(tour.image), np.asarray(tour.pipeline_image))
    assert tour.max_pixel_difference == 0
    assert tour.unet_calls == 50
    v = pipeline_tour.verdicts(tour)
    assert [x.status for x in v] == [vd.AGREES] * 3, [x.sentence() for x in v]
    fig = plots.plot_machine(tour, pipe)
    assert fig.get_size_inches()[0] * fig.dpi <= 1100  # fits a notebook column
    shapes_ = {s["stage"].split(" (")[0]: s["shape"] for s in tour.stages}
    assert shapes_["token ids"] == (1, 24)
    assert shapes_["text embeddings"] == (1, 24, 128)
    assert shapes_["noise latents"] == (1, 4, 8, 8)
    assert shapes_["VAE decode"] == (1, 3, 32, 32)
    assert 0.8 < tour.noise_std < 1.2  # generation starts from pure Gaussian noise
    assert tour.tokens[1:-1] == "a large red circle on the left".split()


def test_lesson1_tour_on_a_tiny_pipeline(tiny_sd):
    tour = pipeline_tour.run_by_hand(tiny_sd, "a red circle", seed=1, steps=4, cfg=3.0)
    assert tour.max_pixel_difference == 0
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
    # the lesson's verdict table: every claim agrees, with its interval clear of chance
    sims, mm = words.wording_similarity(pipe, n=40), words.meaning_map(pipe, n=150)
    v = summaries.lesson2(sims, mm, ret, n_pairs=40)
    assert all(x.status == vd.AGREES for x in v), [x.sentence() for x in v if not x.agrees]


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
    v = summaries.lesson3(latents.compression(pipe), latents.reconstruction(pipe, n=64),
                          latents.change_one_thing(pipe, n=24), nb, it)
    by = {x.claim: x.status for x in v}
    # lesson 3: neighbours share position and background, colour more than chance, shape hardly (within noise)
    shape = by.pop("latent neighbours share their shape")
    assert shape == vd.NOISE, shape
    assert all(s == vd.AGREES for s in by.values()), by


# --------------------------------------------------------------------------------------------- lesson 4
def test_lesson4_structure_before_detail(pipe):
    res = denoising.structure_then_detail(pipe, n=8, steps=25)
    half = denoising.halving_steps(res)
    # lesson 4: the coarse error halves within the first steps, the fine error only much later ...
    assert np.mean(half["coarse"]) <= 8 and np.mean(half["fine"]) >= np.mean(half["coarse"]) + 4, half
    v = denoising.structure_verdicts(res)
    assert v[0].status == vd.AGREES, v[0].sentence()  # ... and the paired interval says so
    assert res.coarse_settle < res.fine_settle
    assert res.lock["position"] <= min(res.lock["shape"], res.lock["colour"])  # where first, what later


@pytest.fixture(scope="module")
def swap(pipe):
    return denoising.swap_prompt(pipe, ks=(0, 2, 4, 8, 12, 25))


def test_lesson4_prompt_swap_keeps_the_layout_and_changes_the_object(swap):
    # "the position switches from B's side to A's within the first third of the steps"
    assert swap.first_k("position") <= 25 / 3
    # "colour and shape go on following B well after that"
    assert swap.first_k("position") < min(swap.first_k("colour"), swap.first_k("shape"))
    assert swap.share(12, "colour", "B") >= 0.5 and swap.share(12, "shape", "B") >= 0.5
    # "a swap after 2 or 4 of 25 steps still lands on B's side"
    assert swap.share(2, "position", "B") >= 0.5 and swap.share(4, "position", "B") >= 0.5
    # the ends are the plain runs: k = 0 is prompt B, k = 25 prompt A
    assert swap.share(0, "colour", "B") >= 0.75 and swap.share(25, "colour", "A") >= 0.75
    late = denoising.swap_verdicts(swap, early=12)
    assert late[0].status == vd.AGREES and late[2].status == vd.AGREES, [x.sentence() for x in late]


def test_lesson4_image_to_image_strength(pipe):
    r = denoising.image_to_image(pipe, strengths=(0.2, 0.4, 0.6, 0.8, 1.0))
    assert r.denoise_steps == {0.2: 5, 0.4: 10, 0.6: 15, 0.8: 20, 1.0: 25}  # strength x 25 steps run
    # "at low strength ... the layout of the source survives; at high strength ... the source is forgotten"
    assert r.share(0.2, "position") >= 0.75 and r.share(0.4, "position") >= 0.75
    assert r.share(1.0, "position", "B") >= 0.75 and r.share(0.8, "position", "B") >= 0.5
    # "even the last 5 steps (strength 0.2) redraw the shape as B's while keeping the source's place"
    assert r.share(0.2, "shape", "B") >= 0.5
    # the forward process really ran: the noised start is further from the source the higher the strength
    src = np.stack([np.asarray(im, dtype=np.float64) for im in r.sources])
    dist = [np.abs(np.stack([np.asarray(im, dtype=np.float64) for im in r.noised[s]]) - src).mean()
            for s in r.strengths]
    assert dist[0] == min(dist) and dist[-1] > dist[0]
    v = denoising.image_to_image_verdicts(r)
    assert [x.status for x in v[:4]] == [vd.AGREES] * 4, [x.sentence() for x in v]


def test_swap_prompt_rejects_a_swap_step_out_of_range(pipe):
    with pytest.raises(ValueError, match="ks must lie in 0..steps"):
        denoising.swap_prompt(pipe, ks=(30,), steps=25)


def test_settle_and_lock_steps():
    assert denoising.settle_step(np.array([1.0, 0.5, 0.2, 0.05, 0.0])) == 4
    assert denoising.half_step(np.array([1.0, 0.7, 0.5, 0.2])) == 3
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
    v = {x.claim.split(":")[0]: x for x in summaries.lesson5_copies(near, ho)}
    assert v["the model does not copy"].status != vd.DISAGREES


def test_training_set_matches_the_training_script():
    images, scenes = training.training_images(5000)
    assert images.shape == (5000, 32, 32, 3)
    assert scenes[7] == shapes.sample_scene(7)
    assert not any((o.color, o.shape) in shapes.HELD_OUT for s in scenes for o in s.objects)


# --------------------------------------------------------------------------------------------- lesson 6
@pytest.fixture(scope="module")
def hits(pipe):
    return attention.word_lands_on_object(pipe, n=8, steps=20)


@pytest.fixture(scope="module")
def sa_study(pipe):
    return attention.self_attention_study(pipe, n=6, steps=20)


@pytest.fixture(scope="module")
def ablation(pipe):
    return attention.text_for_first_k(pipe, n=8, ks=(0, 2, 5, 10, 20), steps=20)


@pytest.fixture(scope="module")
def t_sweep(pipe):
    return attention.timestep_sweep(pipe, true_ts=(100, 400, 700), n=16)


def test_lesson6_words_land_on_their_objects(hits):
    assert hits.judged >= 4
    assert hits.circle_hits + hits.square_hits >= 0.7 * 2 * hits.judged
    # "in our model the colour words' maps are the flatter ones"
    noun = np.mean(hits.contrast["circle"] + hits.contrast["square"])
    colour = np.mean(hits.contrast["first colour"] + hits.contrast["second colour"])
    assert colour < noun, (colour, noun)


def test_lesson6_verdict_table(hits, sa_study, ablation, t_sweep):
    v = attention.lesson6_verdicts(hits, sa_study, ablation, t_sweep)
    by_claim = {x.claim.split(" (")[0].split(":")[0]: x for x in v}
    assert by_claim["each noun's cross-attention lands on its object"].status == vd.AGREES
    assert by_claim["the U-Net relies on the timestep"].status == vd.AGREES
    # the colour-word verdict is whatever the interval says, but it is never better than the nouns'
    nouns, cols = v[0], v[1]
    assert int(cols.numbers.split("/")[0].split()[-1]) <= int(nouns.numbers.split("/")[0].split()[-1])


def test_lesson6_self_attention_reaches_everywhere(pipe, sa_study):
    sa = attention.self_attention_at(pipe, "a red circle left of a blue square", seed=0, steps=20)
    assert sa.maps.shape[1:] == (8, 8)
    np.testing.assert_allclose(sa.maps.sum(dim=(1, 2)).numpy(), 1.0, atol=1e-4)
    assert (sa.maps > 0).all()
    # the uniform baseline, counted from the outside: positions more than 2 away (Chebyshev) from the query
    r, c = sa.query
    far = sum(max(abs(i - r), abs(j - c)) > 2 for i in range(8) for j in range(8)) / 64
    assert sa.uniform_far_share == pytest.approx(far)
    # the lesson: the measured shares sit close to the uniform ones (no spotlight on the own object at this layer)
    far_m, far_u = np.mean(sa_study.values("far_share")), np.mean(sa_study.values("uniform_far_share"))
    assert abs(far_m - far_u) < 0.15, (far_m, far_u)
    assert np.mean(sa_study.values("own_object_share")) < 2 * np.mean(sa_study.values("own_object_area"))


def test_lesson6_text_and_time(pipe, ablation, t_sweep):
    import explainer as ex

    tr = ex.trace(pipe, "a red circle left of a blue square", seed=0, steps=20)
    effect, push = attention.text_effect_per_step(tr), attention.text_push_per_step(tr)
    # "relative to the noise prediction, the text's effect grows towards the end"
    assert effect.argmax() >= len(effect) // 2 and effect[-1] > effect[0]
    # "measured that way (sigma * ||delta||) the text acts mostly in the first steps"
    assert push[: len(push) // 2].sum() > 0.5
    assert ablation.adherence[20]["all"] > ablation.adherence[0]["all"]
    assert ablation.adherence[0]["color"] < 0.5
    for true_t, best in zip(t_sweep.true_ts, t_sweep.best_told, strict=True):
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
