"""The one training loop (explainer.train.common.fit), tried from the outside on a tiny stage."""

from __future__ import annotations

import json
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


def test_a_non_finite_model_is_refused(tmp_path):
    with pytest.raises(FloatingPointError, match="non-finite"):
        fit(Line(poison=True), _cfg(tmp_path, "nan", steps=5))
    assert not (tmp_path / "nan" / "model").exists()


@pytest.mark.parametrize("field, value, words", [
    ("steps", 0, "steps must be an integer >= 1"), ("ema_decay", 1.0, "ema_decay must be None or a number in [0, 1)"),
    ("lr", float("nan"), "lr must be a finite number > 0"), ("schedule", "step", "schedule must be one of"),
])
def test_bad_config_is_refused_naming_the_field(tmp_path, field, value, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        _cfg(tmp_path, "bad", **{field: value})
