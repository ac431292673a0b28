"""Lessons 1-6: what each lesson found, asserted on the findings it exports (docs/findings/NN.json, which the notebook
test re-exports and compares, so they are what the lesson measures now) -- no experiment runs twice in the suite.
Beside them, the experiments' mechanics checked from the outside on cheap inputs (tiny pipelines, a few calls)."""

from __future__ import annotations

import numpy as np
import pytest

from explainer import shapes
from explainer import verdicts as vd
from explainer.experiments import (
    attention,
    denoising,
    pipeline_tour,
    scenes_denoising,
    scenes_pictures,
    scenes_words,
    summaries,
    training,
    words,
)


@pytest.fixture(scope="module")
def pipe(shipped_pipe):
    return shipped_pipe


def _status(rec: dict, start: str) -> str:
    return summaries.verdict(rec, start)["status"]


# --------------------------------------------------------------------------------------------- lesson 1
def test_lesson1_hand_loop_is_the_pipeline():
    f = summaries.load("01")
    n = f["numbers"]
    assert n["model"] == "scenes-sd" and n["prompt"] == "a red fox sitting in autumn leaves"
    # the loop the lesson writes out, and run_by_hand, give pipe(...)'s image bit for bit; two U-Net passes per step
    assert n["written_loop_difference"] == 0 and n["max_pixel_difference"] == 0
    assert n["unet_calls"] == 2 * n["steps"]
    assert _status(f, "the loop written out in the lesson gives") == vd.AGREES
    assert _status(f, "the hand-written loop gives") == vd.AGREES
    assert _status(f, "classifier-free guidance costs two") == vd.AGREES
    s = n["shapes"]  # shapes chain: ids -> embeddings -> latents -> U-Net out (= latents) -> picture
    assert s["text embeddings"][:2] == s["token ids"] and s["noise latents"] == s[f"U-Net x {n['steps']}"]
    assert s["VAE decode"][2] == s["noise latents"][2] * 8 and s["VAE decode"][1] == 3
    assert n["tokens"][1:-1] == n["prompt"].split()
    sig = n["sigmas"]
    assert len(sig) == n["steps"] and all(b < a for a, b in zip(sig[:-1], sig[1:], strict=True))
    # the noise verdict agrees only with an estimate inside the claimed band
    if _status(f, "generation starts from pure Gaussian noise") == vd.AGREES:
        assert 0.8 < n["noise_std"] < 1.2


def test_lesson1_tour_on_a_tiny_pipeline(tiny_sd):
    tour = pipeline_tour.run_by_hand(tiny_sd, "a red circle", seed=1, steps=4, cfg=3.0)
    assert tour.max_pixel_difference == 0
    assert tour.unet_calls == 8
    vs = pipeline_tour.verdicts(tour, written_loop_difference=3)
    assert summaries.reading(vs, "the loop written out") == "says the opposite"  # a difference is never hidden


def test_lesson1_loop_equals_pipeline_on_the_scenes_model(scenes_pipe):
    tour = pipeline_tour.run_by_hand(scenes_pipe, "a red fox sitting in autumn leaves", seed=0, steps=4, cfg=7.5)
    assert tour.max_pixel_difference == 0 and np.asarray(tour.image).shape == (64, 64, 3)


