"""The shipped GAN (explainer/assets/shapes-gan), its diversity measures and lesson 15's findings, from the outside."""

from __future__ import annotations

import json
import math
import pickle  # noqa: F401  (only to name what must not be on disk)
from collections import Counter

import numpy as np
import pytest
import torch

from explainer import verdicts as vd
from explainer.gan import (
    DEFAULT_GAN,
    all_combos,
    attribute_combo,
    attribute_distribution,
    clip_image_embeddings,
    coverage_entropy,
    generate,
    interpolate_latents,
    judge_features,
    load_gan,
    prdc_scores,
    real_distribution,
)
from explainer.judge import judge_against
from explainer.shapes import Scene, ShapeObject, caption_for, render, sample_scene


@pytest.fixture(scope="module")
def gan():
    torch.set_num_threads(1)  # one core per test worker (conftest)
    return load_gan()


# ---------------------------------------------------------------------------------------------------- the model
def test_the_shipped_folder_is_safetensors_config_and_log_within_budget():
    files = {p.name for p in DEFAULT_GAN.iterdir() if p.is_file()}
    assert {"config.json", "generator.safetensors", "training_log.jsonl"} <= files
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for n in files)
    size = sum(p.stat().st_size for p in DEFAULT_GAN.rglob("*") if p.is_file())
    assert size <= 4 * 1024 * 1024, f"shapes-gan is {size / 2**20:.2f} MiB, budget 4 MiB"
    cfg = json.loads((DEFAULT_GAN / "config.json").read_text())
    assert cfg["loss"] == "hinge" and cfg["betas"] == [0.0, 0.9] and cfg["lr_d"] > cfg["lr_g"]
    assert cfg["steps"] > 0


def test_generate_gives_one_32x32_rgb_image_per_prompt_and_seed_deterministically(gan):
    images = generate(gan, ["a red circle", "a blue square"], [0, 1, 2])
    assert len(images) == 6
    assert all(im.size == (32, 32) and im.mode == "RGB" for im in images)
    # the same call gives the same pixels, bit for bit
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(images, generate(gan, ["a red circle", "a blue square"], [0, 1, 2]), strict=True))
    # prompt-major: image 4 is "a blue square" with seed 1. Alone it is the same picture; a batch of another size
    # may round a few values differently (the CPU kernels pick their algorithm by batch size and thread count)
    again = np.asarray(generate(gan, "a blue square", [1])[0]).astype(int)
    assert np.abs(again - np.asarray(images[4]).astype(int)).max() <= 2
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))  # another z, another image


def test_interpolation_ends_are_the_two_seeds_images(gan):
    frames = interpolate_latents(gan, "a green star", 3, 7, steps=5)
    a, b = generate(gan, "a green star", [3, 7])
    assert len(frames) == 5
    assert np.abs(np.asarray(frames[0], float) - np.asarray(a, float)).max() <= 1
    assert np.abs(np.asarray(frames[-1], float) - np.asarray(b, float)).max() <= 1


def test_bad_input_names_the_parameter(gan):
    with pytest.raises(ValueError, match="steps"):
        interpolate_latents(gan, "a red circle", 0, 1, steps=1)
    with pytest.raises(ValueError, match="prompts"):
        generate(gan, [], [0])
    with pytest.raises(FileNotFoundError, match="path"):
        load_gan(DEFAULT_GAN / "missing")


def test_the_gan_follows_colour_above_chance_on_unseen_prompts(gan):
    scenes = [sample_scene(10_000_000 + 500_000 + i, two_object_p=0.0) for i in range(48)]
    images = generate(gan, [caption_for(s) for s in scenes], [0])
    colour = [bool(judge_against(im, s)["color"]) for im, s in zip(images, scenes, strict=True)]
    iv = vd.wilson(sum(colour), len(colour))
    assert iv.low > 1 / 7, f"colour right {sum(colour)}/48, chance 1/7"


# ---------------------------------------------------------------------------------------------------- the measures
def test_attribute_combo_reads_a_rendered_scene_back():
    scene = Scene((ShapeObject("red", "circle", "large", 8.5, 16.0),), "gray")
    assert attribute_combo(render(scene), "red", "circle") == ("left", "large", "gray")
    assert attribute_combo(render(scene), "blue", "circle") is None


