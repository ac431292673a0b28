"""The trace core's invariants (issue #3), on config-built tiny SD / SDXL pipelines and the shipped model if present."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explainer import capture, probes
from explainer.schedulers import SCHEDULERS, make_scheduler, scheduler_names
from explainer.text import encode_prompts
from explainer.trace import Trace, TraceFileError, trace, trace_batch

torch.set_num_threads(1)
PROMPT = "a red circle left of the blue square"
ALL = list(SCHEDULERS)


def untraced(pipe, prompt=PROMPT, scheduler="dpm++2m", seed=0, steps=4, cfg=7.5, **kw):
    """The documented untraced equivalent of trace()."""
    saved = pipe.scheduler
    try:
        if scheduler is not None:
            pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
        return pipe(prompt, num_inference_steps=steps, guidance_scale=cfg,
                    generator=torch.Generator().manual_seed(seed), **kw).images[0]
    finally:
        pipe.scheduler = saved


def pixels(img) -> np.ndarray:
    return np.asarray(img)


def assert_same_image(a, b):
    assert a.size == b.size
    assert np.array_equal(pixels(a), pixels(b)), "traced image differs from the untraced one"


def install_state(pipe):
    """Everything trace() may touch, by identity."""
    return (pipe.scheduler, dict(pipe.scheduler.__dict__).get("step"),
            {k: id(v) for k, v in pipe.unet.attn_processors.items()},
            len(pipe.unet._forward_hooks), len(pipe.unet._forward_pre_hooks),
            len(pipe.text_encoder._forward_hooks))


# --------------------------------------------------------------------------------------------- bit identity
@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("scheduler", ALL)
def test_traced_image_is_bit_identical_for_every_scheduler(tiny_sd, scheduler, attention):
    tr = trace(tiny_sd, PROMPT, seed=3, steps=4, cfg=5.0, scheduler=scheduler, attention=attention)
    assert_same_image(tr.image, untraced(tiny_sd, scheduler=scheduler, seed=3, cfg=5.0))
    assert len(tr.steps) == 4
    assert tr.settings["scheduler"] == scheduler
    assert tr.settings["scheduler_class"] == SCHEDULERS[scheduler][0]
    assert bool(tr.levels) is attention


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "euler_a", "dpm++2m", "heun"])
def test_v_prediction_and_sdxl_are_bit_identical(tiny_sd_v, tiny_sdxl, scheduler):
    for pipe in (tiny_sd_v, tiny_sdxl):
        tr = trace(pipe, PROMPT, seed=1, steps=3, cfg=4.0, scheduler=scheduler)
        assert_same_image(tr.image, untraced(pipe, scheduler=scheduler, seed=1, steps=3, cfg=4.0))


def test_scheduler_none_keeps_the_pipelines_own(tiny_sdxl):
    own = tiny_sdxl.scheduler
    tr = trace(tiny_sdxl, PROMPT, steps=3, scheduler=None)
    assert tiny_sdxl.scheduler is own
    assert tr.settings["scheduler_class"] == "EulerDiscreteScheduler"
    assert_same_image(tr.image, untraced(tiny_sdxl, scheduler=None, steps=3))


def test_final_latents_decode_to_the_image(tiny_sd):
    tr = trace(tiny_sd, PROMPT, steps=4, scheduler="ddim")
    assert_same_image(tr.decode(-1, what="latents_next"), tr.image)
    first = tr.decode(1)
    assert tr.decode(1) is first  # cached
    assert first.size == tr.image.size


# --------------------------------------------------------------------------------------------- recorded values
def test_same_seed_same_trace_and_other_seed_differs(tiny_sd):
    a = trace(tiny_sd, PROMPT, seed=7, steps=3)
    b = trace(tiny_sd, PROMPT, seed=7, steps=3)
    c = trace(tiny_sd, PROMPT, seed=8, steps=3)
    assert a._t.keys() == b._t.keys()
    for k in a._t:
        assert torch.equal(a._t[k], b._t[k]), k
    assert not torch.equal(a.steps[0].latents, c.steps[0].latents)


@pytest.mark.parametrize("scheduler", ALL)
def test_latents_chain_and_cfg_recombine_exactly(tiny_sd, scheduler):
    cfg = 6.5
    tr = trace(tiny_sd, PROMPT, seed=2, steps=5, cfg=cfg, scheduler=scheduler)
    steps = list(tr.steps)
    assert len(steps) == 5
    # x after a step is kept once: the recorded scheduler outputs equalled the next inputs, so the trace holds the
    # chain of inputs plus one final latent, not a second copy of the chain
    assert "latents_next" not in tr._t and tr._t["latents_final"].shape == (1, 4, 8, 8)
    for s, nxt in zip(steps, steps[1:], strict=False):
        assert torch.equal(s.latents_next, nxt.latents)
    for s in steps:
        # the pipeline's own arithmetic: noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        assert torch.equal(s.noise_uncond + cfg * s.cfg_delta, s.noise_guided)
        for e in s.evals:
            assert torch.equal(e.noise_uncond + cfg * (e.noise_cond - e.noise_uncond), e.noise_guided)
        assert torch.equal(s.latents, s.evals[0].latents) and torch.equal(s.latents_next, s.evals[-1].latents_next)
        assert s.noise_cond.shape == (4, 8, 8) and s.x0.shape == (4, 8, 8)
    assert not torch.equal(steps[0].noise_cond, steps[0].noise_uncond)


def test_heun_and_pndm_group_two_unet_calls_per_step(tiny_sd):
    tr = trace(tiny_sd, PROMPT, steps=4, scheduler="heun")
    assert [len(s.evals) for s in tr.steps] == [2, 2, 2, 1]  # Heun's last step is a plain Euler step
    assert tr.settings["unet_calls"] == 7
    s = tr.steps[0]
    assert torch.equal(s.evals[0].latents_next, s.evals[1].latents)  # predictor output feeds the corrector
    assert s.evals[1].sigma < s.evals[0].sigma == s.sigma
    tr = trace(tiny_sd, PROMPT, steps=4, scheduler="pndm")
    assert [len(s.evals) for s in tr.steps] == [2, 1, 1, 1] and tr.settings["unet_calls"] == 5


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "euler", "euler_a", "lcm"])
@pytest.mark.parametrize("fixture", ["tiny_sd", "tiny_sd_v"])
def test_x0_matches_the_schedulers_own_prediction(request, fixture, scheduler):
    pipe = request.getfixturevalue(fixture)
    tr = trace(pipe, PROMPT, seed=4, steps=4, scheduler=scheduler)
    sched = make_scheduler(scheduler, pipe.scheduler.config)
    sched.set_timesteps(4)
    gen = torch.Generator().manual_seed(0)
    for s, t in zip(tr.steps, sched.timesteps, strict=True):
        assert float(t) == s.timestep
        out = sched.step(s.noise_guided[None], t, s.latents[None], generator=gen, return_dict=True)
        own = out.pred_original_sample if hasattr(out, "pred_original_sample") else out.denoised
        if scheduler == "lcm":  # LCM's `denoised` applies c_skip/c_out boundary terms (negligible except near t=0)
            c_skip, c_out = sched.get_scalings_for_boundary_condition_discrete(int(t))
            own = (own[0] - c_skip * s.latents) / c_out
            torch.testing.assert_close(s.x0, own, atol=1e-4, rtol=1e-4)
        else:
            torch.testing.assert_close(s.x0, own[0], atol=1e-5, rtol=1e-5)
    ac = sched.alphas_cumprod[int(tr.steps[0].timestep)]
    assert tr.steps[0].sigma == pytest.approx(math.sqrt((1 - ac) / ac), rel=1e-5)


def test_recorded_guided_prediction_replays_the_sampler(tiny_sd):
    tr = trace(tiny_sd, PROMPT, seed=5, steps=5, scheduler="dpm++2m_karras")
    sched = make_scheduler("dpm++2m_karras", tiny_sd.scheduler.config)
    sched.set_timesteps(5)
    for s, t in zip(tr.steps, sched.timesteps, strict=True):
        nxt = sched.step(s.noise_guided[None], t, s.latents[None], return_dict=False)[0]
        assert torch.equal(nxt[0], s.latents_next)


# --------------------------------------------------------------------------------------------- attention
def test_probe_probabilities_reproduce_the_layer_output(tiny_sd):
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    attn = next(m for m in tiny_sd.unet.modules() if isinstance(m, Attention) and m.is_cross_attention)
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(2, 64, attn.to_q.in_features, generator=g)
    ehs = torch.randn(2, 16, attn.to_k.in_features, generator=g)
    with torch.no_grad():
        per_head = probes.cross_attention_probs(attn, hs, ehs, average_heads=False)
        v = attn.to_v(ehs).view(2, 16, attn.heads, -1).transpose(1, 2)
        manual = attn.to_out[0]((per_head @ v).transpose(1, 2).reshape(2, 64, -1))
        torch.testing.assert_close(manual, AttnProcessor2_0()(attn, hs, ehs), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(probes.cross_attention_probs(attn, hs, ehs), per_head.mean(1))


def test_stored_maps_are_probabilities_per_level_and_step(tiny_sd):
    tr = trace(tiny_sd, PROMPT, steps=3)
    assert tr.levels == ["8x8", "4x4"]
    meta = tr._meta["levels"]
    assert meta["8x8"]["layers"] == 3 and meta["4x4"]["layers"] == 4  # down+2 up at 8x8; down+mid+2 up at 4x4
    for level, hw in (("8x8", (8, 8)), ("4x4", (4, 4))):
        for step in range(3):
            m = tr.attention_maps(step=step, level=level)
            assert m.shape == (*hw, 16)
        assert tr._t[f"attention.{level}"].dtype == torch.float16
    red = tr.attention("red", step=1, level="8x8")
    assert torch.equal(red, tr.attention_maps(step=1, level="8x8")[..., 2])
    total = sum(tr.attention(i) for i in range(len(tr.tokens)))
    torch.testing.assert_close(total, torch.ones(8, 8), atol=3e-3, rtol=0)  # aggregate over steps and levels
    assert tr.attention("red", level=0).shape == (8, 8) and tr.attention("red", level="4x4").shape == (4, 4)
    for level in (None, "8x8", "4x4"):  # every step at once: the per-step maps, bit for bit (levels upsampled too)
        by_step = tr.attention_by_step("red", level=level)
        assert by_step.shape[0] == 3
        assert all(torch.equal(by_step[i], tr.attention("red", step=i, level=level)) for i in range(3))


def test_pooling_above_max_res_is_the_mean_of_the_full_map(tiny_sd):
    full = trace(tiny_sd, PROMPT, steps=2)
    pooled = trace(tiny_sd, PROMPT, steps=2, attention_max_res=4)
    assert pooled._meta["levels"]["8x8"] == {"size": [4, 4], "source_size": [8, 8], "layers": 3}
    a = pooled.attention_maps(step=1, level="8x8")
    b = F.avg_pool2d(full.attention_maps(step=1, level="8x8").permute(2, 0, 1), 2).permute(1, 2, 0)
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)
    assert pooled.nbytes < full.nbytes
    assert_same_image(pooled.image, full.image)


def test_tokens_and_word_lookup(tiny_sd):
    tr = trace(tiny_sd, PROMPT, steps=1, attention=True)
    toks = tr.tokens
    assert len(toks) == tiny_sd.tokenizer.model_max_length == 16
    n = len(PROMPT.split()) + 2
    assert toks[:n] == ["<|startoftext|>", *PROMPT.split(), "<|endoftext|>"]
    assert toks[0].special and toks[n - 1].special and not toks[1].special
    assert all(t.padding for t in toks[n:]) and not any(t.padding for t in toks[:n])
    assert toks[2].index == 2 and toks[2].id == tiny_sd.tokenizer.convert_tokens_to_ids("red")
    with pytest.raises(ValueError, match=r"token 'zebra' is not in the prompt.*'circle'"):
        tr.attention("zebra")
    with pytest.raises(ValueError, match="step must be from 0 to 0"):
        tr.attention("red", step=1)
    with pytest.raises(ValueError, match="level must be"):
        tr.attention("red", level="16x16")
    assert torch.equal(tr.attention("RED"), tr.attention(2))


def test_probes_read_the_layers_own_queries_and_keys_and_recompute_only_when_fused(monkeypatch):
    """Unfused, every map comes from the outputs of the layer's own to_q / to_k (the recompute path is never
    called); with fuse_qkv_projections the layer calls to_kv instead, the probe recomputes, the image is still the
    untraced one and the maps agree with the unfused run's."""
    from explainer.testing import build_tiny_sd

    pipe = build_tiny_sd("epsilon")
    calls = []
    real = probes.cross_attention_qk
    monkeypatch.setattr(probes, "cross_attention_qk", lambda *a, **k: calls.append(1) or real(*a, **k))
    read = trace(pipe, PROMPT, seed=3, steps=3)
    assert calls == []
    pipe.fuse_qkv_projections()
    try:
        fused = trace(pipe, PROMPT, seed=3, steps=3, scheduler="dpm++2m")
        assert_same_image(fused.image, untraced(pipe, seed=3, steps=3))
    finally:
        pipe.unfuse_qkv_projections()
    assert len(calls) == 3 * 7  # 3 steps x 7 cross-attention layers
    for level in read.levels:
        torch.testing.assert_close(fused.attention_maps(level=level), read.attention_maps(level=level),
                                   atol=2e-3, rtol=0)


