"""scenes-sd, the model a user sees first: it loads by name, traces bit for bit, keeps the shapes world's parts away,
reads bad words back with their nearest known ones, and the playground and the classroom open on it with the fox.

Every test skips when scenes-sd is not in this install; with the trained model they check the same outcomes (none of
them depends on what the pictures look like). Its speed is measured by `benchmarks/load_time.py --model scenes-sd`."""

import subprocess
import warnings

import numpy as np
import pytest
import torch

import explainer as ex
from explainer import models

FOX = "a red fox sitting in autumn leaves"
SHAPES_PROMPT = "a red circle left of a blue square"


@pytest.fixture
def fresh_session(monkeypatch):
    """A session in which nothing has been chosen yet (no menu choice, no $EXPLAINER_MODEL, no classroom worker)."""
    if "scenes-sd" not in models.available_models():
        pytest.skip("scenes-sd is not in this install")
    monkeypatch.delenv("EXPLAINER_MODEL", raising=False)
    monkeypatch.delenv("EXPLAINER_WORKER", raising=False)
    monkeypatch.setattr(models, "_SESSION", {})


def test_scenes_sd_loads_by_name_offline_and_draws_a_64px_picture(scenes_pipe, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert type(scenes_pipe).__name__ == "StableDiffusionPipeline"
    assert scenes_pipe.unet.dtype == torch.float32 and scenes_pipe.device.type == "cpu"
    assert type(scenes_pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    image = scenes_pipe(FOX, num_inference_steps=20, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert models.model_key(scenes_pipe) == "scenes-sd" and "scenes-sd" in models.model_choices()


def test_the_shapes_worlds_parts_stay_off_scenes_sd(scenes_pipe, shipped_pipe):
    """The shapes judge's readings, challenges and ControlNets belong to the shapes models only."""
    assert not models.is_shapes_model(scenes_pipe) and models.control_conditions(scenes_pipe) == []
    tr = ex.trace(scenes_pipe, FOX, seed=0, steps=2)
    assert not models.is_shapes_model(tr)
    assert models.is_shapes_model(shipped_pipe) and models.is_shapes_model(ex.trace(shipped_pipe, "a circle", steps=1))


def test_a_traced_scenes_run_is_the_plain_run_bit_for_bit(scenes_pipe):
    tr = ex.trace(scenes_pipe, FOX, seed=3, steps=20, cfg=7.5)
    plain = scenes_pipe(FOX, num_inference_steps=20, guidance_scale=7.5,
                        generator=torch.Generator().manual_seed(3)).images[0]
    assert np.array_equal(np.asarray(tr.image), np.asarray(plain))
    assert tr.settings["model_id"] == "explainer/scenes-sd" and tr.settings["scheduler_class"] == type(
        scenes_pipe.scheduler).__name__
    assert list(tr.words) == FOX.split() and tr.attention("fox").ndim == 2


def test_unknown_words_in_a_scenes_prompt_name_the_nearest_known_ones(scenes_pipe):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = ex.trace(scenes_pipe, "a red foxx sitting in autum leaves", steps=1)
    msgs = [str(w.message) for w in caught if "cannot read" in str(w.message)]
    assert len(msgs) == 1 and msgs[0].startswith("prompt: the model cannot read 'foxx', 'autum':"), msgs
    assert "'foxx': nearest known fox" in msgs[0] and "'autum': nearest known autumn" in msgs[0]
    assert tr.image is not None  # the run goes on
    with warnings.catch_warnings(record=True) as caught:  # the article's prompts are all in its vocabulary
        warnings.simplefilter("always")
        for prompt in (FOX, "a forest at dusk", "a cat left of a tree under the sun"):
            ex.trace(scenes_pipe, prompt, steps=1)
    assert not [w for w in caught if "cannot read" in str(w.message)]


def test_the_playground_opens_on_scenes_sd_and_the_fox(fresh_session):
    from explainer import widgets as wd

    pg = wd.playground(steps=3)
    assert pg.model.value == "scenes-sd" and pg.prompt.value == FOX
    assert {"scenes-sd", "shapes-sd"} <= {v for _, v in pg.model.options}
    assert pg.control_panel.layout.display == "none"  # no ControlNet offered on scenes-sd
    pg.run()
    assert pg.message.value == "" and pg.trace.image.size == (64, 64)
    # the menu: shapes-sd puts the shapes prompt in place of the fox, and back
    pg.model.value = "shapes-sd"
    assert pg.message.value == "" and models.model_key(pg.pipe) == "shapes-sd" and pg.prompt.value == SHAPES_PROMPT
    pg.model.value = "scenes-sd"
    assert pg.prompt.value == FOX
    # a prompt the user typed is theirs: kept across a switch
    pg.prompt.value = "an owl on a branch"
    pg.model.value = "shapes-sd"
    assert pg.prompt.value == "an owl on a branch"
    # the next playground of this session opens on the model chosen last, with its own prompt
    again = wd.playground()
    assert again.model.value == "shapes-sd" and again.prompt.value == SHAPES_PROMPT


def test_the_grid_explorer_opens_on_the_fox_too(fresh_session):
    from explainer import widgets as wd

    g = wd.grid_explorer()
    assert models.model_key(g.pipe) == "scenes-sd" and g.prompt.value == FOX


def test_the_classroom_serves_scenes_sd_by_default(fresh_session, monkeypatch, capsys):
    """`python -m explainer.classroom` with no --model: the shared worker holds scenes-sd as its default and the
    student pages are told so; `--model shapes-sd` still serves the shapes model. (Voila itself is replaced by a
    stand-in that exits at once; test_browser.py drives the real page.)"""
    from explainer import classroom

    started = []

    class Voila:
        returncode = 0

        def __init__(self, argv, env):
            started.append(env)

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Voila)
    assert classroom.main(["--no-browser", "--port", "8999"]) == 0
    assert started[-1]["EXPLAINER_MODEL"] == "scenes-sd"
    assert "with scenes-sd" in capsys.readouterr().out
    assert classroom.main(["--no-browser", "--port", "8999", "--model", "shapes-sd"]) == 0
    assert started[-1]["EXPLAINER_MODEL"] == "shapes-sd"
    assert "default: scenes-sd" in " ".join(classroom.build_parser().format_help().split())


def test_without_scenes_sd_the_playground_opens_on_the_shapes_model(monkeypatch, tmp_path):
    """An install without scenes-sd (its weights not there yet) opens where it used to: shapes-sd, shapes prompt."""
    from explainer import shipped
    from explainer import widgets as wd

    if "shapes-sd" not in models.available_models():
        pytest.skip("the shipped shapes model is not there yet")
    monkeypatch.setitem(shipped.SHIPPED_MODELS, "scenes-sd", tmp_path / "absent")
    monkeypatch.delenv("EXPLAINER_MODEL", raising=False)
    monkeypatch.delenv("EXPLAINER_WORKER", raising=False)
    monkeypatch.setattr(models, "_SESSION", {})
    pg = wd.playground(steps=2)
    assert pg.model.value == "shapes-sd" and pg.prompt.value == SHAPES_PROMPT
    assert "scenes-sd" not in {v for _, v in pg.model.options}
    with pytest.raises(FileNotFoundError, match=r"scenes-sd is not in this install .* --world scenes --stage all"):
        ex.load_pipeline("scenes-sd")