# --------------------------------------------------------------------------------------------- lesson 2
def test_lesson2_prefix_wording_neighbours_and_clip():
    f = summaries.load("02")
    n = f["numbers"]
    assert n["model"] == "scenes-sd"
    # causal: the shared first tokens ("<start> a") are the same numbers, the first different one is not
    assert n["prefix_first_different"] == 2 and n["prefix_max_abs_before"] < 1e-5
    assert n["prefix_cosine"][0] == pytest.approx(1) and n["prefix_cosine"][2] < 1 - 1e-6
    assert _status(f, "the text encoder is causal") == vd.AGREES
    assert all(v < 0.9999 for v in n["similarity"].values())  # every change of wording moves the embedding
    # units: base prompts for the wording pairs, distinct captions, unseen scenes and pictures; all >= 8
    assert summaries.verdict(f, "a synonym moves the embedding less than another thing")["n"] == \
        f"{n['n_base_prompts']} base prompts (paired)"
    assert summaries.verdict(f, "captions' nearest neighbours share their subject")["n"] == \
        f"{n['n_captions']} distinct captions"
    assert summaries.verdict(f, "CLIP pairs each image")["n"] == f"{n['n_scenes']} unseen scenes"
    assert min(n["n_base_prompts"], n["n_captions"], n["n_scenes"], n["fox_pictures"]) >= vd.MIN_UNITS
    # the statuses follow the numbers' direction (an interval can only agree on the side its estimate lies)
    for change in ("thing", "ground", "light"):
        st = _status(f, f"a synonym moves the embedding less than another {change}")
        syn, other = n["similarity"]["same meaning (synonym)"], n["similarity"][f"other {change}"]
        assert st != (vd.AGREES if syn < other else vd.DISAGREES)
    for attr in n["knn"]:
        st = _status(f, f"captions' nearest neighbours share their {attr}")
        assert st != (vd.AGREES if n["knn"][attr] <= n["chance"][attr] else vd.DISAGREES)
    full, short = "a red fox sitting in autumn leaves", "a fox"
    st = _status(f, f"CLIP scores \u201c{full}\u201d above \u201c{short}\u201d")
    assert st != (vd.AGREES if n["fox_scores"][full] <= n["fox_scores"][short] else vd.DISAGREES)
    assert all(v["status"] in vd.STATUSES for v in f["verdicts"])


def test_lesson2_wording_variants_change_what_they_say():
    groups = scenes_words.wording_variants(n=12)
    for base, syn in groups["same meaning (synonym)"]:
        assert base != syn and len(base.split()) == len(syn.split())
    for name in ("other thing", "other ground", "other light"):
        for base, other in groups[name]:
            assert base != other
    assert [b for b, _ in groups["other thing"]] == [b for b, _ in groups["unrelated scene"]]


def test_lesson2_causal_prefix_and_wording_on_the_scenes_model(scenes_pipe):
    p = scenes_words.causal_prefix(scenes_pipe, "a fox", "a red fox sitting in autumn leaves")
    assert p.first_different == 2 and p.max_abs_before < 1e-5 and p.cosine[2] < 1 - 1e-6
    sims = scenes_words.wording_similarity(scenes_pipe, n=4)
    assert set(sims) == set(scenes_words.CHANGES) and all(v.shape == (4,) for v in sims.values())


def test_knn_accuracy_on_obvious_clusters():
    x = np.array([[1, 0], [0.9, 0.1], [1, 0.05], [0, 1], [0.1, 0.9], [0.05, 1]])
    assert words.knn_accuracy(x, list("aaabbb"), k=2) == 1.0


# --------------------------------------------------------------------------------------------- lesson 3
def test_lesson3_compression_near_far_and_walks():
    f = summaries.load("03")
    n = f["numbers"]
    assert n["model"] == "scenes-sd"
    c, h, w = n["latent_shape"]
    assert n["factor"] == pytest.approx(3 * (8 * h) * (8 * w) / (c * h * w))
    assert _status(f, "the latent holds") == vd.AGREES
    # the two PSNRs the lesson explains: the mean of per-scene PSNRs is at least the PSNR of the pooled error
    assert n["psnr_mean_each"] >= n["psnr_pooled"] - 1e-9
    # near and far: units are drawn pairs (>= 8), never images; the status follows the numbers' direction
    assert n["n_pairs"] >= vd.MIN_UNITS
    assert summaries.verdict(f, "in latent space")["n"] == f"{n['n_pairs']} drawn pairs vs {n['n_pairs']}"
    d = n["latent_distance"]
    assert _status(f, "in latent space") != (vd.AGREES if d["neighbours"] >= d["far apart"] else vd.DISAGREES)
    s = n["clip_similarity"]
    assert _status(f, "in CLIP's image space") != (vd.AGREES if s["neighbours"] <= s["far apart"] else vd.DISAGREES)
    t = n["text_similarity"]
    assert _status(f, "in CLIP's text space") == (vd.AGREES if t["neighbours"] > t["far apart"] else vd.DISAGREES)
    # one thing changed: a one-pixel move is the smallest latent move of all (a small picture, a small move)
    assert min(n["change_latent"], key=n["change_latent"].get) == "moved 1 pixel"
    walks = summaries.verdict(f, "a straight latent line")
    k = sum(v < 0.05 for v in n["walk_worst_off_line"])
    assert walks["numbers"].startswith(f"walks like a cross-fade {k}/{len(n['walk_worst_off_line'])}")


