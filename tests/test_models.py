"""Loading: the shipped model offline, any pipeline folder, and clear errors for bad arguments."""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import explainer as ex
from explainer.models import SHIPPED_MODEL

needs_model = pytest.mark.skipif(not (SHIPPED_MODEL / "model_index.json").exists(), reason="shipped model absent")


@needs_model
def test_shipped_model_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = ex.load_pipeline()
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.vae_scale_factor == 4 and pipe.unet.config.sample_size == 8


@needs_model
def test_shipped_weights_are_safetensors_and_small():
    files = [p for p in SHIPPED_MODEL.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    total = sum(p.stat().st_size for p in files)
    assert total <= 30 * 2**20, f"shipped model is {total / 2**20:.1f} MiB, budget 30 MiB"
    for p in weights:  # every file opens as safetensors (no pickle inside)
        with safe_open(p, "pt") as f:
            assert len(list(f.keys())) > 0


def test_bad_arguments_raise_clear_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="device"):
        ex.load_pipeline(device="tpu")
    with pytest.raises(ValueError, match="dtype"):
        ex.load_pipeline(dtype="float8")
    with pytest.raises(ValueError, match="model_index.json"):
        ex.load_pipeline(tmp_path)
    with pytest.raises(ValueError, match="path_or_id"):
        ex.load_pipeline("not a model id at all")
    with pytest.raises(ValueError, match="path_or_id"):
        ex.load_pipeline(42)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            ex.load_pipeline(device="cuda")


def test_unreachable_hub_id_says_how_to_use_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="local folder") as err:
        ex.load_pipeline("someone/not-cached-model")
    assert "huggingface-cli download someone/not-cached-model --local-dir" in str(err.value)  # the exact command


def _config_only_copy(dest: Path) -> Path:
    """The shipped pipeline folder without a single weight file (configs, tokenizer, scheduler only)."""
    import shutil

    shutil.copytree(SHIPPED_MODEL, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return dest


def test_a_pipeline_folder_without_weights_is_refused_before_loading(tmp_path: Path):
    folder = _config_only_copy(tmp_path / "no-weights")
    with pytest.raises(ValueError, match="no weights") as err:
        ex.load_pipeline(folder)
    assert str(folder) in str(err.value)


def test_a_broken_model_index_names_the_file(tmp_path: Path):
    folder = _config_only_copy(tmp_path / "broken")
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", ')
    with pytest.raises(ValueError, match="not a readable JSON file") as err:
        ex.load_pipeline(folder)
    assert str(folder / "model_index.json") in str(err.value)


def test_a_unet_folder_is_refused_as_a_controlnet():
    with pytest.raises(ValueError, match="UNet2DConditionModel.*not a ControlNetModel"):
        ex.load_pipeline(controlnet=SHIPPED_MODEL / "unet")


def test_the_session_loads_each_model_once(monkeypatch):
    from explainer import models

    monkeypatch.setattr(models, "_SESSION", {})
    monkeypatch.delenv("EXPLAINER_MODEL", raising=False)
    calls = []
    real = models.load_pipeline
    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert models.session_model() == models.first_model()  # nothing chosen yet: what a user sees first
    first = models.load_model("shapes-sd", remember=False)
    assert models.session_model() == models.first_model()
    assert models.load_model("shapes-sd") is first and len(calls) == 1
    assert models.session_model() == "shapes-sd" and models.model_key(first) == "shapes-sd"
    assert "shapes-sd" in models.model_choices(first) and models.model_choices() == models.available_models()


def test_explain_takes_a_shipped_models_name(tmp_path: Path):
    """`explain --model shapes-dit` as every other entry point takes the name (it used to be refused as no folder)."""
    import subprocess
    import sys

    from explainer.models import available_models

    if "shapes-dit" not in available_models():
        pytest.skip("shapes-dit is not in this install")
    out = subprocess.run([sys.executable, "-m", "explainer", "explain", "a red circle", "--model", "shapes-dit",
                          "--steps", "2", "--out", str(tmp_path / "report"), "--quiet"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "report" / "index.html").is_file()
