"""Fixtures: config-built tiny Stable Diffusion / SDXL pipelines with random weights (no hub), and the shipped model.

Thin wrappers over `explainer.testing`, which builds them the way diffusers' own tests build theirs: the real classes
(UNet2DConditionModel, AutoencoderKL, CLIPTextModel[WithProjection]) from tiny configs, and tokenizers made locally
with `tokenizers` (word level, or Stable Diffusion's CLIP BPE format).
"""

from __future__ import annotations

import os
from pathlib import Path

# `make test` runs two workers on two cores, each pinned to one torch thread. What a worker starts (notebook kernels,
# the CLI, Jupyter servers) inherits these, so it adds no threads of its own: a two-thread matmul whose second thread
# waits for a busy core runs many times slower (lesson 1's 50 U-Net calls took 59 s instead of ~1 s that way).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from explainer import testing  # noqa: E402

torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs `--dist loadgroup`: each test file is one group (as `loadfile`: its module fixtures load
    once), except the headless lessons, one group each, so both workers take them (in one group they were a single
    worker's ~820 s)."""
    for item in items:
        lesson = getattr(item, "originalname", "") == "test_lesson_runs_headless"
        item.add_marker(pytest.mark.xdist_group(item.nodeid if lesson else item.path.name))


SHIPPED = Path(__file__).resolve().parents[1] / "explainer" / "assets" / "shapes-sd"
SCENES = SHIPPED.parent / "scenes-sd"
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


@pytest.fixture(scope="module")  # per test file, as before: a file that changes the pipe's scheduler keeps it to itself
def scenes_pipe():
    if not (SCENES / "model_index.json").exists():
        pytest.skip("the scenes model (explainer/assets/scenes-sd) is not there yet")
    import explainer

    return explainer.load_pipeline("scenes-sd")
