"""shapes-dit: the shipped SD3-style diffusion transformer (issue 16). Everything offline, on the shipped folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import explainer as ex
from explainer.judge import judge_against
from explainer.models import SHIPPED_MODELS
from explainer.shapes import caption_for, sample_scene
from explainer.train.dit import (
    T5_ZEROS,
    CollapsedPadProcessor,
    check_collapsed_pad,
    collapsed_conditioning,
    count_parameters,
)

FOLDER = SHIPPED_MODELS["shapes-dit"]


@pytest.fixture(scope="module")
def dit():
    torch.set_num_threads(1)  # one core per test worker (conftest)
    return ex.load_pipeline("shapes-dit")


def _image(pipe, prompt: str, steps: int = 4, seed: int = 0, **kw) -> np.ndarray:
    return pipe(prompt, num_inference_steps=steps, guidance_scale=5.0, generator=torch.Generator().manual_seed(seed),
                output_type="np", **kw).images[0]


def test_loads_offline_by_name_and_with_plain_diffusers(dit):
    from diffusers import DiffusionPipeline, SD3Transformer2DModel, StableDiffusion3Pipeline

    assert isinstance(dit, StableDiffusion3Pipeline)
    assert isinstance(dit.transformer, SD3Transformer2DModel)
    assert dit.text_encoder_3 is None and dit.tokenizer_3 is None
    assert dit.explainer_model_id == "explainer/shapes-dit"
    # The folder is a standard one: plain diffusers loads it (SD3 without T5 is loaded this way in its docs too),
    # given the VAE and text encoders it shares with shapes-sd instead of holding copies (shared_parts.json says so).
    from explainer.models import sd3_parts_from

    assert json.loads((FOLDER / "shared_parts.json").read_text())["from"] == "../shapes-sd"
    plain = DiffusionPipeline.from_pretrained(FOLDER, torch_dtype=torch.float32, text_encoder_3=None,
                                              tokenizer_3=None, **sd3_parts_from(SHIPPED_MODELS["shapes-sd"]))
    plain.set_progress_bar_config(disable=True)
    assert type(plain) is StableDiffusion3Pipeline
    assert np.array_equal(_image(plain, "a red circle"), _image(dit, "a red circle"))
    # the default model is still the U-Net one
    assert type(ex.load_pipeline()).__name__ == "StableDiffusionPipeline"


def test_folder_is_safetensors_fp16_within_budget():
    from safetensors import safe_open

    index = json.loads((FOLDER / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline"
    assert index["text_encoder_3"] == [None, None]
    files = [p for p in FOLDER.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent.name for p in weights} == {"transformer"}  # the VAE and text encoders are shapes-sd's
    for p in weights:
        with safe_open(p, "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}, p
    new = sum(p.stat().st_size for p in weights)
    assert new <= 8 * 1024 * 1024, f"new weights {new / 2**20:.2f} MiB exceed the 8 MiB share"


def test_vae_tokenizer_and_text_encoders_are_the_shipped_ones(dit):
    sd = ex.load_pipeline()
    for a, b in zip(sd.vae.state_dict().values(), dit.vae.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert dit.vae.config.shift_factor == 0.0 and dit.vae.config.scaling_factor == sd.vae.config.scaling_factor
    ids = sd.tokenizer(["a small blue star above a red square"], return_tensors="pt").input_ids
    assert dit.tokenizer(["a small blue star above a red square"], return_tensors="pt").input_ids.equal(ids)
    with torch.no_grad():
        tuned = sd.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        ours = dit.text_encoder_2(ids, output_hidden_states=True).hidden_states[-2]
    assert torch.equal(tuned, ours)  # text_encoder_2 is shapes-sd's fine-tuned text encoder, frozen


def test_training_forward_builds_the_pipelines_conditioning(dit):
    # The collapsed zero-T5 pad that training uses gives the transformer output the pipeline's 256 zeros give.
    assert check_collapsed_pad(dit) < 1e-4
    caps = ["a red star on the left", ""]
    emb, pooled = collapsed_conditioning(dit, caps, "cpu")
    full, _, pooled_full, _ = dit.encode_prompt(caps, None, None, do_classifier_free_guidance=False)
    assert full.shape == (2, 24 + T5_ZEROS, 256) and emb.shape == (2, 24 + 1, 256)
    assert torch.equal(emb[:, :24], full[:, :24]) and torch.equal(pooled, pooled_full)
    assert not emb[:, 24:].any() and not full[:, 24:].any()


def test_collapsed_pad_call_draws_the_same_image(dit):
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    plain = _image(dit, "a large yellow cross at the top", steps=10)
    dit.transformer.set_attn_processor(CollapsedPadProcessor(T5_ZEROS))
    try:
        fast = _image(dit, "a large yellow cross at the top", steps=10, max_sequence_length=1)
    finally:
        dit.transformer.set_attn_processor(JointAttnProcessor2_0())
    assert np.abs(plain * 255 - fast * 255).max() <= 1.0


def test_trace_is_bit_identical_and_reads_blocks(dit):
    tr = ex.trace(dit, "a red star above a blue circle", seed=3, steps=6, cfg=5.0, scheduler=None)
    plain = dit("a red star above a blue circle", num_inference_steps=6, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(3)).images[0]
    assert np.array_equal(np.asarray(tr.image), np.asarray(plain))
    assert tr.levels == [f"block {i}" for i in range(len(dit.transformer.transformer_blocks))]
    assert tuple(tr.attention("star").shape) == (8, 8)


# Measured on the shipped weights (see the model card): over these 24 unseen one-object prompts at 20 steps and
# CFG 5 the judge read the colour right in nearly all and the position in most; the floors leave room for arithmetic
# differences between machines. Shape is NOT asserted: after 3,000 updates the DiT draws blobs of the right colour
# in the right place, and the judge reads their shape near chance (model card) - a known weakness, not a skip.
ADHERENCE_FLOORS = {"color": 0.75, "position": 0.5}


def test_draws_what_the_prompt_asks(dit):
    prompts = [caption_for(sample_scene(10_000_000 + i, two_object_p=0.0, held_out="allow")) for i in range(24)]
    dit.transformer.set_attn_processor(CollapsedPadProcessor(T5_ZEROS))
    try:
        ims = dit(prompts, num_inference_steps=20, guidance_scale=5.0, max_sequence_length=1,
                  generator=[torch.Generator().manual_seed(k) for k in range(len(prompts))]).images
    finally:
        from diffusers.models.attention_processor import JointAttnProcessor2_0

        dit.transformer.set_attn_processor(JointAttnProcessor2_0())
    js = [judge_against(im, p) for im, p in zip(ims, prompts, strict=True)]
    rates = {k: float(np.mean([bool(j[k]) for j in js])) for k in ADHERENCE_FLOORS}
    for k, floor in ADHERENCE_FLOORS.items():
        assert rates[k] >= floor, (k, rates)


def test_train_stage_dit_runs_and_writes_a_loadable_pipeline(tmp_path):
    from explainer.train.__main__ import main

    out = tmp_path / "out"
    main(["--stage", "dit", "--dit-steps", "3", "--dit-images", "32", "--dit-batch", "4", "--dit-layers", "1",
          "--work", str(tmp_path / "work"), "--out", str(out)])
    meta = json.loads((out / "training.json").read_text())
    assert meta["dit_steps"] == 3 and meta["text_encoders"].startswith("frozen")
    log = [json.loads(line) for line in (tmp_path / "work" / "dit" / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 3 and np.isfinite(log[0]["loss"])
    pipe = ex.load_pipeline(out)
    assert count_parameters(pipe.transformer) < count_parameters(ex.load_pipeline("shapes-dit").transformer)
    assert _image(pipe, "a red circle", steps=2).shape == (32, 32, 3)


@pytest.mark.parametrize("flag,value,needle", [("--dit-batch", "0", "--dit-batch must be from 1"),
                                               ("--dit-lr", "0", "--dit-lr must be a finite number > 0"),
                                               ("--dit-patch", "3", "--dit-patch")])
def test_train_stage_dit_rejects_bad_arguments(tmp_path, capsys, flag, value, needle):
    from explainer.train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--stage", "dit", flag, value, "--work", str(tmp_path)])
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "dit").exists()


def test_load_pipeline_names_the_missing_shipped_dit(monkeypatch, tmp_path):
    from explainer import models

    monkeypatch.setitem(models.SHIPPED_MODELS, "shapes-dit", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="--stage dit"):
        ex.load_pipeline("shapes-dit")


# ------------------------------------------------------------------------------------------------ bad input (issue 27)
@pytest.mark.parametrize("sampler", ["ddim", "euler", "dpm++2m"])
def test_u_net_samplers_are_refused_by_grid_generate_and_the_grid_explorer_as_trace_refuses_them(dit, sampler):
    from explainer import generation, widgets

    before, config = dit.scheduler, dict(dit.scheduler.config)
    with pytest.raises(ValueError) as by_trace:
        ex.trace(dit, "a red circle", steps=2, scheduler=sampler)
    want = str(by_trace.value)
    assert "one of ['flow_euler', 'flow_heun']" in want and "flow-matching model" in want
    with generation.count_denoiser_calls(dit) as count:
        with pytest.raises(ValueError) as by_generate:
            ex.generate(dit, "a red circle", steps=2, scheduler=sampler)
        assert str(by_generate.value) == want  # one check, one place: the same words
        with pytest.raises(ValueError, match=r"schedulers must be None .* one of \['flow_euler', 'flow_heun'\]"):
            ex.grid(dit, "a red circle", seeds=[0, 1], steps=2, schedulers=sampler)
        with pytest.raises(ValueError, match="flow-matching model"):
            ex.grid(dit, "a red circle", seeds=0, steps=2, schedulers=["flow_euler", sampler])
        ge = widgets.grid_explorer(dit)
        ge.cols_axis.value, ge.cols_values.value = "schedulers", f"flow_euler, {sampler}"
        ge.rows_values.value = "0"
        ge.steps.value = 2
        ge.run()
        assert "flow-matching model" in ge.message.value and ge.result is None
    assert count.calls == 0  # refused before the transformer ran once
    assert dit.scheduler is before and dict(dit.scheduler.config) == config
    # the menu offers only what fits
    assert [v for _, v in widgets.sampler_options(dit)][1:] == ["flow_euler", "flow_heun"]