def test_walk_difference_counts_colours_in_neither_end():
    from types import SimpleNamespace

    a, b = np.zeros((4, 4, 3)), np.full((4, 4, 3), 200.0)
    mid = np.full((4, 4, 3), 100.0)
    green = mid.copy()
    green[0, 0] = (0, 200, 0)  # one pixel in a colour no mix of black and grey gives
    it = SimpleNamespace(latent_path=np.stack([a, green, b]), pixel_path=np.stack([a, mid, b]), alphas=[0, 0.5, 1])
    w = summaries.walk_difference(it)
    assert w["off_line"] == [1 / 16] and w["worst_alpha"] == 0.5


def test_lesson3_pictures_are_what_the_prompts_ask():
    dawn = scenes_pictures.landscapes("forest", 8, "dawn")
    assert all(s.kind == "forest" and s.sky == "dawn" and s.caption.endswith("at dawn") for s in dawn)
    assert all(t.name in ("tree", "pine") for s in dawn for t in s.things)
    assert all(s.kind == "beach" for s in scenes_pictures.landscapes("beach", 8))
    foxes = scenes_pictures.foxes_in_leaves(4)
    assert all(s.things[0].name == "fox" and s.ground == "leaves" for s in foxes)
    assert scenes_pictures.render_all(foxes).shape == (4, 64, 64, 3)


# --------------------------------------------------------------------------------------------- lesson 4
def test_lesson4_structure_swap_and_image_to_image():
    f = summaries.load("04")
    n = f["numbers"]
    # the spectrum study: the article's prompts on scenes-sd, one-object prompts on shapes-sd; the prompt is the unit
    spec = n["spectrum"]
    assert set(spec) == {"scenes-sd", "shapes-sd"}
    assert {"a red fox sitting in autumn leaves", "a forest at dusk"} <= set(spec["scenes-sd"]["prompts"])
    for model, m in spec.items():
        assert len(set(m["prompts"])) >= vd.MIN_UNITS and len(set(m["seeds"])) >= 2, model
        for what in ("power_settle", "content_settle"):
            assert all(1 <= x <= m["steps"] for b in m[what].values() for x in b)
        # the exported status is what the exported per-run steps give, resampling prompts (not runs)
        c = m["content_settle"]
        again = vd.compare("x", c["fine"], c["coarse"], labels=("fine", "coarse"), groups=m["prompts"], digits=1)
        rec = summaries.verdict(f, f"{model}: coarse before fine: the coarse band's content")
        assert rec["status"] == again.status and rec["numbers"] == again.numbers
        assert f"in {len(set(m['prompts']))} groups" in rec["n"]
        if rec["status"] == vd.AGREES:
            assert np.mean(c["fine"]) > np.mean(c["coarse"])
    s = spec["scenes-sd"]
    assert f"from step {np.mean(s['content_settle']['coarse']):.1f}" in f["headline"]
    # the swap: k = 0 is B's own picture, k = steps A's own, so the judge-free layout follows B, then A, exactly
    sw = n["swap"]
    assert sw["ks"][0] == 0 and sw["ks"][-1] == sw["steps"] and len(sw["pairs"]) >= vd.MIN_UNITS
    assert sw["share_b"]["0"]["layout"] == 1 and sw["share_a"][str(sw["steps"])]["layout"] == 1
    k8 = summaries.verdict(f, "swapped after step 8 of 20: the layout")
    again = vd.proportion("x", round(sw["share_a"]["8"]["layout"] * len(sw["pairs"])), len(sw["pairs"]))
    assert k8["status"] == again.status and f"from k = {sw['first_k']['layout']} of" in f["headline"]
    assert _status(f, "where before what") in vd.STATUSES
    # image-to-image: strength s runs int(s x steps) of the steps; strength 1 runs them all
    i2i = n["i2i"]
    assert all(i2i["unet_calls"][str(s)] == int(s * sw["steps"]) for s in i2i["strengths"])
    lo = min(i2i["strengths"])
    assert (_status(f, f"at strength {lo:g} the picture keeps the source's layout") == vd.AGREES) == (
        vd.wilson(round(i2i["kept"][str(lo)]["layout"] * len(sw["pairs"])), len(sw["pairs"])).low > 0.5)


