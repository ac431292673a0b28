"""Widgets, headless: set values, call the handlers, check that what is displayed changed accordingly."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import ipywidgets as W
import numpy as np
import pytest
from PIL import Image

from explainer import widgets as wd
from explainer.trace import trace

PROMPT = "a red circle left of a blue square"
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "playground.ipynb"


@pytest.fixture(scope="module")
def tr(tiny_sd):
    return trace(tiny_sd, PROMPT, seed=1, steps=4, cfg=6.0)


def png(value) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(value))).convert("RGB"))


def classes(root: W.Widget) -> set[str]:
    out, todo = set(), [root]
    while todo:
        w = todo.pop()
        out |= set(getattr(w, "_dom_classes", ()))
        todo.extend(getattr(w, "children", ()))
    return out


def documented_classes(section: str) -> set[str]:
    """The class names the module docstring lists for one widget (its "  <section> (" paragraph)."""
    doc = wd.__doc__
    start = doc.index(f"\n  {section} (")
    nxt = re.search(r"\n  [a-z]", doc[start + 1:])
    found = set(re.findall(r"explainer-[a-z0-9-]+", doc[start:start + 1 + nxt.start() if nxt else len(doc)]))
    assert len(found) >= 5, (section, found)
    return found


def html_text(value: str) -> str:
    import html

    return html.unescape(re.sub("<[^>]+>", "", value))


def error_text(w) -> str:
    return html_text(w.message.value)


def test_step_explorer_reacts(tr):
    se = wd.step_explorer(tr)
    assert documented_classes("step explorer") <= classes(se) | {"explainer-step-explorer"}
    before = {k: bytes(v.value) for k, v in se.images.items()}
    img = png(before["x0"])
    assert img.shape[0] >= 128 and img.shape[0] % 16 == 0  # upscaled with whole factors (nearest)
    se.step.value = 3
    after = {k: bytes(v.value) for k, v in se.images.items()}
    for k in ("xt", "noise", "cfg-delta", "x0", "attention"):
        assert before[k] != after[k], f"{k} did not change with the step"
    assert se.info.value.startswith("step 4 of 4") and se.message.value == ""
    att = after["attention"]
    se.token.value = dict(se.token.options)["square"]
    assert bytes(se.images["attention"].value) != att and "square" in se.captions["attention"].value
    se.level.value = tr.levels[-1]
    assert se.message.value == ""


def test_step_explorer_bad_token_is_a_message(tr):
    se = wd.step_explorer(tr, token="giraffe")
    assert "giraffe" in error_text(se) and "Traceback" not in se.message.value
    se.step.value = 2  # still works
    assert se.images["x0"].value


def test_attention_explorer_reacts(tr):
    ae = wd.attention_explorer(tr, token="circle")
    # explainer-map-score is a span inside the caption, written only when the judge finds the word's object (the tiny
    # random model draws none); test_attention_scores checks it on the shipped model.
    documented = documented_classes("attention explorer") - {"explainer-map-score"}
    assert documented <= classes(ae) | {"explainer-attention-explorer"}
    mean = bytes(ae.overlay.value)
    assert ae.step.disabled
    ae.mode.value = "one step"
    assert not ae.step.disabled and bytes(ae.overlay.value) != mean
    one = bytes(ae.overlay.value)
    ae.step.value = 0
    assert bytes(ae.overlay.value) != one
    ae.token.value = dict(ae.token.options)["square"]
    assert "square" in ae.caption.value
    # the displayed map is the trace's: its brightest pixel sits where tr.attention peaks
    amap = tr.attention("square", step=0).float().numpy()
    heat = png(ae.heat.value).astype(int).sum(-1)
    k = heat.shape[0] // amap.shape[0]
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    assert heat[y * k, x * k] == heat.max()


def test_playground_generate_step_word_and_bad_input(tiny_sd):
    pg = wd.playground(tiny_sd, steps=4, cfg=5.0)
    assert documented_classes("playground") <= classes(pg) | {"explainer-playground"}
    assert pg.image.value == b"" and pg.results.layout.display == "none"
    pg.run()
    assert pg.message.value == "" and pg.status.value.startswith("done")
    assert pg.progress.value == pg.progress.max == 4
    first = bytes(pg.image.value)
    assert png(first).shape[0] >= 128 and pg.cfg_curve.value and pg.results.layout.display is None
    shown = bytes(pg.step_image.value)
    pg.step.value = 0
    assert bytes(pg.step_image.value) != shown
    att = bytes(pg.attention.value)
    pg.word.value = dict(pg.word.options)["square"]
    assert bytes(pg.attention.value) != att

    pg.steps.value = 0
    pg.run()
    assert "steps" in error_text(pg) and "Traceback" not in pg.message.value
    assert bytes(pg.image.value) == first and not pg.generate.disabled  # the last good result stays
    pg.steps.value = 3
    pg.prompt.value = "   "
    pg.run()
    assert "prompt is empty" in error_text(pg)

    pg.prompt.value = "a blue star"
    pg.cfg.value = 1.0
    pg.run()
    assert pg.message.value == "" and bytes(pg.image.value) != first
    assert "no unconditional pass" in pg.cfg_note.value and pg.cfg_curve.layout.display == "none"
    assert pg.step.max == 2


# --------------------------------------------------------------------------------------------- warnings on the page
def test_playground_shows_the_runs_warnings_as_a_note(tiny_sd):
    pg = wd.playground(tiny_sd, steps=2, cfg=5.0)
    pg.prompt.value = " ".join(["red circle"] * 800)  # far past the tiny encoder's 16 tokens (8,000 characters)
    pg.run()
    note = pg.message.value
    assert "explainer-warning" in note and "explainer-error" not in note  # a note, not an error
    assert "longer than" in error_text(pg) and "dropped" in error_text(pg)
    assert pg.trace is not None and pg.image.value and pg.status.value.startswith("done")  # the run itself worked
    assert len(error_text(pg)) < 600 and "more characters" in error_text(pg)  # the dropped words are not all listed
    pg.prompt.value = PROMPT
    pg.run()
    assert pg.message.value == ""  # the next clean run clears the note


def test_grid_explorer_shows_the_runs_warnings_as_a_note(tiny_sd, monkeypatch):
    import warnings

    from explainer import sweeps

    real = sweeps.grid

    def warning_grid(*args, **kwargs):
        warnings.warn("a note from the toolkit", UserWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(sweeps, "grid", warning_grid)
    ge = wd.grid_explorer(tiny_sd)
    ge.steps.value, ge.rows_values.value, ge.cols_values.value = 2, "0", "2"
    ge.run()
    assert "explainer-warning" in ge.message.value and "a note from the toolkit" in error_text(ge)
    assert ge.result is not None and ge.status.value


def test_warnings_collected_for_the_page_are_the_toolkits_own():
    import warnings

    notes: list[str] = []
    with pytest.warns(UserWarning, match="from a library"), wd._collecting_warnings(notes):
        warnings.warn("the toolkit says " + "x" * 1000, UserWarning, stacklevel=1)  # attributed to this file: shown
        warnings.warn("the toolkit says " + "x" * 1000, UserWarning, stacklevel=1)  # the same note once
        warnings.warn_explicit("from a library", UserWarning, "/venv/lib/site-packages/torch/nn.py", 1)
    assert len(notes) == 1 and len(notes[0]) < 400 and notes[0].endswith("more characters)")


# --------------------------------------------------------------------------------------------- control map
@pytest.fixture(autouse=True)
def _session_choices():
    """The playground remembers the model and control choices for the session: give every test (and the test files
    after this one) the choices it found."""
    from explainer import models
    from explainer.widgets import playground_ui as pg_module

    saved_model, saved_control = models._SESSION.get("model"), dict(pg_module._CHOICES)
    yield
    models._SESSION.pop("model", None)
    if saved_model is not None:
        models._SESSION["model"] = saved_model
    pg_module._CHOICES.clear()
    pg_module._CHOICES.update(saved_control)


@pytest.fixture(scope="module")
def edges_pipe():
    from explainer.models import CONTROLNETS, load_pipeline

    if not (CONTROLNETS["edges"] / "config.json").exists():
        pytest.skip("the shipped edges ControlNet is not there yet")
    return load_pipeline(controlnet="edges")


def test_control_parts_only_for_the_shipped_shapes_model():
    from types import SimpleNamespace as NS

    from explainer.models import CONTROLNETS

    present = [n for n, p in CONTROLNETS.items() if (p / "config.json").exists()]
    assert wd.control_conditions(NS(explainer_model_id="explainer/shapes-sd")) == present
    assert wd.control_conditions(NS(explainer_model_id="explainer/shapes-sd+controlnet-edges")) == present
    assert wd.control_conditions(NS(explainer_model_id="explainer/shapes-dit")) == []  # no U-Net to control
    assert wd.control_conditions(NS(explainer_model_id="/models/sd15")) == []
    assert wd.control_conditions(NS()) == []  # config-built pipelines (the tiny fixtures)


def test_playground_control_hidden_on_another_model(tiny_sd):
    pg = wd.playground(tiny_sd, steps=2, cfg=5.0, control="none")
    assert pg.control_panel.layout.display == "none"
    pg.control.value = "edges"  # hidden, but set from code: remembered, and ignored on this model
    pg.run()
    assert pg.message.value == "" and pg.trace is not None and "controlnet_conditioning_scale" not in pg.trace.settings
    assert pg.control_used_box.layout.display == "none"


def test_playground_control_map(shipped_pipe, edges_pipe):
    from explainer import shapes

    pg = wd.playground(shipped_pipe, prompt="a large red circle", steps=6, cfg=5.0, control="none")
    assert documented_classes("playground") <= classes(pg) | {"explainer-playground"}
    assert pg.control_panel.layout.display is None and pg.control_parts.layout.display == "none"
    assert [v for _, v in pg.control.options] == [None, "edges", "segmentation"]
    pg.run()
    plain = np.asarray(pg.trace.image)
    plain_png = bytes(pg.image.value)
    assert pg.control_used_box.layout.display == "none" and not pg.control_from_image.disabled

    pg.control.value = "edges"
    assert pg.control_parts.layout.display is None and pg.message.value == ""
    assert wd.playground(shipped_pipe).control.value == "edges"  # remembered for this session's next playground
    scene = shapes.sample_scene(wd.CONTROL_SCENE_SEED)
    edges = shapes.render_edges(scene)
    shown = png(pg.control_map.value)
    assert shown.shape == (128, 128, 3) and np.array_equal(shown[::4, ::4], np.asarray(edges))  # the exact map
    assert f"scene {wd.CONTROL_SCENE_SEED}" in pg.control_caption.value
    pg.run()
    assert pg.message.value == "" and bytes(pg.image.value) != plain_png  # the map changed the picture
    s = pg.trace.settings
    assert s["model_id"] == "explainer/shapes-sd+controlnet-edges" and s["controlnet_conditioning_scale"] == 1.0
    # beside the image: the map it was made with
    assert pg.control_used_box.layout.display is None and bytes(pg.control_used.value) == bytes(pg.control_map.value)
    assert "edges map, scale 1.00" in pg.control_used_caption.value
    # the image is what the shipped ControlNet pipeline gives for that map (loaded on its own: load_pipeline)
    ref = trace(edges_pipe, "a large red circle", seed=0, steps=6, cfg=5.0, control_image=edges, attention=False)
    assert np.array_equal(np.asarray(pg.trace.image), np.asarray(ref.image))
    with_map = bytes(pg.image.value)

    pg.control_scale.value = 0.0  # every residual is multiplied by 0: the plain U-Net, bit for bit
    pg.run()
    assert np.array_equal(np.asarray(pg.trace.image), plain)
    pg.control_scale.value = 1.0

    pg.control_next.click()  # another scene: another map, another picture
    assert pg.control_seed.value == wd.CONTROL_SCENE_SEED + 1
    assert bytes(pg.control_map.value) != bytes(pg.control_used.value)
    pg.run()
    assert bytes(pg.image.value) not in (with_map, plain_png)

    # the map of the last image: the judge's reading of it, drawn exactly
    judged, j = wd.scene_from_judge(pg.trace.image)
    pg.control_from_image.click()
    assert pg.message.value == "" and "as the judge reads it" in pg.control_caption.value
    assert judged is not None and j.describe() in html_text(pg.control_caption.value)  # it reads a red cross
    assert np.array_equal(png(pg.control_map.value)[::4, ::4], np.asarray(shapes.render_edges(judged)))

    pg.control.value = "segmentation"  # the same scene's other map, with its colour legend
    seg = png(pg.control_map.value)[::4, ::4]
    allowed = {shapes.SEGMENTATION_BACKGROUND, *shapes.SEGMENTATION_COLORS.values()}
    assert {tuple(c) for c in seg.reshape(-1, 3)} <= allowed and "circle red" in pg.control_caption.value
    pg.run()
    assert pg.message.value == "" and pg.trace.settings["model_id"].endswith("+controlnet-segmentation")
    assert wd.playground(shipped_pipe).control.value == "segmentation"  # remembered for this session

    pg.control.value = None
    pg.run()
    assert np.array_equal(np.asarray(pg.trace.image), plain) and pg.control_used_box.layout.display == "none"


def test_playground_opens_with_a_controlnet_pipelines_control(edges_pipe):
    pg = wd.playground(edges_pipe, prompt="a red circle", steps=4, cfg=5.0)
    assert pg.control.value == "edges" and pg.model.value == "shapes-sd" and not hasattr(pg.pipe, "controlnet")
    pg.run()
    assert pg.message.value == "" and pg.trace.settings["model_id"] == "explainer/shapes-sd+controlnet-edges"
    assert wd.control_pipeline(pg.pipe, "edges") is edges_pipe  # the pipeline given is the one used


def test_grid_explorer(tiny_sd):
    ge = wd.grid_explorer(tiny_sd)
    assert documented_classes("grid explorer") <= classes(ge) | {"explainer-grid-explorer"}
    ge.steps.value = 2
    ge.rows_values.value = "0, 1"
    ge.cols_values.value = "2, 6"
    ge.run()
    assert ge.message.value == "" and ge.result.shape == (2, 2) and png(ge.image.value).shape[1] > 400
    assert ge.progress.value == 4
    ge.cols_values.value = "2, lots"
    ge.run()
    assert "lots" in error_text(ge)
    ge.cols_axis.value = "seeds"
    ge.run()
    assert "two different" in error_text(ge)
    ge.cols_axis.value = "negative_prompts"
    ge.cols_values.value = "none | blue"
    ge.run()
    assert ge.message.value == "" and ge.result.col_values == [None, "blue"]


@pytest.fixture(scope="module")
def small_sweep(tiny_sd):
    from explainer.experiments import guidance

    return guidance.cfg_sweep(tiny_sd, prompts=[PROMPT, "a green star above a white cross"], seeds=[0, 1, 2],
                              scales=[1.0, 4.0], steps=2)


def test_cfg_explorer_shows_the_sweeps_own_images_and_numbers(small_sweep):
    from explainer.judge import judge_against

    sw = small_sweep
    ce = wd.cfg_explorer(sw, prompt="a green star above a white cross")
    assert documented_classes("cfg explorer") <= classes(ce) | {"explainer-cfg-explorer"}
    assert len(ce.images) == 3 and ce.scale.value == 1.0

    def shown(slot):
        a = png(ce.images[slot].value)
        k = a.shape[0] // sw.images[1.0][0].size[1]  # upscaled by a whole factor, nearest
        return a[::k, ::k]

    for scale in (1.0, 4.0):
        ce.scale.value = scale
        ims = sw.images[scale]
        for slot, k in enumerate((3, 4, 5)):  # the second prompt's three seeds, in sweep order
            np.testing.assert_array_equal(shown(slot), np.asarray(ims[k].convert("RGB")))
            right = judge_against(ims[k], sw.prompts[k])["all"]
            assert ("as asked" in ce.captions[slot].value) == bool(right)
            assert f"seed {sw.seeds[k]}" in ce.captions[slot].value
        # the row is the whole sweep's rate at this scale, recomputed from the images by the judge
        whole = np.mean([bool(judge_against(im, p)["all"]) for im, p in zip(ims, sw.prompts, strict=True)])
        assert f"CFG {scale:g}" in html_text(ce.row.value)
        assert f"whole prompt right {whole:.0%}" in html_text(ce.row.value)
    assert ce.message.value == ""
    ce.prompt.value = PROMPT
    np.testing.assert_array_equal(shown(0), np.asarray(sw.images[4.0][0].convert("RGB")))


def test_cfg_explorer_bad_arguments_are_named(small_sweep):
    with pytest.raises(ValueError, match=r"scale must be one of \[1(\.0)?, 4(\.0)?\]"):
        wd.cfg_explorer(small_sweep, scale=7.5)
    with pytest.raises(ValueError, match="prompt must be one of"):
        wd.cfg_explorer(small_sweep, prompt="a giraffe")


def test_parse_values():
    assert wd._parse_values("cfgs", "1, 3.5,7") == [1.0, 3.5, 7.0]
    assert wd._parse_values("schedulers", "ddim, none") == ["ddim", None]
    with pytest.raises(ValueError, match="whole number"):
        wd._parse_values("steps", "2.5")


def test_playground_notebook_is_clean():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert "playground(" in "".join("".join(c["source"]) for c in code)


@pytest.mark.parametrize("prompt", ["", "\u2603\u2603 \u2603"])
def test_attention_explorer_on_a_prompt_without_words_says_so(tiny_sd, prompt):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the toolkit's own warning about unknown words
        t = trace(tiny_sd, prompt, seed=0, steps=2, cfg=1.0)
    ae = wd.attention_explorer(t)
    assert "has no word the model read" in error_text(ae) and "TypeError" not in error_text(ae)
    assert bytes(ae.overlay.value) == b""


def test_playground_refuses_what_is_not_a_pipeline_at_once():
    from explainer.gan import load_gan

    with pytest.raises(ValueError, match=r"playground\(model='shapes-sd'\)"):
        wd.playground("shapes-sd")
    try:
        gan = load_gan()
    except (FileNotFoundError, ValueError):
        pytest.skip("the shipped GAN is not there")
    with pytest.raises(ValueError, match="diffusers text-to-image pipeline"):
        wd.playground(gan)
