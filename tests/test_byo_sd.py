"""Bring your own Stable Diffusion (issue 12): pipelines laid out like the real SD 1.x / 2.x / XL folders (CLIP BPE
tokenizers, the schedulers those folders ship), saved to a folder and loaded with `ex.load_pipeline(path)` as a user
would; prompt words that the tokenizer splits into several pieces; the scheduler the user set is the one traced."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explainer as ex
from explainer import testing, words
from explainer.words import Token

PROMPT = "a red fox sitting in autumn leaves"


def pixels(img) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def plain(pipe, prompt, seed, steps, cfg=7.5, **kw):
    return pipe(prompt, num_inference_steps=steps, guidance_scale=cfg, generator=torch.Generator().manual_seed(seed),
                **kw).images[0]


@pytest.fixture(scope="module")
def sd1_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("byo") / "sd1"
    testing.build_sd1("pndm").save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def sd1(sd1_folder):
    return ex.load_pipeline(sd1_folder)


# --------------------------------------------------------------------------------------------- the folder
def test_saved_folder_loads_like_a_real_sd_folder(sd1_folder, sd1):
    from transformers import CLIPTokenizer

    assert (sd1_folder / "model_index.json").exists()
    assert not list(sd1_folder.rglob("*.bin")) and list(sd1_folder.rglob("*.safetensors"))
    assert isinstance(sd1.tokenizer, CLIPTokenizer)
    assert type(sd1.scheduler).__name__ == "PNDMScheduler"
    assert sd1.vae_scale_factor == 8
    pieces = sd1.tokenizer.convert_ids_to_tokens(sd1.tokenizer("autumn sitting fox")["input_ids"])
    assert pieces == ["<|startoftext|>", "aut", "umn</w>", "sit", "ting</w>", "fox</w>", "<|endoftext|>"]


# --------------------------------------------------------------------------------------------- words
def test_words_span_their_bpe_pieces(sd1):
    tr = ex.trace(sd1, "A red fox, sitting in Autumn leaves", seed=0, steps=2)
    ws = tr.words
    assert [str(w) for w in ws] == ["A", "red", "fox", ",", "sitting", "in", "Autumn", "leaves"]
    autumn = ws[6]
    assert autumn.pieces == ("aut", "umn</w>") and autumn.positions == (8, 9)
    assert [tr.tokens[p].raw for p in autumn.positions] == ["aut", "umn</w>"]
    assert ws[3].punctuation and not ws[2].punctuation
    # the map of a split word is the sum of its pieces' maps; case does not matter
    torch.testing.assert_close(tr.attention("autumn"), tr.attention(8) + tr.attention(9))
    assert torch.equal(tr.attention("AUTUMN"), tr.attention("autumn"))
    assert torch.equal(tr.attention("fox"), tr.attention(3)) and torch.equal(tr.attention("fox</w>"),
                                                                            tr.attention(3))
    assert tr.lookup("autumn").note == "2 pieces summed: aut + umn"
    # a token position and a Token still work
    assert torch.equal(tr.attention(tr.tokens[3]), tr.attention(3))
    # labels carry no BPE markers
    assert str(tr.tokens[3]) == "fox" and tr.tokens[3].raw == "fox</w>"


@pytest.mark.parametrize("query", ["redcircle", "ared", "aut", "foxes", "zebra", "umn"])
def test_only_whole_words_match(sd1, query):
    tr = ex.trace(sd1, "a red circle and a fox in autumn", seed=0, steps=1, attention=True)
    with pytest.raises(ValueError, match=r"not in the prompt; its words are \['a', 'red', 'circle', 'and', 'a', "
                                         r"'fox', 'in', 'autumn'\]"):
        tr.attention(query)


def test_repeated_word_and_phrase(sd1):
    tr = ex.trace(sd1, "a red fox and a red leaf", seed=0, steps=1)
    red = tr.lookup("Red")
    assert red.positions == (2, 6) and red.note.startswith("2 occurrences summed")
    torch.testing.assert_close(tr.attention("red"), tr.attention(2) + tr.attention(6))
    torch.testing.assert_close(tr.attention("red fox"), tr.attention(2) + tr.attention(3))


def test_words_survive_save_and_load(sd1, tmp_path):
    tr = ex.trace(sd1, PROMPT, seed=1, steps=2)
    back = ex.Trace.load(tr.save(tmp_path / "t.safetensors"))
    assert [(str(w), w.positions) for w in back.words] == [(str(w), w.positions) for w in tr.words]
    assert torch.equal(back.attention("autumn"), tr.attention("autumn"))


def test_marker_fallback_without_offsets():
    """Old traces (no character offsets): pieces are grouped by their markers, for each tokenizer convention."""
    def toks(raws):
        out = [Token("<s>", 0, 0, "<s>", True, False)]
        out += [Token(words.clean_piece(r), i + 1, i + 1, r, False, False) for i, r in enumerate(raws)]
        return out + [Token("<e>", len(raws) + 1, 0, "<e>", True, False)]

    bpe = words.prompt_words("a fox in autumn", toks(["a</w>", "fox</w>", "in</w>", "aut", "umn</w>"]))
    assert [(str(w), w.positions) for w in bpe] == [("a", (1,)), ("fox", (2,)), ("in", (3,)), ("autumn", (4, 5))]
    spm = words.prompt_words("a fox in autumn", toks(["\u2581a", "\u2581fox", "\u2581in", "\u2581aut", "umn"]))
    assert [(str(w), w.positions) for w in spm] == [("a", (1,)), ("fox", (2,)), ("in", (3,)), ("autumn", (4, 5))]
    wl = words.prompt_words("a red circle", toks(["a", "red", "circle"]))
    assert [(str(w), w.positions) for w in wl] == [("a", (1,)), ("red", (2,)), ("circle", (3,))]


def test_sentencepiece_t5_pieces():
    """T5's SentencePiece pieces ("▁" alone, "▁lea" + "ves") map to the words they spell."""
    from transformers import T5Tokenizer

    from explainer.words import tokenize

    pieces = ["<pad>", "</s>", "<unk>", "\u2581a", "\u2581red", "\u2581fox", "\u2581", "A", "\u2581lea", "ves",
              "\u2581in", "\u2581autumn"]
    tok = T5Tokenizer(vocab=[(p, 0.0 if i < 3 else -float(i)) for i, p in enumerate(pieces)], extra_ids=0,
                      model_max_length=12)
    tokens, _ = tokenize(tok, "A red fox in autumn leaves")
    ws = words.prompt_words("A red fox in autumn leaves", tokens)
    assert [str(w) for w in ws] == ["A", "red", "fox", "in", "autumn", "leaves"]
    assert [tokens[p].raw for p in ws[0].positions] == ["\u2581", "A"]
    assert [tokens[p].raw for p in ws[5].positions] == ["\u2581lea", "ves"]


