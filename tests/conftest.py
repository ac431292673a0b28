"""Fixtures: config-built tiny Stable Diffusion / SDXL pipelines with random weights (no hub), and the shipped model.

Thin wrappers over `explainer.testing`, which builds them the way diffusers' own tests build theirs: the real classes
(UNet2DConditionModel, AutoencoderKL, CLIPTextModel[WithProjection]) from tiny configs, and tokenizers made locally
with `tokenizers` (word level, or Stable Diffusion's CLIP BPE format).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from explainer import testing

torch.set_num_threads(1)

SHIPPED = Path(__file__).resolve().parents[1] / "explainer" / "assets" / "shapes-sd"
# the builders live in explainer.testing (one copy for tests, benchmarks and lessons)
WORDS, MAX_TOKENS = testing.WORDS, testing.MAX_TOKENS
make_tokenizer = testing.word_tokenizer
build_tiny_sd, build_tiny_sdxl = testing.build_tiny_sd, testing.build_tiny_sdxl


@pytest.fixture(scope="session")
def tiny_sd():
    return build_tiny_sd("epsilon")


@pytest.fixture(scope="session")
def tiny_sd_v():
    return build_tiny_sd("v_prediction", seed=1)


@pytest.fixture(scope="session")
def tiny_sdxl():
    return build_tiny_sdxl()


@pytest.fixture(scope="session")
def shipped_pipe():
    if not (SHIPPED / "model_index.json").exists():
        pytest.skip("the shipped model (explainer/assets/shapes-sd) is not there yet")
    import explainer

    return explainer.load_pipeline()
