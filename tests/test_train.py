"""The one training loop (explainer.train.common.fit), tried from the outside on a tiny stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from explainer.train.common import FitConfig, Stage, fit


class Line(Stage):
    """Fit y = 3x - 1 with a linear layer; `poison` adds a NaN parameter the loss never touches."""

    name = "line"

    def __init__(self, poison: bool = False, crash_at: int | None = None):
        self.poison, self.crash_at, self.calls = poison, crash_at, 0

    def model(self):
        m = torch.nn.Linear(1, 1)
        if self.poison:
            m.unused = torch.nn.Parameter(torch.tensor([float("nan")]), requires_grad=False)
        self.net = m
        return m

    def batches(self, generator):
        while True:
            x = torch.randn(16, 1, generator=generator)
            yield x, 3 * x - 1

    def loss(self, batch):
        self.calls += 1
        if self.crash_at is not None and self.calls > self.crash_at:
            raise KeyboardInterrupt("simulated crash")
        x, y = batch
        err = (self.prepared(x) - y).pow(2).mean()
        return err, {"abs": (self.prepared(x) - y).abs().mean()}

    def evaluate(self, model):
        x = torch.linspace(-1, 1, 5).view(-1, 1)
        return {"mse": float((model(x) - (3 * x - 1)).pow(2).mean())}

    def save(self, model, out: Path):
        from safetensors.torch import save_model

        out.mkdir(parents=True, exist_ok=True)
        save_model(model, str(out / "line.safetensors"))


def _cfg(tmp_path: Path, name: str, **kw) -> FitConfig:
    base = dict(steps=60, lr=0.05, run_dir=tmp_path / name, log_every=10, checkpoint_every=20, ema_decay=0.9,
                device="cpu", progress=False, schedule="constant")
    return FitConfig(**(base | kw))


def test_fit_lowers_the_loss_logs_and_saves(tmp_path):
    res = fit(Line(), _cfg(tmp_path, "a"))
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert res.steps_done == 60 and not res.stopped_early
    assert [r["step"] for r in rows if "loss" in r] == [10, 20, 30, 40, 50, 60]
    assert losses[-1] < 0.05 * losses[0]
    assert res.evaluation["mse"] < 0.1 and rows[-1]["eval"]["mse"] == res.evaluation["mse"]
    assert (tmp_path / "a" / "model" / "line.safetensors").is_file()
    assert not list((tmp_path / "a").rglob("*.pt")) and not list((tmp_path / "a").rglob("*.bin"))


def test_resume_after_a_crash_reaches_the_uninterrupted_result(tmp_path):
    from safetensors.torch import load_file

    whole = fit(Line(), _cfg(tmp_path, "whole"))
    with pytest.raises(KeyboardInterrupt):
        fit(Line(crash_at=47), _cfg(tmp_path, "resumed"))  # dies after the checkpoint at update 40
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())["step"] == 40
    again = fit(Line(), _cfg(tmp_path, "resumed"))
    assert again.steps_done == whole.steps_done == 60
    a = load_file(str(tmp_path / "whole" / "model" / "line.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model" / "line.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.metrics == whole.metrics


def test_the_stop_clock_checkpoints_and_saves(tmp_path):
    res = fit(Line(), _cfg(tmp_path, "clock", steps=100_000, max_minutes=1e-4))
    assert res.stopped_early and 1 <= res.steps_done < 100_000
    state = json.loads((tmp_path / "clock" / "checkpoint" / "state.json").read_text())
    assert state["step"] == res.steps_done
    assert (tmp_path / "clock" / "model" / "line.safetensors").is_file()


def test_stop_at_saves_there_and_a_resume_finishes_the_same_schedule(tmp_path):
    from safetensors.torch import load_file

    fit(Line(), _cfg(tmp_path, "whole", schedule="cosine", warmup=5))
    half = fit(Line(), _cfg(tmp_path, "split", schedule="cosine", warmup=5, stop_at=30))
    assert half.stopped_early and half.steps_done == 30
    mid = load_file(str(tmp_path / "split" / "model" / "line.safetensors"))  # the model at update 30 of 60
    rest = fit(Line(), _cfg(tmp_path, "split", schedule="cosine", warmup=5))
    assert rest.steps_done == 60 and not rest.stopped_early
    a = load_file(str(tmp_path / "whole" / "model" / "line.safetensors"))
    b = load_file(str(tmp_path / "split" / "model" / "line.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], mid[k]) for k in a)


def test_a_non_finite_model_is_refused(tmp_path):
    with pytest.raises(FloatingPointError, match="non-finite"):
        fit(Line(poison=True), _cfg(tmp_path, "nan", steps=5))
    assert not (tmp_path / "nan" / "model").exists()


@pytest.mark.parametrize("field, value, words", [
    ("steps", 0, "steps must be from 1, got 0"),
    ("ema_decay", 1.0, "ema_decay must be a finite number >= 0 and < 1, got 1"),
    ("ema_decay", float("nan"), "ema_decay must be a finite number >= 0 and < 1, got nan"),
    ("lr", float("nan"), "lr must be a finite number > 0, got nan"),
    ("lr", 0.0, "lr must be a finite number > 0, got 0"),
    ("schedule", "step", "schedule must be one of"), ("seed", -1, "seed must be from 0"),
    ("max_minutes", -1.0, "max_minutes must be a finite number > 0, got -1"),
    ("stop_at", 61, "stop_at must be an integer >= 1 and <= 60, got 61"),
])
def test_bad_config_is_refused_naming_the_field(tmp_path, field, value, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        _cfg(tmp_path, "bad", **{field: value})


def test_run_dir_and_out_must_not_be_files(tmp_path):
    (tmp_path / "f").write_text("")
    for field in ("run_dir", "out"):
        with pytest.raises(ValueError, match=f"{field} must be a folder, got an existing file"):
            _cfg(tmp_path, "bad", **{field: tmp_path / "f"})


# ------------------------------------------------------------------------------------------------ the CLI
ASSETS = Path(__file__).resolve().parents[1] / "explainer" / "assets"


def _assets_state() -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in ASSETS.rglob("*") if p.is_file())


@pytest.fixture()
def assets_untouched():
    before = _assets_state()
    yield
    assert _assets_state() == before


@pytest.mark.parametrize("argv, words", [
    (["--stage", "gan", "--ema", "1.5"], "--ema must be a finite number >= 0 and < 1, got 1.5"),
    (["--stage", "dit", "--ema", "nan"], "--ema must be a finite number >= 0 and < 1, got nan"),
    (["--stage", "controlnet", "--cond-dropout", "1.5"], "--cond-dropout must be a finite number >= 0 and <= 1"),
    (["--stage", "gan", "--gan-steps", "0"], "--gan-steps must be from 1, got 0"),
    (["--stage", "controlnet", "--cn-steps", "0"], "--cn-steps must be from 1, got 0"),
    (["--stage", "judge", "--judge-steps", "-3"], "--judge-steps must be from 1, got -3"),
    (["--stage", "gan", "--gan-mismatch", "2"], "--gan-mismatch must be a finite number >= 0 and <= 1, got 2"),
    (["--stage", "dit", "--dit-lr", "inf"], "--dit-lr must be a finite number > 0, got inf"),
    (["--stage", "unet", "--unet-batch", "0"], "--unet-batch must be from 1 to 10,000,000, got 0"),
    (["--stage", "judge", "--max-minutes", "0"], "--max-minutes must be a finite number > 0, got 0"),
    (["--stage", "gan", "--two-object-p", "-0.1"], "--two-object-p must be a finite number >= 0 and <= 1, got -0.1"),
    (["--stage", "gan", "--out", str(ASSETS / "shapes-gan")], "inside the package's assets"),
    (["--stage", "controlnet", "--out", str(ASSETS / "controlnet-edges")], "pass --into-package"),
    (["--stage", "judge", "--work", str(ASSETS / "scratch")], "--work must be outside the package's assets"),
])
def test_the_cli_refuses_bad_flags_by_name_before_any_work(argv, words, capsys, tmp_path, assets_untouched):
    from explainer.train.__main__ import main

    work = [] if "--work" in argv else ["--work", str(tmp_path / "w")]
    with pytest.raises(SystemExit) as exc:
        main(argv + work)
    assert exc.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_out_must_not_be_an_existing_file(capsys, tmp_path, assets_untouched):
    from explainer.train.__main__ import main

    (tmp_path / "model").write_text("not a folder")
    with pytest.raises(SystemExit):
        main(["--stage", "dit", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "model")])
    assert f"--out must be a folder, got an existing file {tmp_path / 'model'}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [(["--stage", "gan", "--gan-steps", "0"], "--gan-steps must be from 1"),
                                         (["--stage", "gan", "--gan-ema", "nan"], "unrecognized arguments: --gan-ema")])
def test_the_real_command_exits_non_zero_and_names_the_flag(argv, words, tmp_path, assets_untouched):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "explainer.train", *argv, "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and words in r.stderr


def test_a_stage_writes_under_work_by_default_and_an_old_checkpoint_needs_resume(capsys, tmp_path, assets_untouched):
    from safetensors import safe_open

    from explainer.train.__main__ import main

    argv = ["--stage", "judge", "--judge-n", "200", "--judge-steps", "4", "--log-every", "2", "--checkpoint-every",
            "2", "--work", str(tmp_path / "w")]
    main(argv)
    with safe_open(str(tmp_path / "w" / "judge-model" / "judge.safetensors"), "pt") as f:
        assert set(f.keys()) == {"w1", "b1", "w2", "b2", "w3", "b3"} and 0 <= float(f.metadata()["val_accuracy"]) <= 1
    with pytest.raises(SystemExit):
        main(argv)
    assert "already holds a checkpoint of 'judge'" in capsys.readouterr().err
    main(argv + ["--resume", "--judge-steps", "6"])
    rows = [json.loads(line) for line in (tmp_path / "w" / "judge" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6]


def test_a_stage_run_alone_names_the_parts_it_needs_from_work(capsys, tmp_path, assets_untouched):
    from explainer.train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--stage", "unet", "--work", str(tmp_path / "w")])
    assert "--stage unet reads tokenizer/, vae/, clip/ from --work" in capsys.readouterr().err