def test_spectrum_bands_settle_in_the_order_detail_is_added():
    # a coarse blob from the first step, a 4-px checkerboard (fine detail) only from step 6 on: the fine band's power
    # and content settle later than the coarse band's
    y, x = np.mgrid[:64, :64]
    blob, check = np.exp(-((x - 20) ** 2 + (y - 30) ** 2) / 200.0), ((x // 2 + y // 2) % 2).astype(float)
    frames = np.stack([np.repeat((0.2 + 0.5 * blob + 0.2 * max(0, (s - 5) / 4) * check)[..., None], 3, -1)
                       for s in range(10)])
    frames = (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
    power = scenes_denoising.band_power(frames)
    rel = np.abs(power / power[-1:] - 1)
    coarse, fine = scenes_denoising.BANDS.index("coarse"), scenes_denoising.BANDS.index("fine")
    assert scenes_denoising.settles_at(rel[:, coarse]) == 1 and scenes_denoising.settles_at(rel[:, fine]) > 6
    err = scenes_denoising.band_error(frames)
    assert scenes_denoising.settles_at(err[:, coarse]) < scenes_denoising.settles_at(err[:, fine])
    # a wave 32 px long is coarse, one 3.2 px long is fine; the radial profile runs to the Nyquist frequency 1/2
    for period, band in ((32, "coarse"), (3.2, "fine")):
        wave = np.repeat((0.5 + 0.4 * np.sin(2 * np.pi * x / period))[..., None], 3, -1)
        p = scenes_denoising.band_power(wave)
        assert np.argmax(p) == scenes_denoising.BANDS.index(band), (period, p)
    freqs, prof = scenes_denoising.radial_profile(frames)
    assert freqs[-1] == 0.5 and prof.shape == (10, 32)
    assert scenes_denoising.settles_at(np.array([0.5, 0.05, 0.2, 0.05, 0.0])) == 4


def test_lesson4_swap_pairs_differ_in_everything_but_the_fox():
    for a, b in scenes_denoising.swap_scenes(8):
        assert a.things[0].name == "fox" and a.ground == "leaves"
        assert b.things[0].name != "fox" and b.ground != a.ground and b.sky != a.sky and b.position != a.position


def test_swap_images_rejects_a_swap_step_out_of_range(pipe):
    with pytest.raises(ValueError, match="ks must lie in 0..steps"):
        denoising.swap_images(pipe, ["a red circle"], ["a blue square"], [0], ks=(30,), steps=25, cfg=7.5)


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
# lesson 6 on scenes-sd: tests/test_lesson06_scenes.py; the shapes probe (exact discs) below
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
