"""Bad input, tried as a new user would: each case gets a clear error naming the parameter (and what is allowed)
before any heavy work, or a visible warning, and the pipeline is intact afterwards."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from explainer import generation, schedulers, sweeps, validation
from explainer.trace import Trace, TraceFileError, trace, trace_batch

PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def small_trace(tiny_sd):
    return trace(tiny_sd, PROMPT, seed=0, steps=2)


def _unchanged(pipe, before):
    assert pipe.scheduler is before


# --------------------------------------------------------------------------------------------- sizes and numbers
def test_huge_size_is_refused_from_a_memory_estimate(tiny_sd):
    before = tiny_sd.scheduler
    with pytest.raises(ValueError, match=r"height x width = 8192 x 8192 needs at least .* GiB"):
        trace(tiny_sd, PROMPT, steps=2, height=8192, width=8192)
    with pytest.raises(ValueError, match="height x width"):
        sweeps.generate(tiny_sd, PROMPT, steps=2, height=8192, width=8192)
    _unchanged(tiny_sd, before)


def test_far_above_the_model_size_warns(tiny_sd):
    h, w = validation.default_image_size(tiny_sd)
    with pytest.warns(UserWarning, match="times the pixels of this model's own"):
        validation.check_image_size(tiny_sd, 4 * h, 4 * w, 8)


def test_one_side_alone_gets_the_other_from_the_model(tiny_sd):
    h, w = validation.default_image_size(tiny_sd)
    tr = trace(tiny_sd, PROMPT, steps=2, width=w + 16, attention=True)
    assert tr.image.size == (w + 16, h)  # PIL: (width, height)
    assert tr.settings["width"] == w + 16 and tr.settings["height"] == h
    lat = tr.steps[0].latents
    assert tuple(lat.shape[-2:]) == (h // tiny_sd.vae_scale_factor, (w + 16) // tiny_sd.vae_scale_factor)


@pytest.mark.parametrize("cfg", [1e308, float("inf"), float("nan"), -1, 101])
def test_cfg_has_a_finite_bound(tiny_sd, cfg):
    with pytest.raises(ValueError, match="cfg must be a number from 0 to 100"):
        trace(tiny_sd, PROMPT, steps=2, cfg=cfg)


def test_numpy_seeds_and_levels_are_accepted(tiny_sd):
    trs = trace_batch(tiny_sd, PROMPT, seeds=np.array([0, 1]), steps=2)
    assert [t.settings["seed"] for t in trs] == [0, 1]
    lv = trs[0].levels
    assert torch.equal(trs[0].attention("red", level=np.int64(0)), trs[0].attention("red", level=lv[0]))


# --------------------------------------------------------------------------------------------- prompts
def _messages(caught, words):
    return [str(w.message) for w in caught if words in str(w.message)]


def test_a_long_negative_prompt_warns_naming_it_the_limit_and_the_dropped_words(tiny_sd):
    from explainer.testing import MAX_TOKENS, WORDS

    neg_words = list(WORDS[:20])  # 20 known words; the tokenizer keeps MAX_TOKENS - 2 of them (start and end tokens)
    kept = MAX_TOKENS - 2
    with pytest.warns(UserWarning) as caught:
        long_tr = trace(tiny_sd, PROMPT, steps=1, negative_prompt=" ".join(neg_words))
    msgs = _messages(caught, "dropped")
    assert len(msgs) == 1 and msgs[0].startswith(f"negative_prompt is longer than the text encoder's {MAX_TOKENS} ")
    assert msgs[0].endswith(", ".join(repr(w) for w in neg_words[kept:]))  # exactly the words past the limit
    # what the warning says is what happened: the cut negative prompt steers exactly as its first `kept` words do
    short_tr = trace(tiny_sd, PROMPT, steps=1, negative_prompt=" ".join(neg_words[:kept]))
    assert torch.equal(long_tr.steps[0].noise_uncond, short_tr.steps[0].noise_uncond)
    assert np.array_equal(np.asarray(long_tr.image), np.asarray(short_tr.image))
    with warnings.catch_warnings(record=True) as fits:
        warnings.simplefilter("always")
        trace(tiny_sd, PROMPT, steps=1, negative_prompt=" ".join(neg_words[:kept]))
    assert not _messages(fits, "dropped")


def test_out_of_vocabulary_words_warn_once_and_the_run_goes_on(shipped_pipe):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = trace(shipped_pipe, "a pink circle left of a dodecahedron", steps=1)
    msgs = _messages(caught, "cannot read")
    assert len(msgs) == 1 and msgs[0].startswith("prompt: the model cannot read 'pink', 'dodecahedron':")
    assert "circle" not in msgs[0].split("the words it knows")[0]
    assert [t.raw for t in tr.tokens if t.raw == "<unk>"] == ["<unk>", "<unk>"] and tr.image is not None
    # several prompts, the same unknown word: one warning, the word named once
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace_batch(shipped_pipe, ["a pink circle", "a Pink square"], seeds=[0, 1], steps=1)
    msgs = _messages(caught, "cannot read")
    assert len(msgs) == 1 and "'pink'" in msgs[0] and "Pink" not in msgs[0]
    # the negative prompt is named as such; a prompt of known words draws no warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace(shipped_pipe, "a purple circle", steps=1, negative_prompt="blurry")
    assert [m.split(":")[0] for m in _messages(caught, "cannot read")] == ["negative_prompt"]
    # CJK, emoji and a NUL byte are unknown too
    assert validation.unknown_words(shipped_pipe.tokenizer, "a \u732b circle \U0001f431 x\x00") == [
        "\u732b", "\U0001f431", "x", "\x00"]


def test_an_absurdly_long_prompt_is_refused_before_tokenizing(tiny_sd, monkeypatch):
    import importlib

    trace_module = importlib.import_module("explainer.trace")  # the module (explainer.trace is also the function)

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized a prompt that should have been refused")

    monkeypatch.setattr(trace_module, "tokenize", no_tokenizing)
    monkeypatch.setattr(validation, "unknown_words", no_tokenizing)
    pasted = "a red circle " * 80_000  # about 1 MB pasted into the playground
    with pytest.raises(ValueError, match=f"prompt must be at most 10,000 characters, got {len(pasted):,} characters"):
        trace(tiny_sd, pasted, steps=1)
    with pytest.raises(ValueError, match="negative_prompt must be at most 10,000 characters"):
        trace(tiny_sd, PROMPT, steps=1, negative_prompt=pasted)
    with pytest.raises(ValueError, match=r"prompts\[1\] must be at most 10,000 characters"):
        trace_batch(tiny_sd, [PROMPT, pasted], steps=1)
    with pytest.raises(ValueError, match="prompt must be at most 10,000 characters"):
        sweeps.generate(tiny_sd, pasted, steps=1)
    assert validation.check_prompt("a" * validation.MAX_PROMPT_CHARS) == "a" * validation.MAX_PROMPT_CHARS


def test_trace_builds_its_sampler_as_the_generation_docstring_says(tiny_sd, monkeypatch):
    import importlib

    trace_module = importlib.import_module("explainer.trace")
    built = []

    def refuse(*args, **kwargs):
        raise AssertionError("trace went through explainer.generation's sampler swap")

    def make(name, config):
        built.append(name)
        return schedulers.make_scheduler(name, config)

    monkeypatch.setattr(generation, "build_scheduler", refuse)
    monkeypatch.setattr(generation, "using_scheduler", refuse)
    monkeypatch.setattr(trace_module, "make_scheduler", make)
    before = tiny_sd.scheduler
    tr = trace(tiny_sd, PROMPT, steps=1, scheduler="euler")
    assert built == ["euler"] and tr.settings["scheduler_class"] == "EulerDiscreteScheduler"
    assert tiny_sd.scheduler is before  # capture put the pipeline's own back
    assert "`trace` / `trace_batch` do not" in generation.__doc__


def test_claims_rows_are_numbered_and_point_to_lessons_that_exist():
    """docs/claims.md (generated from the lessons' findings: see test_lessons) numbers its claims in order, each row
    names a lesson that exists, and any test it names is defined."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    claims = (root / "docs" / "claims.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", claims))
    defined = {m for f in (root / "tests").glob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", f.read_text(), re.M)}
    assert named <= defined, f"named in docs/claims.md but not defined: {sorted(named - defined)}"
    lessons = {int(f.name[:2]) for f in (root / "lessons").glob("[0-9][0-9]_*.py")}
    rows = re.findall(r"^\| (\d+) \| [^|]+\| (\d+) \|", claims, re.M)
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1))  # numbered in order
    assert {int(lesson) for _, lesson in rows} >= {12, 14, 15} and {int(lesson) for _, lesson in rows} <= lessons