def test_maps_keep_the_real_tokens_and_the_paddings_total(tiny_sd):
    """Stored: the prompt's 10 real positions and one padding column; shown: every position, the padding positions
    sharing that column equally; a batch of prompts of different lengths keeps each prompt's own real tokens."""
    tr = trace(tiny_sd, PROMPT, steps=2)
    real = [t.index for t in tr.tokens if not t.padding]
    pads = [t.index for t in tr.tokens if t.padding]
    stored = tr._t["attention.8x8"]
    assert stored.shape[-1] == len(real) + 1 and len(pads) == 16 - len(real)
    full = tr.attention_maps(step=1, level="8x8")
    assert torch.equal(full[..., real], stored[1, ..., :-1].float())
    torch.testing.assert_close(full[..., pads].sum(-1), stored[1, ..., -1].float(), atol=1e-6, rtol=0)
    assert torch.equal(tr.attention(pads[0], step=1, level="8x8"), full[..., pads[0]])
    short, long = trace_batch(tiny_sd, ["a red circle", PROMPT], seeds=[0, 0], steps=2)
    assert short._t["attention.8x8"].shape[-1] == sum(not t.padding for t in short.tokens) + 1 == 6
    assert long._t["attention.8x8"].shape[-1] == 11
    for t in (short, long):  # nothing is lost: the shown positions add up to the whole row
        torch.testing.assert_close(sum(t.attention(i) for i in range(16)), torch.ones(8, 8), atol=3e-3, rtol=0)


