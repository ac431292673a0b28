"""Property tests (hypothesis) over seeds, step counts, guidance scales and samplers for the trace invariants."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explainer import testing, tracefile
from explainer.adapters import get_adapter
from explainer.schedulers import SCHEDULERS, make_scheduler
from explainer.trace import Trace, trace

torch.set_num_threads(1)
PROMPTS = ["a red circle", "a blue square left of the green star", "the small yellow triangle above a big circle"]
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
cfgs = st.one_of(st.sampled_from([0.0, 1.0, 7.5]), st.floats(0, 15, allow_nan=False, allow_infinity=False))


def plain(pipe, prompt, scheduler, seed, steps, cfg):
    saved = pipe.scheduler
    try:
        pipe.scheduler = make_scheduler(scheduler, saved.config)
        return pipe(prompt, num_inference_steps=steps, guidance_scale=cfg,
                    generator=torch.Generator().manual_seed(seed)).images[0]
    finally:
        pipe.scheduler = saved


@SETTINGS
@given(seed=st.integers(0, 2**63), steps=st.integers(1, 5), cfg=cfgs, scheduler=st.sampled_from(list(SCHEDULERS)),
       prompt=st.sampled_from(PROMPTS), attention=st.booleans())
def test_trace_invariants(tiny_sd, seed, steps, cfg, scheduler, prompt, attention):
    tr = trace(tiny_sd, prompt, seed=seed, steps=steps, cfg=cfg, scheduler=scheduler, attention=attention)
    assert np.array_equal(np.asarray(tr.image), np.asarray(plain(tiny_sd, prompt, scheduler, seed, steps, cfg)))
    s = list(tr.steps)
    assert len(s) == steps
    for a, b in zip(s, s[1:], strict=False):
        assert torch.equal(a.latents_next, b.latents)
    for x in s:
        if cfg > 1:
            assert torch.equal(x.noise_uncond + cfg * (x.noise_cond - x.noise_uncond), x.noise_guided)
        else:
            assert x.noise_uncond is None and torch.equal(x.noise_cond, x.noise_guided)
        assert torch.isfinite(x.x0).all() and x.sigma > 0
    # sigmas fall step by step (every sampler here walks from noise to clean)
    sig = [x.sigma for x in s]
    assert sig == sorted(sig, reverse=True)


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 4), cfg=cfgs)
def test_same_seed_same_trace(tiny_sd_v, seed, steps, cfg):
    a = trace(tiny_sd_v, PROMPTS[1], seed=seed, steps=steps, cfg=cfg, scheduler="euler_a")
    b = trace(tiny_sd_v, PROMPTS[1], seed=seed, steps=steps, cfg=cfg, scheduler="euler_a")
    assert a._t.keys() == b._t.keys()
    assert all(torch.equal(a._t[k], b._t[k]) for k in a._t)


# --------------------------------------------------------------------------------------------- saved traces load
FAMILIES = {"sd": testing.build_tiny_sd, "sdxl": testing.build_tiny_sdxl,
            "sd3": lambda: testing.build_tiny_sd3(t5=True), "sd3-no-t5": testing.build_tiny_sd3,
            "flux": testing.build_tiny_flux, "pixart": testing.build_tiny_pixart}
words = st.lists(st.sampled_from(testing.WORDS), min_size=1, max_size=12).map(" ".join)


@pytest.fixture(scope="module")
def family_pipes():
    return {name: build() for name, build in FAMILIES.items()}


def assert_loads_back_equal(tr):
    with tempfile.TemporaryDirectory() as d:
        path = tr.save(Path(d) / "t.safetensors")
        back = Trace.load(path)
    assert back._t.keys() == tr._t.keys() and all(torch.equal(back._t[k], tr._t[k]) for k in tr._t)
    assert json.dumps(back._meta["settings"], sort_keys=True) == json.dumps(tr._meta["settings"], sort_keys=True)
    assert back.tokens == tr.tokens and back.words == tr.words
    if tr.levels:
        assert torch.equal(back.attention_maps(), tr.attention_maps())


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(family=st.sampled_from(list(FAMILIES)), seed=st.integers(0, 2**63), prompt=words,
       attention=st.booleans())
def test_every_saved_trace_loads_back_equal(family_pipes, family, seed, prompt, attention):
    """Whatever the family, seed and prompt (so whatever the header's length and first byte), a saved trace loads
    back with every tensor, setting and token equal (issue 27: a first byte 0x80 was taken for a pickle)."""
    pipe = family_pipes[family]
    size = {} if family in ("sd", "sdxl") else dict(height=16, width=16)
    tr = trace(pipe, prompt, seed=seed, steps=2, scheduler=get_adapter(pipe).samplers()[0], attention=attention,
               **size)
    assert_loads_back_equal(tr)


def test_a_header_whose_length_starts_with_0x80_loads_and_pickles_are_still_refused():
    """The first byte of a safetensors file is the low byte of its header length: 0x80 must load. A real pickle and
    a torch.save zip are refused by what they are."""
    import pickle

    tensors = {"x": torch.arange(3.0)}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.safetensors"
        for pad in range(300):
            meta = {"settings": {"filler": "x" * pad}, "tokens": [], "levels": {}, "text_encoders": []}
            tracefile.write(path, tensors, meta)
            if path.read_bytes()[0] == 0x80:
                break
        assert path.read_bytes()[0] == 0x80
        back = tracefile.read_meta(path)
        assert back["settings"]["filler"] == "x" * pad
        bad = Path(d) / "p.safetensors"
        bad.write_bytes(pickle.dumps({"x": 1}, protocol=4))
        with pytest.raises(tracefile.TraceFileError, match="a pickle"):
            tracefile.read(bad)
        torch.save({"x": torch.ones(2)}, bad)
        with pytest.raises(tracefile.TraceFileError, match="zip archive"):
            tracefile.read(bad)


@pytest.mark.parametrize("seed", [1, 10, 100, 1000, 10000])
def test_the_shipped_dits_traces_that_were_refused_load(seed):
    from explainer.models import SHIPPED_MODELS

    if not (SHIPPED_MODELS["shapes-dit"] / "model_index.json").exists():
        pytest.skip("the shipped DiT is not there")
    import explainer as ex

    tr = trace(ex.load_pipeline("shapes-dit"), "a red circle left of a blue square", seed=seed, steps=3)
    assert_loads_back_equal(tr)