# --------------------------------------------------------------------------------------------- trace files
def test_edited_settings_in_a_trace_file_fail_the_checksum(small_trace, tmp_path):
    import json
    import struct

    path = small_trace.save(tmp_path / "t.safetensors")
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = json.loads(header["__metadata__"]["explainer.trace"])
    assert meta["settings"]["prompt"].startswith("a red ")
    meta["settings"]["prompt"] = meta["settings"]["prompt"].replace("red", "tan", 1)  # same length, other prompt
    header["__metadata__"]["explainer.trace"] = json.dumps(meta)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (n - len(raw)) if len(raw) <= n else b""
    assert len(raw) == n, "the edit must keep the header length (pad with spaces)"
    path.write_bytes(bytes(data[:8]) + raw + bytes(data[8 + n:]))
    with pytest.raises(TraceFileError, match="modified or corrupted"):
        Trace.load(path)


def test_a_pickle_named_safetensors_is_named_as_a_pickle(tmp_path):
    path = tmp_path / "fake.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(TraceFileError, match="pickle.*tr.save"):
        Trace.load(path)
    torch.save({"a": torch.ones(2)}, path)
    with pytest.raises(TraceFileError, match="pickle"):
        Trace.load(path)


def test_a_big_foreign_file_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\xff" * 8 + b"\0" * 1000)  # a header length far beyond the file
    read = []
    monkeypatch.setattr(type(path), "read_bytes", lambda self: read.append(self) or b"")
    with pytest.raises(TraceFileError, match="truncated"):
        Trace.load(path)
    assert not read, "the body must not be read before the header is checked"