def test_a_token_or_word_of_another_trace_is_refused_not_read_by_position(tiny_sd):
    tr = trace(tiny_sd, PROMPT, steps=1)
    other = trace(tiny_sd, "blue square", steps=1)
    with pytest.raises(ValueError, match="another prompt.*'square'"):
        tr.attention(other.tokens[2])  # position 2 here is "red"
    with pytest.raises(ValueError, match="another prompt"):
        tr.attention(other.words[1])
    assert torch.equal(tr.attention(tr.tokens[2]), tr.attention("red"))
    assert torch.equal(tr.attention(tr.words[1]), tr.attention("red"))


def test_a_word_without_a_map_says_why(tiny_sd):
    """In the prompt but unknown to the tokenizer, or cut by the token limit: the error says which, not "not in
    the prompt"."""
    with pytest.warns(UserWarning, match="cannot read 'purple'"):
        tr = trace(tiny_sd, "a purple circle", steps=1)
    with pytest.raises(ValueError, match="'purple' is in the prompt, but the tokenizer has no token for it"):
        tr.attention("purple")
    long = " ".join(["a red circle"] * 5) + " and a dog"  # 17 words: past the 16-token limit
    with pytest.warns(UserWarning, match="longer than the text encoder's 16 tokens"):
        cut = trace(tiny_sd, long, steps=1)
    assert "dog" in cut.dropped_tokens
    with pytest.raises(ValueError, match="'dog' is past the text encoder's token limit"):
        cut.attention("dog")
    with pytest.raises(ValueError, match="'zebra' is not in the prompt"):
        cut.attention("zebra")