# --------------------------------------------------------------------------------------------- figures / widgets
def test_plots_take_words_and_say_what_was_summed(sd1):
    from explainer import plots

    tr = ex.trace(sd1, PROMPT, seed=0, steps=2)
    fig = plots.plot_attention(tr, tokens=["AUTUMN", "fox"])
    axes = [ax for ax in fig.axes if ax.images]
    np.testing.assert_array_equal(axes[0].images[1].get_array(), tr.attention("autumn").numpy())
    assert "autumn" in axes[0].get_title() and "2 pieces summed: aut + umn" in axes[0].get_title()
    titles = [ax.get_title() for ax in plots.plot_attention(tr).axes if ax.images]
    assert len(titles) == len(PROMPT.split()) and not any("</w>" in t for t in titles)
    with pytest.raises(ValueError, match="its words are"):
        plots.plot_attention(tr, tokens=["redfox"])


def test_widget_word_menu_shows_words(sd1):
    wd = pytest.importorskip("explainer.widgets")
    tr = ex.trace(sd1, PROMPT, seed=0, steps=2)
    ae = wd.attention_explorer(tr, token="Autumn")
    labels = [k for k, _ in ae.token.options]
    assert labels == PROMPT.split() and not any("</w>" in k for k in labels)
    assert ae.token.label == "autumn" and "2 pieces summed" in ae.caption.value
    bad = wd.attention_explorer(tr, token="autumnal")
    assert "its words are" in bad.message.value


