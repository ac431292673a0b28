"""Trace cases the core tests did not reach: distinct prompts in one batch, attention with a negative prompt, the
VE (Euler / Heun) branch of `Trace.decode`, and Heun's attention (two evaluations per step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainer.text import encode_prompts
from explainer.trace import trace, trace_batch

PROMPTS = ["a red circle", "a blue square left of a green star"]


def _pixels(im) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float32)


def test_trace_batch_keeps_each_prompt_s_tokens_embeddings_and_attention(tiny_sd):
    trs = trace_batch(tiny_sd, PROMPTS, seeds=[0, 0], steps=3)
    singles = [trace(tiny_sd, p, seed=0, steps=3) for p in PROMPTS]
    enc = encode_prompts(tiny_sd, PROMPTS)
    for k, (tr, one) in enumerate(zip(trs, singles, strict=True)):
        assert tr.settings["prompt"] == PROMPTS[k]
        assert [str(t) for t in tr.tokens] == [str(t) for t in one.tokens]
        name = next(iter(tr.text_embeddings))
        torch.testing.assert_close(tr.text_embeddings[name]["cond"].float(), enc.hidden_states[name][k].float(),
                                   atol=1e-5, rtol=1e-5)
        for word in PROMPTS[k].split()[1:]:  # each sample's attention is its own prompt's (batching aside: 1e-2)
            torch.testing.assert_close(tr.attention(word).float(), one.attention(word).float(), atol=1e-2,
                                       rtol=0)
    with pytest.raises(ValueError, match="not in the prompt"):
        trs[0].attention("square")  # sample 0's prompt has no square: nothing leaks across samples
    assert not torch.equal(trs[0].steps[-1].latents_next, trs[1].steps[-1].latents_next)


def test_attention_comes_from_the_conditional_half_with_a_negative_prompt(tiny_sd):
    plain = trace(tiny_sd, "a red circle", seed=1, steps=3)
    neg = trace(tiny_sd, "a red circle", seed=1, steps=3, negative_prompt="a green star left of a blue square")
    # step 0 sees the same latents; the conditional branch reads only the prompt, so its attention is unchanged,
    # while the unconditional branch (the negative prompt) is different text
    torch.testing.assert_close(neg.attention("red", step=0).float(), plain.attention("red", step=0).float(),
                               atol=1e-3, rtol=0)
    assert not torch.equal(neg.steps[0].noise_uncond, plain.steps[0].noise_uncond)
    assert torch.equal(neg.steps[0].noise_cond, plain.steps[0].noise_cond)


@pytest.mark.parametrize("scheduler", ["euler", "heun"])
def test_ve_decode_matches_the_vp_scale(tiny_sd, scheduler):
    ve = trace(tiny_sd, "a red circle", seed=3, steps=4, scheduler=scheduler)
    vp = trace(tiny_sd, "a red circle", seed=3, steps=4, scheduler="ddim")
    assert ve.settings["latent_space"] == "ve" and vp.settings["latent_space"] == "vp"
    # the last output has sigma 0: decoded, it is the pipeline's own image
    assert np.array_equal(_pixels(ve.decode(len(ve.steps) - 1, what="latents_next")), _pixels(ve.image))
    # the first input is the same seed's noise in both spaces; VE's is sigma_max times larger, so decode divides
    # by sqrt(sigma^2 + 1): both decode to nearly the same picture (undivided, VE's would be far off)
    a, b = _pixels(ve.decode(0, what="latents")), _pixels(vp.decode(0, what="latents"))
    assert np.abs(a - b).mean() < 8.0
    sigma = float(ve.steps[0].sigma)
    assert sigma > 5 and torch.allclose(ve.steps[0].latents / (sigma ** 2 + 1) ** 0.5, vp.steps[0].latents,
                                        atol=0.05 * float(vp.steps[0].latents.abs().max()))


def test_heun_attention_averages_its_two_evaluations(tiny_sd):
    tr = trace(tiny_sd, "a red circle", seed=0, steps=3, scheduler="heun")
    assert tr.settings["n_evals"] == 5 and [len(s.evals) for s in tr.steps] == [2, 2, 1]
    for i in range(len(tr.steps)):
        m = tr.attention_maps(step=i)
        assert torch.isfinite(m).all()
        torch.testing.assert_close(m.float().sum(-1), torch.ones(m.shape[:-1]), atol=2e-2, rtol=0)  # per position
    assert not torch.allclose(tr.attention("red", step=0).float(), tr.attention("red", step=2).float())


def test_the_gpu_check_runs_on_the_cpu_with_tiny_configs(capsys):
    """benchmarks/gpu_check.py --tiny: every family built, plain vs traced, bit-identical, attention bytes printed
    (the full-depth run needs a GPU; this keeps the script working between GPU runs)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import gpu_check

    results = gpu_check.main(["--tiny", "--steps", "1"])
    assert [r["family"] for r in results] == ["sd15", "sdxl", "sd3", "flux"]
    assert all(r["identical"] and r["attention_bytes"] > 0 for r in results)
    # only the prompt's real tokens plus one padding column are kept, whatever the encoders pad to
    assert [(r["columns"], r["text_positions"]) for r in results] == [(11, 77), (11, 77), (20, 333), (10, 512)]
    assert "bit-identical yes" in capsys.readouterr().out