def test_coverage_and_entropy_by_hand():
    counts = Counter({("left", "small", "black"): 5, ("top", "large", "gray"): 5, None: 2})
    ce = coverage_entropy(counts)
    assert ce["coverage"] == pytest.approx(2 / 30)
    assert ce["entropy_bits"] == pytest.approx(1.0)
    assert ce["found"] == pytest.approx(10 / 12)
    assert ce["max_entropy_bits"] == pytest.approx(math.log2(30))
    uniform = coverage_entropy(Counter({c: 1 for c in all_combos()}))
    assert uniform["coverage"] == 1.0 and uniform["entropy_bits"] == pytest.approx(math.log2(30))


def test_the_data_draws_its_free_attributes_evenly():
    from explainer.experiments.gan import data_sample

    s = data_sample("a red circle", 96)
    assert all(c is not None for c in s.combos)  # the judge finds every rendered red circle
    assert set(s.marginal("size")) == {"small", "large"}
    assert len(s.marginal("position")) == 5 and len(s.marginal("background")) == 3
    assert s.summary()["entropy_bits"] > 4.0


def test_prdc_points_average_to_the_prdc_package_and_catch_a_collapsed_set():
    from explainer.experiments.gan import prdc_points

    rng = np.random.default_rng(0)
    real, other = rng.normal(size=(80, 8)), rng.normal(size=(80, 8))
    pts = prdc_points(real, other)
    ref = prdc_scores(real, other)
    for k in ("precision", "recall", "density", "coverage"):
        assert pts[k].mean() == pytest.approx(ref[k])
    collapsed = real[:1].repeat(80, axis=0) + rng.normal(scale=1e-3, size=(80, 8))
    c = prdc_scores(real, collapsed)
    assert ref["recall"] > 0.8 and c["recall"] < 0.2 and c["coverage"] < 0.2


def test_real_scenes_embed_close_to_other_real_scenes():
    from explainer.gan import clip_image_embeddings

    a = clip_image_embeddings(real_distribution("blue", "square", 64))
    b = clip_image_embeddings(real_distribution("blue", "square", 64, start_seed=30_000_000))
    s = prdc_scores(a, b)
    assert s["precision"] > 0.7 and s["recall"] > 0.7


# ---------------------------------------------------------------------------------------------------- training
def test_the_gan_stage_checks_its_arguments_first():
    from explainer.train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--stage", "gan", "--gan-mismatch", "2"])
    with pytest.raises(SystemExit):
        main(["--stage", "gan", "--gan-eval-every", "0"])


def test_a_few_training_steps_write_a_loadable_folder_with_its_log(tmp_path):
    from explainer.train.__main__ import main

    out = tmp_path / "gan"
    main(["--stage", "gan", "--gan-steps", "4", "--gan-images", "64", "--log-every", "2", "--gan-eval-every", "4",
          "--work", str(tmp_path / "work"), "--out", str(out)])
    g = load_gan(out)
    assert len(generate(g, "a red circle", [0, 1])) == 2
    recs = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss_d" in r] == [2, 4]
    assert [r["step"] for r in recs if "ema_adh_color" in r] == [4]
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in recs if "loss_d" in r)
    assert 0.0 <= recs[-1]["ema_adh_color"] <= 1.0


# ---------------------------------------------------------------------------------------------------- lesson 15
def test_the_shipped_logs_hold_at_least_three_seeds_of_the_recipe():
    from explainer.experiments.gan import eval_curve, load_logs, stability

    logs = load_logs()
    assert len(logs) >= 3
    for recs in logs.values():
        steps, adh = eval_curve(recs)
        assert len(steps) >= 2 and np.all((adh >= 0) & (adh <= 1))
    stab = stability(logs)
    assert stab.common_step >= 200
    assert set(stab.adherence_at_common) == set(logs)


@pytest.fixture(scope="module")
def lesson_study(gan, shipped_pipe):
    from explainer.experiments import gan as lesson

    return lesson.diversity_study(gan, shipped_pipe, ["a red circle"], n_seeds=64, progress=False)