# --------------------------------------------------------------------------------------------- restoration
class Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_everything_is_restored_after_a_failure(tiny_sd, exc):
    before = install_state(tiny_sd)
    calls = []

    def explode(module, args, output):
        calls.append(1)
        if len(calls) == 2:
            raise exc("stop")

    handle = tiny_sd.unet.register_forward_hook(explode)
    try:
        with pytest.raises(exc):
            trace(tiny_sd, PROMPT, steps=4, scheduler="euler_a")
    finally:
        handle.remove()
    assert install_state(tiny_sd) == before
    assert "step" not in tiny_sd.scheduler.__dict__
    assert all(type(p).__name__ == "AttnProcessor2_0" for p in tiny_sd.unet.attn_processors.values())
    tr = trace(tiny_sd, PROMPT, steps=4, scheduler="euler_a")  # tracing after a failed run works
    assert_same_image(tr.image, untraced(tiny_sd, scheduler="euler_a"))
    assert install_state(tiny_sd) == before


def test_step_wrapper_keeps_the_signature(tiny_sd):
    import inspect

    sched = make_scheduler("euler_a", tiny_sd.scheduler.config)
    wrapped = capture.wrap_step(sched, capture.Recorder(1, (8, 8)))
    assert inspect.signature(wrapped) == inspect.signature(sched.step)
    assert "generator" in inspect.signature(wrapped).parameters