def test_save_into_a_missing_folder_or_onto_a_folder(small_trace, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        small_trace.save(tmp_path / "nope" / "t.safetensors")
    with pytest.raises(ValueError, match="is a folder"):
        small_trace.save(tmp_path)


# --------------------------------------------------------------------------------------------- sweeps
def test_slerp_checks_t_and_shapes():
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    for t in (float("nan"), float("inf"), "0.5", 10**19, True):
        with pytest.raises(ValueError, match="t must be a finite number from -1e6 to 1e6"):
            sweeps.slerp(a, b, t)
    with pytest.raises(ValueError, match="same shape"):
        sweeps.slerp(a, torch.randn(3, 8), 0.5)
    for dim in (2, -3, 1.0, "0"):
        with pytest.raises(ValueError, match="dim must be an integer >= -2 and <= 1"):
            sweeps.slerp(a, b, 0.5, dim=dim)
    for pipe in (None, "shapes-sd", object()):
        with pytest.raises(ValueError, match="pipe must be a diffusers pipeline"):
            sweeps.generate(pipe, PROMPT, steps=1)
        with pytest.raises(ValueError, match="pipe must be a diffusers pipeline"):
            sweeps.grid(pipe, PROMPT, seeds=[0, 1], steps=1)


def test_grid_result_image_bounds_and_progress(tiny_sd):
    res = sweeps.grid(tiny_sd, PROMPT, seeds=[0, 1], steps=2)
    with pytest.raises(IndexError, match=r"row must be from 0 to 0 and col from 0 to 1"):
        res.image(5, 5)
    with pytest.raises(ValueError, match="progress"):
        sweeps.grid(tiny_sd, PROMPT, seeds=[0, 1], steps=2, progress="yes")


def test_grid_larger_than_max_batch_equals_single_runs(tiny_sd):
    res = sweeps.grid(tiny_sd, PROMPT, seeds=[0, 1, 2], cfgs=[3.0, 6.0], steps=2, max_batch=4)
    assert res.batched_cells == 6 and res.pipeline_calls == 2  # 4 + 2 cells
    for r in range(3):
        for c in range(2):
            ref = sweeps.generate(tiny_sd, PROMPT, **res.cell_settings(r, c))
            assert np.array_equal(np.asarray(ref), np.asarray(res.image(r, c)))


def test_generation_counts_and_expects_denoiser_calls(tiny_sd):
    for name, steps in (("heun", 3), ("pndm", 3), ("ddim", 3)):
        with generation.count_denoiser_calls(tiny_sd) as count:
            sweeps.generate(tiny_sd, PROMPT, steps=steps, scheduler=name, cfg=3.0)
        assert count.calls == generation.expected_denoiser_calls(tiny_sd, name, steps), name
    assert generation.expected_denoiser_calls(tiny_sd, "heun", 3) == 5


def test_using_scheduler_none_keeps_the_pipeline_s_own(tiny_sd):
    before = tiny_sd.scheduler
    with generation.using_scheduler(tiny_sd, None) as used:
        assert used is before
    with generation.using_scheduler(tiny_sd, "EULER") as used:
        assert type(used).__name__ == "EulerDiscreteScheduler"
    assert tiny_sd.scheduler is before


# --------------------------------------------------------------------------------------------- figures
@pytest.mark.parametrize("call, words", [
    (lambda p, tr: p.plot_filmstrip(tr, n=0), "n must be"),
    (lambda p, tr: p.plot_filmstrip(tr, steps=[]), "steps must"),
    (lambda p, tr: p.plot_attention(tr, tokens=[]), "tokens must"),
    (lambda p, tr: p.plot_attention(tr, cols=0), "cols must"),
    (lambda p, tr: p.plot_attention_grid(tr, n=0), "n must be"),
])
def test_plot_arguments_are_checked(small_trace, call, words):
    from explainer import plots

    with pytest.raises(ValueError, match=words):
        call(plots, small_trace)


def test_plot_attention_takes_a_word_as_the_trace_does(small_trace):
    from explainer import plots

    fig = plots.plot_attention(small_trace, tokens="RED")  # one word, any case: as tr.attention("RED")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 1 and "red" in titles[0].lower()
    np.testing.assert_allclose(fig.axes[0].images[-1].get_array(), small_trace.attention("RED").numpy(), rtol=1e-6)


def test_save_png_and_gif_size(small_trace, tmp_path):
    from explainer import export

    with pytest.raises(ValueError, match="fig must be a matplotlib Figure"):
        export.save_png("not a figure", tmp_path / "x.png")
    with pytest.raises(ValueError, match="size"):
        export.trace_to_gif(small_trace, tmp_path / "x.gif", size=30000)


# --------------------------------------------------------------------------------------------- widgets
def test_step_explorer_checks_its_step(small_trace):
    from explainer import widgets

    for bad in ("3", 2.5, True):
        with pytest.raises(ValueError, match="step must be an integer"):
            widgets.step_explorer(small_trace, step=bad)
    with pytest.raises(ValueError, match="step must be from 0 to 1"):
        widgets.step_explorer(small_trace, step=5)
    ex = widgets.step_explorer(small_trace, step=-1)  # from the end, as everywhere else
    assert ex.step.value == len(small_trace.steps) - 1


def test_playground_takes_any_spelling_of_a_sampler(tiny_sd):
    from explainer import widgets

    pg = widgets.playground(tiny_sd, scheduler="DPM++2M", steps=2)
    assert pg.sampler.value == "dpm++2m"
    with pytest.raises(ValueError, match="scheduler must be"):
        widgets.playground(tiny_sd, scheduler="nope")


def test_count_and_progress_arguments():
    with pytest.raises(ValueError, match="max_batch must be from 1"):
        validation.check_positive_int(0, "max_batch")
    assert validation.check_positive_int(np.int64(3), "n") == 3
    with pytest.raises(ValueError, match="progress must be None, True"):
        validation.check_progress("yes")


def test_grid_explorer_refuses_runaway_steps(tiny_sd):
    from explainer import widgets

    ge = widgets.grid_explorer(tiny_sd)
    ge.steps.value = 1000
    ge.run()
    assert "steps must be from 1 to 200" in ge.message.value


# --------------------------------------------------------------------------------------------- training CLI
@pytest.mark.parametrize("argv, words", [
    (["--vae-steps", "-5"], "--vae-steps must be from 1, got -5"),
    (["--threads", "0"], "--threads must be from 1, got 0"),
    (["--device", "bogus"], "--device must be cpu, cuda"),
    (["--vae-lr", "nan"], "--vae-lr must be a finite number > 0"),
    (["--vae-images", "0"], "--vae-images must be from 1"),
    (["--vae-batch", "0"], "--vae-batch must be from 1"),
    (["--unet-images", "20000000"], "--unet-images must be from 1 to 10,000,000"),
])
def test_training_cli_refuses_bad_options_before_any_work(argv, words, capsys, tmp_path):
    from explainer.train.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--stage", "vae", "--work", str(tmp_path / "w")] + argv)
    assert exc.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before the work folder (or any data) was made


def test_training_cli_refuses_cuda_without_a_gpu(capsys, tmp_path):
    from explainer.train.__main__ import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        main(["--stage", "vae", "--work", str(tmp_path / "w"), "--device", "cuda"])
    assert "sees no CUDA GPU" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- issue 27: samplers
@pytest.fixture(scope="module")
def tiny_flow():
    from explainer.testing import build_tiny_sd3

    return build_tiny_sd3()


def _flow_calls(pipe, sampler):
    from explainer.experiments.guidance import generate_many

    return {
        "trace": lambda: trace(pipe, PROMPT, steps=2, scheduler=sampler),
        "generate": lambda: sweeps.generate(pipe, PROMPT, steps=2, scheduler=sampler),
        "grid fixed": lambda: sweeps.grid(pipe, PROMPT, steps=2, schedulers=sampler),
        "grid axis": lambda: sweeps.grid(pipe, PROMPT, steps=2, schedulers=["flow_euler", sampler]),
        "generate_many": lambda: generate_many(pipe, [PROMPT], [0], steps=2, scheduler=sampler),
        "generate_images": lambda: generation.generate_images(pipe, [PROMPT], [0], steps=2, scheduler=sampler),
    }


@pytest.mark.parametrize("sampler", ["ddim", "euler", "dpm++2m", "heun", "lcm", "EULER"])
@pytest.mark.parametrize("surface", ["trace", "generate", "grid fixed", "grid axis", "generate_many",
                                     "generate_images"])
def test_u_net_samplers_are_refused_on_a_flow_matching_model_everywhere_as_trace_refuses_them(tiny_flow, sampler,
                                                                                            surface):
    before, config = tiny_flow.scheduler, dict(tiny_flow.scheduler.config)
    with count_calls(tiny_flow) as count, pytest.raises(ValueError) as err:
        _flow_calls(tiny_flow, sampler)[surface]()
    msg = str(err.value)
    assert "must be None (keep the pipeline's own) or one of ['flow_euler', 'flow_heun']" in msg
    assert "flow-matching model" in msg and sampler.lower() in msg.lower()
    assert msg.split(" ")[0] in ("scheduler", "schedulers")
    assert count.calls == 0  # refused before the denoiser ran once
    assert tiny_flow.scheduler is before and dict(tiny_flow.scheduler.config) == config


def test_one_sampler_check_gives_trace_and_generate_the_same_words(tiny_flow):
    msgs = []
    for surface in ("trace", "generate", "generate_many", "generate_images"):
        with pytest.raises(ValueError) as err:
            _flow_calls(tiny_flow, "ddim")[surface]()
        msgs.append(str(err.value))
    assert len(set(msgs)) == 1, msgs


def test_a_flow_sampler_runs_on_the_flow_model_and_is_refused_on_a_u_net(tiny_flow, tiny_sd):
    assert sweeps.generate(tiny_flow, PROMPT, steps=2, scheduler="flow_euler").size == (16, 16)
    before = tiny_sd.scheduler
    with pytest.raises(ValueError, match=r"schedulers must be .* got 'flow_euler' .*flow-matching sampler"):
        sweeps.grid(tiny_sd, PROMPT, steps=2, schedulers=["ddim", "flow_euler"])
    _unchanged(tiny_sd, before)


def count_calls(pipe):
    return generation.count_denoiser_calls(pipe)


# --------------------------------------------------------------------------------------------- issue 27: memory
def test_the_memory_refusal_says_the_limit_it_applies(tiny_sd, monkeypatch):
    import re

    free = 3 * 2**20
    monkeypatch.setattr(validation, "available_memory", lambda device="cpu": free)
    before = tiny_sd.scheduler
    with pytest.raises(ValueError) as err:
        trace(tiny_sd, PROMPT, steps=2, height=96, width=96)
    msg = str(err.value)
    assert "limit of 80% of the memory free on cpu" in msg
    need, limit, shown_free = (float(x) for x in re.findall(r"([\d.]+) MiB", msg))
    assert shown_free == pytest.approx(free / 2**20, abs=0.05) and limit == pytest.approx(0.8 * shown_free, abs=0.05)
    assert need > limit  # the refusal is the rule it states
    _unchanged(tiny_sd, before)
    # just under the limit the same run is allowed
    monkeypatch.setattr(validation, "available_memory", lambda device="cpu": 10 * need * 2**20)
    with pytest.warns(UserWarning, match="times the pixels of this model's own"):  # 96 x 96 is 36 x its 16 x 16
        assert trace(tiny_sd, PROMPT, steps=1, height=96, width=96, attention=False).image.size == (96, 96)


# --------------------------------------------------------------------------------------------- issue 27: the checks
@pytest.mark.parametrize("call, words", [
    (lambda: validation.check_seeds("12"), "seeds must be an integer or a list of integers"),
    (lambda: validation.check_seeds([0, -1]), r"seeds\[1\] must be from 0 to 2\*\*64-1"),
    (lambda: validation.check_seeds([True]), r"seeds\[0\] must be an integer"),
    (lambda: validation.check_seeds([1.5]), r"seeds\[0\] must be an integer"),
    (lambda: validation.check_seeds(None), "seeds must be an integer or a list"),
    (lambda: validation.check_seeds([]), "seeds must hold at least one seed"),
    (lambda: validation.check_seeds({0, 1}), "seeds must be an integer or a list"),
    (lambda: validation.check_prompts(["a", 3]), r"prompts\[1\] must be a string"),
    (lambda: validation.check_prompts(["ok", "  "]), r"prompts\[1\] must be a non-empty string"),
    (lambda: validation.check_prompts("one", single=False), r"prompts must be a list .*write \['one'\]"),
    (lambda: validation.check_prompts(None), "prompts must be a prompt string or a list"),
    (lambda: validation.check_number(float("nan"), "scale", 0, 10), "scale must be a finite number >= 0 and <= 10"),
    (lambda: validation.check_number("1", "scale", 0, 10), "scale must be a finite number"),
    (lambda: validation.check_number(0, "scales", 0, 100, low_open=True), "scales must be a finite number > 0"),
    (lambda: validation.check_int(2.0, "steps", 1, 10), "steps must be an integer >= 1 and <= 10, got float"),
    (lambda: validation.check_device("tpu"), "device must be 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    (lambda: validation.check_device(0), "device must be"),
    (lambda: validation.check_folder("no/such/folder-xyz", "text_encoder"), "text_encoder must be a local folder"),
    (lambda: validation.check_folder(None, "path"), "path must be a local folder"),
])
def test_the_shared_checks_name_the_parameter_and_the_range(call, words):
    with pytest.raises((ValueError, FileNotFoundError), match=words):
        call()


def test_the_shared_checks_accept_what_they_promise():
    assert validation.check_seeds(np.array([3, 4])) == [3, 4] and validation.check_seeds(np.int64(7)) == [7]
    assert validation.check_seeds(range(2)) == [0, 1]
    assert validation.check_prompts("a red circle") == ["a red circle"]  # one string is one prompt, not letters
    assert validation.check_numbers(np.float32(2.5), "x") == [2.5]
    assert validation.check_device("cpu") == "cpu" and validation.check_device(torch.device("cpu")) == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused_by_name():
    with pytest.raises(ValueError, match=r"device='cuda' needs a CUDA GPU"):
        validation.check_device("cuda")


def test_interpolation_on_a_flow_model_names_the_pipeline_as_a_value_error(tiny_flow):
    for call in (lambda: sweeps.interpolate_seeds(tiny_flow, PROMPT, 0, 1, frames=2, steps=2),
                 lambda: sweeps.interpolate_prompts(tiny_flow, PROMPT, "a blue square", frames=2, steps=2)):
        with generation.count_denoiser_calls(tiny_flow) as count:
            for kind in (ValueError, NotImplementedError):  # catchable either way
                with pytest.raises(kind, match="pipe must be a Stable Diffusion or SDXL pipeline .* got "
                                               "StableDiffusion3Pipeline"):
                    call()
        assert count.calls == 0


def test_an_unknown_word_is_answered_with_the_nearest_known_ones(shipped_pipe):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validation.check_vocabulary(shipped_pipe, ["a red circel left of a bleu square"])
        validation.check_vocabulary(shipped_pipe, ["a cunning fox with amber eyes"])
    typo, nothing = _messages(caught, "cannot read")
    assert "'circel': nearest known circle" in typo and "'bleu': nearest known blue" in typo
    assert "names nothing" not in typo
    assert "'cunning', 'fox', 'amber', 'eyes'" in nothing and "names nothing this model knows" in nothing