def test_lesson_15_measures_what_it_prints(lesson_study):
    from explainer.experiments import gan as lesson

    rows = {r["model"]: r for r in lesson_study.rows()}
    assert {r["n"] for r in rows.values()} == {64}
    assert rows["data"]["found"] == 1.0 and rows["data"]["adherence"] == 1.0
    # what lesson 15 and the README say was measured: the GAN collapses onto few combos, diffusion is more diverse,
    # and the GAN is far faster per image
    assert lesson_study.seconds_per_image("diffusion") > 10 * lesson_study.seconds_per_image("GAN")
    table = lesson.verdicts(lesson_study, lesson.stability(lesson.load_logs()))
    status = {v.claim.split(":")[0] if v.claim.startswith(("Mode", "Unstable")) else v.claim: v.status for v in table}
    assert status["Mode collapse"] == vd.AGREES
    assert status["Diffusion is more diverse than the GAN (combo entropy)"] == vd.AGREES
    text = lesson.answer(table, lesson_study)
    assert "faster per image" in text


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("seeds, words", [
    ("12", "seeds must be an integer or a list of integers from 0 to 2\\*\\*64-1, got str '12'"),
    (-1, "seeds must be from 0 to 2\\*\\*64-1, got -1"),
    (True, "seeds must be an integer or a list"),
    (None, "seeds must be an integer or a list"),
    (1.5, "seeds must be an integer or a list"),
    ([0, "1"], r"seeds\[1\] must be an integer"),
    ([0, -3], r"seeds\[1\] must be from 0"),
    ([], "seeds must hold at least one seed"),
    (2**64, "seeds must be from 0 to 2\\*\\*64-1"),
])
def test_generate_refuses_bad_seeds_by_name(gan, seeds, words):
    with pytest.raises(ValueError, match=words):
        generate(gan, "a red circle", seeds)


@pytest.mark.parametrize("prompts, words", [
    (None, "prompts must be a prompt string or a list"),
    (5, "prompts must be a prompt string or a list"),
    ([], "prompts must hold at least one prompt"),
    (["a red circle", None], r"prompts\[1\] must be a string"),
])
def test_generate_refuses_bad_prompts_by_name(gan, prompts, words):
    with pytest.raises(ValueError, match=words):
        generate(gan, prompts, 0)


def test_one_prompt_string_is_one_prompt_and_numpy_seeds_are_seeds(gan):
    assert len(generate(gan, "a red circle", np.array([0, 1]))) == 2


def test_interpolating_a_seed_with_itself_is_a_constant_path_not_black(gan):
    frames = interpolate_latents(gan, "a green star", 5, 5, steps=4)
    (alone,) = generate(gan, "a green star", [5])
    arrays = [np.asarray(f, float) for f in frames]
    assert all(np.array_equal(arrays[0], a) for a in arrays)  # the same image at every step
    assert np.abs(arrays[0] - np.asarray(alone, float)).max() <= 1  # and it is that seed's image
    assert arrays[0].std() > 5  # a picture, not a black frame