# --------------------------------------------------------------------------------------------- save / load
def test_save_load_round_trip(tiny_sd, tmp_path):
    tr = trace(tiny_sd, PROMPT, steps=3, scheduler="heun", negative_prompt="green star")
    path = tr.save(tmp_path / "run.safetensors")
    assert path.read_bytes()[:8] != b"\x80\x04\x95"[:8]  # not a pickle
    back = Trace.load(path)
    assert back._t.keys() == tr._t.keys()
    for k in tr._t:
        assert torch.equal(back._t[k], tr._t[k]) and back._t[k].dtype == tr._t[k].dtype, k
    assert back.tokens == tr.tokens and [t.padding for t in back.tokens] == [t.padding for t in tr.tokens]
    assert back.negative_tokens == tr.negative_tokens
    assert back.settings == tr.settings and back.nbytes == tr.nbytes and back.levels == tr.levels
    assert_same_image(back.image, tr.image)
    assert [len(s.evals) for s in back.steps] == [2, 2, 1]
    with pytest.raises(ValueError, match="pass pipe=|attach"):
        back.decode(0)
    assert_same_image(back.decode(1, pipe=tiny_sd), tr.decode(1))


def test_damaged_or_foreign_files_give_a_clear_error(tiny_sd, tmp_path):
    from safetensors.torch import save_file

    path = trace(tiny_sd, PROMPT, steps=2).save(tmp_path / "ok.safetensors")
    data = path.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:],
        "header": data[:8] + data[8:60].replace(b"{", b"[", 1) + data[60:],
        "tiny": b"abc",
        "pickle": b"\x80\x04\x95" + b"\x00" * 64,
    }
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(blob)
        with pytest.raises(TraceFileError):
            Trace.load(bad)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(TraceFileError, match="not an explainer trace"):
        Trace.load(foreign)
    with pytest.raises(TraceFileError, match="no trace file"):
        Trace.load(tmp_path / "missing.safetensors")


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, param", [
    ({"prompt": 3}, "prompt"), ({"prompt": None}, "prompt"), ({"steps": 0}, "steps"), ({"steps": 1001}, "steps"),
    ({"steps": 2.5}, "steps"), ({"cfg": -1.0}, "cfg"), ({"cfg": float("nan")}, "cfg"), ({"cfg": float("inf")}, "cfg"),
    ({"cfg": "7"}, "cfg"), ({"height": 12}, "height"), ({"width": 20}, "width"), ({"height": -16}, "height"),
    ({"scheduler": "dpm3"}, "scheduler"), ({"seed": -1}, "seed"), ({"seed": "0"}, "seed"), ({"seed": 1.5}, "seed"),
    ({"negative_prompt": 5}, "negative_prompt"), ({"attention": "yes"}, "attention"),
    ({"scheduler": "lcm", "steps": 60}, "steps"), ({"attention_max_res": 0}, "attention_max_res"),
])
def test_bad_input_is_rejected_before_any_work(tiny_sd, kwargs, param):
    calls = []
    handle = tiny_sd.text_encoder.register_forward_pre_hook(lambda *a: calls.append(1))
    args = {"prompt": PROMPT, "steps": 2, **kwargs}
    try:
        with pytest.raises(ValueError, match=param) as err:
            trace(tiny_sd, **args)
    finally:
        handle.remove()
    assert calls == []
    if param == "scheduler":
        assert all(name in str(err.value) for name in scheduler_names())