# --------------------------------------------------------------------------------------------- the user's scheduler
@pytest.mark.parametrize("name", ["euler", "pndm", "ddim"])
def test_the_users_scheduler_is_traced(sd1, name):
    """The user sets a scheduler on the pipeline; ex.trace(pipe, prompt, seed=3) gives pipe(...)'s image bit for bit
    and records that scheduler."""
    import diffusers

    cls = testing.SCHEDULERS[name][0]
    saved = sd1.scheduler
    try:
        sd1.scheduler = getattr(diffusers, cls).from_config(saved.config, **testing.SCHEDULERS[name][1])
        ref = plain(sd1, PROMPT, 3, 4)
        tr = ex.trace(sd1, PROMPT, seed=3, steps=4)
        assert np.array_equal(pixels(tr.image), pixels(ref)), f"traced image differs from pipe(...) under {cls}"
        assert tr.settings["scheduler_class"] == cls
        assert tr.settings["scheduler_config"]["steps_offset"] == 1
        assert sd1.scheduler.__class__.__name__ == cls  # the pipeline keeps the user's scheduler
    finally:
        sd1.scheduler = saved


def test_a_short_name_still_selects_a_scheduler(sd1):
    tr = ex.trace(sd1, PROMPT, seed=3, steps=3, scheduler="euler")
    assert tr.settings["scheduler_class"] == "EulerDiscreteScheduler" and tr.settings["scheduler"] == "euler"
    assert type(sd1.scheduler).__name__ == "PNDMScheduler"


def test_grid_and_trace_batch_default_to_the_users_scheduler(sd1):
    from diffusers import EulerDiscreteScheduler

    saved = sd1.scheduler
    try:
        sd1.scheduler = EulerDiscreteScheduler.from_config(saved.config)
        ref = plain(sd1, PROMPT, 2, 3)
        g = ex.grid(sd1, PROMPT, seeds=[2], steps=3)
        assert np.array_equal(pixels(g.images[0][0]), pixels(ref))
        trs = ex.trace_batch(sd1, [PROMPT], seeds=[2], steps=3)
        assert trs[0].settings["scheduler_class"] == "EulerDiscreteScheduler"
    finally:
        sd1.scheduler = saved


# --------------------------------------------------------------------------------------------- SD 2.x and SDXL
def test_sd2_v_prediction(tmp_path):
    testing.build_sd2_v().save_pretrained(tmp_path / "sd2", safe_serialization=True)
    pipe = ex.load_pipeline(tmp_path / "sd2")
    assert pipe.scheduler.config.prediction_type == "v_prediction" and pipe.tokenizer.pad_token == "!"
    ref = plain(pipe, PROMPT, 5, 3)
    tr = ex.trace(pipe, PROMPT, seed=5, steps=3)
    assert np.array_equal(pixels(tr.image), pixels(ref))
    assert tr.settings["prediction_type"] == "v_prediction" and tr.image.size == (96, 96)
    assert tr.words[5] == "autumn" and tr.words[5].positions == (7, 8)
    # padding "!" is padding, not a word of the prompt
    assert all(t.padding for t in tr.tokens if t.raw == "!</w>" or str(t) == "!")


def test_sdxl_two_tokenizers(tmp_path):
    testing.build_sdxl().save_pretrained(tmp_path / "sdxl", safe_serialization=True)
    pipe = ex.load_pipeline(tmp_path / "sdxl")
    assert pipe.tokenizer.pad_token != pipe.tokenizer_2.pad_token
    assert pipe.vae.config.force_upcast
    ref = plain(pipe, PROMPT, 4, 3)
    tr = ex.trace(pipe, PROMPT, seed=4, steps=3)
    assert np.array_equal(pixels(tr.image), pixels(ref))
    assert tr.settings["scheduler_class"] == "EulerDiscreteScheduler"
    autumn = tr.words[5]
    assert autumn == "autumn" and autumn.positions == (7, 8) and autumn.pieces == ("aut", "umn</w>")
    torch.testing.assert_close(tr.attention("autumn"), tr.attention(7) + tr.attention(8))
    assert set(tr.text_embeddings) == {"text_encoder", "text_encoder_2"}