@pytest.mark.parametrize("kw, words", [
    ({"steps": 1}, "steps must be an integer >= 2 and <= 256"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"steps": True}, "steps must be an integer"),
    ({"steps": 10**6}, "steps must be an integer >= 2 and <= 256"),
    ({"seed_a": -1}, "seed_a must be from 0"),
    ({"seed_b": "3"}, "seed_b must be an integer"),
    ({"prompt": None}, "prompt must be a string"),
])
def test_interpolation_checks_its_arguments(gan, kw, words):
    args = {"prompt": "a red circle", "seed_a": 0, "seed_b": 1, **kw}
    with pytest.raises(ValueError, match=words):
        interpolate_latents(gan, **args)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_latents_are_an_error_not_a_black_image(gan, bad):
    z = gan.latents([0])
    z[0, 3] = bad
    with pytest.raises(ValueError, match="z must be finite"):
        gan.images_from_latents(z, ["a red circle"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_load_gan_on_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match=r"device='cuda' needs a CUDA GPU"):
        load_gan(device="cuda")


def test_a_bad_text_encoder_folder_is_named_without_touching_the_network(tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(FileNotFoundError, match="text_encoder must be a local folder"):
        load_gan(text_encoder="openai/clip-vit-base-patch32")  # a hub id: never downloaded
    with pytest.raises(FileNotFoundError, match=r"text_encoder .* lacks tokenizer, text_encoder, vae"):
        load_gan(text_encoder=tmp_path)
    with pytest.raises(ValueError, match="device must be"):
        load_gan(device="gpu")
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "generator.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="config.json is not a GAN config"):
        load_gan(tmp_path)


def test_the_measures_refuse_empty_input_instead_of_dividing_by_zero(gan, tiny_sd):
    from explainer.experiments import gan as G
    from explainer.gan import seconds_per_image

    cases = [
        (lambda: seconds_per_image(lambda: None, 0), "n must be from 1"),
        (lambda: coverage_entropy(Counter(), reference=[]), "reference must hold at least one"),
        (lambda: G.gan_sample(gan, "a red circle", []), "seeds must hold at least one seed"),
        (lambda: G.diffusion_sample(tiny_sd, "a red circle", []), "seeds must hold at least one seed"),
        (lambda: G.diffusion_sample(None, "a red circle", [0]), "pipe must be a diffusers pipeline"),
        (lambda: G.diversity_study(gan, "shapes-sd"), "pipe must be a diffusers pipeline"),
        (lambda: G.data_sample("a red circle", 0), "n must be from 1"),
        (lambda: G.entropy_interval([]), "combos must hold at least one"),
        (lambda: G.entropy_difference([None], []), "b must hold at least one"),
        (lambda: G.prdc_points(np.zeros((3, 4)), np.zeros((9, 4))), r"real must be an \(n, d\) array"),
        (lambda: G.prdc_table(np.zeros((9, 4)), np.full((9, 4), np.nan)), "fake must be finite"),
        (lambda: G.diversity_study(gan, tiny_sd, n_seeds=8.5), "n_seeds .* must be an integer"),
        (lambda: G.diversity_study(gan, tiny_sd, prompts=["a red"]), r"prompts\[0\] must name one colour"),
        (lambda: G.gan_sample(gan, "a red circle", "12"), "seeds must be a list of integers"),
        (lambda: real_distribution("pink", "circle", 3), "color must be one of"),
        (lambda: real_distribution("red", "circle", -1), "n must be an integer >= 0"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


def test_lesson_15_interpolations_between_a_seed_and_itself_are_two_constant_rows(gan, tiny_sd):
    from explainer.experiments.gan import gan_grid, interpolations

    res = interpolations(gan, tiny_sd, "a red circle", seed_a=4, seed_b=4, frames=3, steps=2)
    for row in (res.gan, res.diffusion):
        arrays = [np.asarray(im) for im in row]
        assert len(arrays) == 3 and all(np.array_equal(arrays[0], a) for a in arrays[1:])
    assert np.asarray(res.gan[0], float).std() > 5  # the seed's picture, not black
    for call, words in ((lambda: interpolations(gan, tiny_sd, "a red circle", frames=1), "frames must be an integer"),
                        (lambda: interpolations(gan, tiny_sd, "a red circle", seed_b=-2), "seed_b must be from 0"),
                        (lambda: interpolations("gan", tiny_sd, "a red circle"), "gan must be the GAN"),
                        (lambda: gan_grid(gan, "a red circle", "12"), "seeds must be a list of integers"),
                        (lambda: gan_grid(gan, "a red circle", []), "seeds must hold at least one seed")):
        with pytest.raises(ValueError, match=words):
            call()


@pytest.mark.parametrize("call, words", [
    (lambda: attribute_combo(np.zeros((32, 32, 3), np.uint8), color="pink"), "color must be one of"),
    (lambda: attribute_combo(np.zeros((32, 32, 3), np.uint8), shape="oval"), "shape must be one of"),
    (lambda: attribute_distribution([]), "images must hold at least one image"),
    (lambda: attribute_distribution(render(sample_scene(0))), r"images must be a list of images, got one Image"),
    (lambda: attribute_distribution(["a.png"]), r"images\[0\] must be a PIL image"),
    (lambda: judge_features([]), "images must hold at least one image"),
    (lambda: clip_image_embeddings([]), "images must hold at least one image"),
    (lambda: clip_image_embeddings([render(sample_scene(0))], clip_dir="no/such/clip"), "clip_dir must be a local"),
    (lambda: prdc_scores(np.zeros((9, 4)), np.zeros((9, 4)), k=0), "k must be from 1"),
    (lambda: prdc_scores(np.zeros((9, 4)), np.zeros((9, 5))), "real and fake must have the same embedding size"),
    (lambda: prdc_scores(np.zeros((4, 4)), np.zeros((9, 4))), r"real must be an \(n, d\) array of embeddings"),
])
def test_the_diversity_measures_name_their_bad_argument(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_the_logs_and_budget_readers_name_a_missing_folder(tmp_path):
    from explainer.experiments import gan as G

    with pytest.raises(ValueError, match="folder must be a local folder"):
        G.load_logs(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="holds no GAN training logs"):
        G.load_logs(tmp_path)
    with pytest.raises(ValueError, match="pipeline_dir .* lacks training.json"):
        G.diffusion_budget(tmp_path)
    for bad in ({}, "logs", {0: [{"step": 1, "loss_d": 0.5}]}):
        with pytest.raises(ValueError, match="logs"):
            G.stability(bad)