def test_step_index_out_of_range(tiny_sd):
    tr = trace(tiny_sd, PROMPT, steps=2)
    with pytest.raises(IndexError, match="steps"):
        tr.steps[2]
    with pytest.raises(ValueError, match="step must be from 0 to 1"):
        tr.decode(5)
    assert tr.steps[-1].index == 1


def test_unsupported_pipeline_says_not_supported_yet():
    class FakeDiT:
        transformer = object()

    with pytest.raises(NotImplementedError, match="not supported yet"):
        trace(FakeDiT(), PROMPT)


# --------------------------------------------------------------------------------------------- guidance and prompts
@pytest.mark.parametrize("cfg", [1.0, 0.5, 0.0])
def test_cfg_at_most_one_has_no_uncond(tiny_sd, cfg):
    tr = trace(tiny_sd, PROMPT, steps=3, cfg=cfg)
    assert not tr.has_uncond and not tr.settings["cfg_applied"]
    assert any("no unconditional pass" in n for n in tr.settings["notes"])
    for s in tr.steps:
        assert s.noise_uncond is None and s.cfg_delta is None
        assert torch.equal(s.noise_guided, s.noise_cond)
    assert tr.text_embeddings["text_encoder"]["uncond"] is None and tr.negative_tokens == []
    assert_same_image(tr.image, untraced(tiny_sd, steps=3, cfg=cfg))


def test_negative_prompt_is_recorded_as_the_unconditional_branch(tiny_sd):
    tr = trace(tiny_sd, PROMPT, steps=2, negative_prompt="green star")
    plain = trace(tiny_sd, PROMPT, steps=2)
    assert tr.negative_tokens[1:3] == ["green", "star"] and plain.negative_tokens[1] == "<|endoftext|>"
    neg = tiny_sd.encode_prompt("green star", "cpu", 1, False)[0][0]
    emb = tr.text_embeddings["text_encoder"]
    assert torch.equal(emb["uncond"], neg)
    assert torch.equal(emb["cond"], plain.text_embeddings["text_encoder"]["cond"])
    assert emb["uncond_pooled"].shape == (32,) and not torch.equal(emb["uncond_pooled"], emb["cond_pooled"])
    assert not torch.equal(tr.steps[0].noise_uncond, plain.steps[0].noise_uncond)
    assert any("negative prompt" in n for n in tr.settings["notes"])
    assert_same_image(tr.image, untraced(tiny_sd, steps=2, negative_prompt="green star"))


def test_empty_prompt_is_the_unconditional_prompt(tiny_sd):
    tr = trace(tiny_sd, "", steps=2)
    assert any("unconditional prompt" in n for n in tr.settings["notes"])
    assert torch.equal(tr.steps[0].noise_cond, tr.steps[0].noise_uncond)


def test_long_prompt_warns_and_records_dropped_tokens(tiny_sd):
    words = "a red circle left of the blue square and a green star above the small yellow triangle".split()
    with pytest.warns(UserWarning, match="dropped"):
        tr = trace(tiny_sd, " ".join(words), steps=1)
    assert tr.dropped_tokens == words[14:]  # 16 positions: start + 14 words + end
    assert tr.tokens[-1] == "<|endoftext|>" and not any(t.padding for t in tr.tokens)


def test_sdxl_records_both_text_encoders_and_micro_conditioning(tiny_sdxl):
    tr = trace(tiny_sdxl, PROMPT, steps=2, scheduler="euler")
    emb = tr.text_embeddings
    assert set(emb) == {"text_encoder", "text_encoder_2"}
    full, _, pooled, _ = tiny_sdxl.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)
    assert torch.equal(torch.cat([emb["text_encoder"]["cond"], emb["text_encoder_2"]["cond"]], -1), full[0])
    assert torch.equal(emb["text_encoder_2"]["cond_pooled"], pooled[0])
    assert not emb["text_encoder"]["uncond"].any() and not emb["text_encoder_2"]["uncond_pooled"].any()
    assert any("zero" in n for n in tr.settings["notes"]) and tr.negative_tokens == []
    assert tr.settings["micro_conditioning_time_ids"] == [16.0, 16.0, 0.0, 0.0, 16.0, 16.0]
    assert tr.levels == ["4x4"]
    neg = trace(tiny_sdxl, PROMPT, steps=2, scheduler="euler", negative_prompt="green star")
    assert neg.text_embeddings["text_encoder"]["uncond"].any() and neg.negative_tokens[1] == "green"


