"""The shipped model draws what it is asked for: fixed seeds, judged by `explainer.judge`."""

import numpy as np
import pytest
import torch

import explainer as ex
from explainer.judge import judge_against
from explainer.models import SHIPPED_MODEL

pytestmark = pytest.mark.skipif(not (SHIPPED_MODEL / "model_index.json").exists(), reason="shipped model absent")

SINGLE = [
    "a large red circle on the left",
    "a large blue square on the right",
    "a large yellow triangle at the top",
    "a large green circle at the bottom",
    "a large white square in the center",
    "a large orange triangle on the left",
    "a large purple circle on the right",
    "a large blue triangle at the bottom",
]


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return ex.load_pipeline()


def test_fixed_seeds_draw_the_prompt(pipe):
    images = pipe(SINGLE, num_inference_steps=25, guidance_scale=7.5,
                  generator=[torch.Generator().manual_seed(i) for i in range(len(SINGLE))]).images
    scores = [judge_against(im, p) for im, p in zip(images, SINGLE, strict=True)]
    for key in ("color", "position", "size"):
        assert np.mean([s[key] for s in scores]) >= 7 / 8, (key, scores)
    assert np.mean([s["shape"] for s in scores]) >= 5 / 8, scores


def test_two_objects_and_relation(pipe):
    prompts = ["a red circle left of a blue square", "a yellow square above a green circle",
               "a white circle right of an orange square", "a blue circle below a red square"]
    images = pipe(prompts, num_inference_steps=25, guidance_scale=7.5,
                  generator=[torch.Generator().manual_seed(i) for i in range(len(prompts))]).images
    scores = [judge_against(im, p) for im, p in zip(images, prompts, strict=True)]
    assert sum(s["color"] for s in scores) >= 3, scores  # both colours drawn
    assert sum(bool(s["relation"]) for s in scores) >= 2, scores