# --------------------------------------------------------------------------------------------- views on any model
def test_classroom_takes_a_model_path(sd1_folder, monkeypatch, capsys):
    from explainer import classroom

    assert classroom.check_model(str(sd1_folder)) == str(sd1_folder.resolve())
    assert classroom.check_model("shapes-sd") == "shapes-sd"
    with pytest.raises(ValueError, match="must be a folder holding a diffusers pipeline"):
        classroom.check_model(str(sd1_folder / "unet"))
    with pytest.raises(SystemExit) as e:
        classroom.main(["--model", "/no/such/folder", "--no-browser"])
    assert e.value.code == 2 and "--model" in capsys.readouterr().err


def test_playground_model_menu_switches_and_remembers(sd1):
    wd = pytest.importorskip("explainer.widgets")
    from explainer.models import available_models

    pg = wd.playground(sd1, steps=2)
    keys = [v for _, v in pg.model.options]
    assert keys[:len(available_models())] == available_models() and pg.model.value == wd.model_key(sd1)
    assert pg.sampler.value is None and pg.sampler.options[0][0].startswith("model's own (PNDMScheduler")
    pg.run()
    assert pg.trace is not None and pg.trace.settings["scheduler_class"] == "PNDMScheduler", pg.message.value
    assert [k for k, _ in pg.word.options] == ["a (#1)", "red", "circle", "left", "of", "a (#6)", "blue", "square"]
    pg.model.value = "shapes-sd"  # the shipped model, loaded once for the session
    assert pg.pipe is not sd1 and wd.session_model() == "shapes-sd" and pg.trace is None
    assert wd.playground().pipe is pg.pipe  # a new playground in this session starts on the remembered model
    pg.model.value = wd.model_key(sd1)
    assert pg.pipe is sd1


def test_the_judge_hides_itself_on_another_model(sd1):
    wd = pytest.importorskip("explainer.widgets")
    from explainer.models import is_shapes_model

    tr = ex.trace(sd1, "a red circle left of a blue square", seed=0, steps=2)
    assert not is_shapes_model(sd1) and not is_shapes_model(tr)
    assert wd._judged_objects(tr) == []
    ae = wd.attention_explorer(tr, token="circle")
    assert "error" not in ae.message.value.lower()


def test_cli_report_on_a_users_model(sd1_folder, tmp_path):
    from explainer.__main__ import main

    out = tmp_path / "report"
    code = main(["explain", "a fox in autumn leaves", "--model", str(sd1_folder), "--out", str(out), "--steps", "2",
                 "--trajectories", "0", "--quiet"])
    assert code == 0
    page = (out / "index.html").read_text()
    assert "autumn leaves" in page and "pndm" in page  # the folder's own scheduler (PNDM) was traced


def test_fp16_sdxl_with_force_upcast_traces_and_decodes_as_the_pipeline_does():
    """An fp16 SDXL pipeline (what load_pipeline gives on CUDA): the traced image is the plain one, and the trace's
    own decode of the final latents (force_upcast: the VAE decodes in fp32) gives the pipeline's image back, with
    the VAE left in fp16 afterwards."""
    pipe = testing.build_sdxl().to(torch.float16)
    assert pipe.vae.config.force_upcast and pipe.vae.dtype == torch.float16
    ref = plain(pipe, PROMPT, 4, 3)
    tr = ex.trace(pipe, PROMPT, seed=4, steps=3)
    assert np.array_equal(pixels(tr.image), pixels(ref))
    assert tr.settings["dtype"] == "torch.float16"
    assert np.array_equal(pixels(tr.decode(2, what="latents_next")), pixels(tr.image))
    assert pipe.vae.dtype == torch.float16