# --------------------------------------------------------------------------------------------- batch and embeddings
def test_batch_traces_match_the_batched_call(tiny_sd):
    seeds = [11, 12]
    trs = trace_batch(tiny_sd, PROMPT, seeds=seeds, steps=3, scheduler="euler_a")
    saved = tiny_sd.scheduler
    tiny_sd.scheduler = make_scheduler("euler_a", saved.config)
    try:
        images = tiny_sd([PROMPT] * 2, num_inference_steps=3, guidance_scale=7.5,
                         generator=[torch.Generator().manual_seed(s) for s in seeds]).images
    finally:
        tiny_sd.scheduler = saved
    for tr, img, seed in zip(trs, images, seeds, strict=True):
        assert_same_image(tr.image, img)
        assert tr.settings["seed"] == seed
    assert not torch.equal(trs[0].steps[0].latents, trs[1].steps[0].latents)
    single = trace(tiny_sd, PROMPT, seed=11, steps=3, scheduler="euler_a")
    assert torch.equal(trs[0].steps[0].latents, single.steps[0].latents)  # same initial noise per seed
    with pytest.raises(ValueError, match="same length"):
        trace_batch(tiny_sd, [PROMPT] * 2, seeds=[1, 2, 3])


def test_encode_prompts_matches_the_trace(tiny_sd, tiny_sdxl):
    prompts = [PROMPT, "a green star", ""]
    e = encode_prompts(tiny_sd, prompts, batch_size=2)
    assert e.hidden_states["text_encoder"].shape == (3, 16, 32) and e.pooled["text_encoder"].shape == (3, 32)
    assert e.mask.sum(1).tolist() == [10, 5, 2]
    tr = trace(tiny_sd, PROMPT, steps=1)
    assert torch.equal(e.hidden_states["text_encoder"][0], tr.text_embeddings["text_encoder"]["cond"])
    assert torch.equal(e.pooled["text_encoder"][0], tr.text_embeddings["text_encoder"]["cond_pooled"])
    assert e.mean_tokens().shape == (3, 32)
    x = encode_prompts(tiny_sdxl, prompts)
    assert set(x.hidden_states) == {"text_encoder", "text_encoder_2"} and x.pooled["text_encoder_2"].shape == (3, 32)
    with pytest.raises(ValueError, match="prompts"):
        encode_prompts(tiny_sd, "a red circle")


def test_nbytes_counts_what_is_held(tiny_sd):
    with_attn = trace(tiny_sd, PROMPT, steps=4)
    without = trace(tiny_sd, PROMPT, steps=4, attention=False)
    # maps keep the prompt's real tokens (10 of the 16 positions) and one column for the padding's share
    real = sum(not t.padding for t in with_attn.tokens)
    assert real == 10
    expected = sum(4 * 8 * 8 * (real + 1) * 2 if lv == "8x8" else 4 * 4 * 4 * (real + 1) * 2 for lv in with_attn.levels)
    assert with_attn.nbytes - without.nbytes == expected
    # what it holds is what a saved file carries: the file's tensor payload (after the 8-byte length and the JSON
    # header) is nbytes exactly
    import struct
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = without.save(Path(d) / "t.safetensors")
        (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
        assert path.stat().st_size - 8 - header_len == without.nbytes


# --------------------------------------------------------------------------------------------- shipped model
def test_shipped_model_trace(shipped_pipe):
    tr = trace(shipped_pipe, "a red circle left of a blue square", seed=0, steps=8)
    assert_same_image(tr.image, untraced(shipped_pipe, "a red circle left of a blue square", steps=8, cfg=7.5))
    assert tr.levels == ["8x8", "4x4", "2x2"] and tr.image.size == (32, 32)
    assert tr.attention("circle").shape == (8, 8)
    assert tr.settings["model_id"] == "explainer/shapes-sd"
    assert "<pad>" in tr.tokens and tr.tokens[-1].padding
