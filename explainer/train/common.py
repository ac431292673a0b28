"""The one training loop every stage runs through (d2l's `Trainer.fit` manner, on 🤗 Accelerate).

A stage gives its model, its data, its loss and (optionally) its optimiser, evaluation and saving; `fit` does the rest
the same way for every stage, as diffusers' own training scripts do:

- `accelerate.Accelerator` places the model and batches, runs mixed precision and gradient accumulation, and lets
  `accelerate launch` spread a stage over several GPUs or machines (no loop of our own for that);
- one learning-rate schedule (`diffusers.optimization.get_scheduler`: cosine with warmup unless the stage asks for
  another of its names), one EMA (`diffusers.training_utils.EMAModel`), one gradient clip;
- one JSONL log (`run_dir/log.jsonl`: step, loss, metrics, lr, minutes; evaluations as {"step", "eval"}), written only
  every `log_every` updates: that is the only place the loop waits for the device (nanoGPT's habit);
- one stop clock (`max_minutes`) and one stop point (`stop_at`, an update of the `steps` schedule, so two runs can be
  compared at the same update of the same schedule): either checkpoints, evaluates and saves cleanly when reached;
- resumable checkpoints (`run_dir/checkpoint/`): model, EMA, optimiser, schedule, step, the data generator and the RNG
  states, written as safetensors + JSON only (never pickle, never torch.save); a run that finds one continues from it
  to the same result as a run that was never interrupted;
- it refuses to save a model that took no update or has a non-finite parameter.

Also here, shared by the stages: the SD noise schedule (`sd_noise_schedule`), uint8 images -> VAE pixels
(`to_pixels`), the posterior cache (`encode_posterior` once, `sample_posterior` every step), and resumable caption
wording with caption dropout (`captions`) and tokenizing (`token_ids`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import validation as V
from ..latents import to_pixels  # noqa: F401 (uint8 -> [-1, 1] pixels: the one conversion, used by stages)

SCHEDULES = ("cosine", "constant", "constant_with_warmup", "linear")
_CKPT = "checkpoint"


# ------------------------------------------------------------------------------------------------ the seam
class Stage:
    """What a stage gives `fit`. Subclasses set `name` and define `model`, `batches`, `loss` and `save`.

    Optional hooks: `setup(device)` (called first: load frozen parts, put them on the device), `optimizer(params,
    cfg)`, `evaluate(model)`, `checkpointed()` (other modules / optimisers the checkpoint must hold, e.g. a GAN's
    discriminator). `fit` sets `self.device` and `self.prepared` (the module as Accelerate prepared it: call it in
    `loss`, so that under `accelerate launch` on several processes the gradients are synchronised).
    `evaluate` and `save` receive a copy of the model holding the EMA weights (the live model when there is no EMA);
    `save` may change what it receives (dtype, device).
    """

    name: str = "stage"
    device: torch.device = torch.device("cpu")
    prepared: torch.nn.Module | None = None

    def setup(self, device: torch.device) -> None:
        self.device = device

    def model(self) -> torch.nn.Module:
        raise NotImplementedError

    def batches(self, generator: torch.Generator) -> Iterator:
        """Endless iterator of batches. Draw every random choice from `generator` when `next` is called, so that
        a resumed run (generator state restored) sees the very batches the uninterrupted run would have seen."""
        raise NotImplementedError

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss and metrics (tensors, left on the device: `fit` reads them only when it logs)."""
        raise NotImplementedError

    def optimizer(self, params, cfg: FitConfig) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {}

    def checkpointed(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        return {}

    def save(self, model: torch.nn.Module, out: Path) -> None:
        raise NotImplementedError


@dataclass
class FitConfig:
    """How `fit` trains. `steps` counts optimiser updates; a resumed run continues up to it."""

    steps: int
    lr: float
    run_dir: Path
    warmup: int = 0
    weight_decay: float = 0.0
    ema_decay: float | None = None
    max_minutes: float | None = None
    stop_at: int | None = None  # stop after this update of the `steps` schedule (a resumed run continues it)
    log_every: int = 50
    eval_every: int | None = None
    checkpoint_every: int = 500
    grad_accum: int = 1
    mixed_precision: str = "no"
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str | None = None
    # added beyond the agreed seam
    out: Path | None = None  # where stage.save writes the finished model (default run_dir / "model")
    schedule: str = "cosine"  # a get_scheduler name: cosine, constant, constant_with_warmup, linear
    ema_warmup: bool = True  # EMAModel(use_ema_warmup=..., power=ema_power); False: decay min(d, (1+n)/(10+n))
    ema_power: float = 0.75
    eval_first: bool = False  # also evaluate before the first update (a fresh run only)
    progress: bool = True  # a tqdm bar

    def __post_init__(self) -> None:
        check_fit_config(self)


@dataclass
class FitResult:
    steps_done: int  # optimiser updates in total (earlier runs this one resumed included)
    minutes: float  # wall-clock minutes of this call
    metrics: dict[str, float] = field(default_factory=dict)  # the last logged loss / metrics
    evaluation: dict[str, Any] = field(default_factory=dict)  # the last evaluation (of the EMA model)
    stopped_early: bool = False  # the stop clock ended the run before `steps`
    out: Path | None = None  # the saved model


def _folder(path: object, name: str) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a folder, got an existing file {path}")
    return path


def check_fit_config(cfg: FitConfig) -> None:
    """Every field in range through the one validation path, before any model is built (ValueError naming the
    field and what is allowed)."""
    for name in ("steps", "log_every", "checkpoint_every", "grad_accum"):
        V.check_positive_int(getattr(cfg, name), name)
    if cfg.warmup != 0:
        V.check_positive_int(cfg.warmup, "warmup")
    V.check_seed(cfg.seed, "seed")
    if cfg.eval_every is not None:
        V.check_positive_int(cfg.eval_every, "eval_every")
    if cfg.stop_at is not None:
        V.check_int(cfg.stop_at, "stop_at", 1, cfg.steps)
    for name in ("lr", "ema_power", "max_minutes", "grad_clip"):
        if getattr(cfg, name) is not None:
            V.check_number(getattr(cfg, name), name, 0, low_open=True)
    V.check_number(cfg.weight_decay, "weight_decay", 0)
    if cfg.ema_decay is not None:
        V.check_number(cfg.ema_decay, "ema_decay", 0, 1, high_open=True)  # 1 would never move the average
    V.check_choice(cfg.mixed_precision, ("no", "fp16", "bf16"), "mixed_precision")
    V.check_choice(cfg.schedule, SCHEDULES, "schedule")
    V.check_choice(cfg.device, (None, "cpu", "cuda", "mps"), "device")
    cfg.run_dir = _folder(cfg.run_dir, "run_dir")
    if cfg.out is not None:
        cfg.out = _folder(cfg.out, "out")


# ------------------------------------------------------------------------------------------------ shared parts
def sd_noise_schedule():
    """Stable Diffusion's training noise schedule (DDPM, 1,000 steps, scaled-linear betas 0.00085 -> 0.012), from its
    one definition (`noise.scheduler_config(None)`)."""
    from diffusers import DDPMScheduler

    from ..noise import scheduler_config

    return DDPMScheduler.from_config(scheduler_config(None))


def encode_posterior(vae, images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu", batch: int = 256,
                     cache: Path | None = None, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior q(z|x) of every image, encoded once: (mean, std), float32 on the CPU.

    images: uint8 (n, h, w, 3) or pixels (n, 3, h, w) in [-1, 1]. With `cache` (a .safetensors path) the result is
    read from there when the file exists and written there otherwise.
    """
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    if cache is not None and Path(cache).exists():
        d = load_file(str(cache))
        return d["mean"], d["std"]
    x = to_pixels(images) if isinstance(images, np.ndarray) else images
    means, stds = [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(x), batch), desc="encode latents", disable=not progress):
            d = vae.encode(x[i:i + batch].to(device, vae.dtype)).latent_dist
            means.append(d.mean.float().cpu())
            stds.append(d.std.float().cpu())
    mean, std = torch.cat(means).contiguous(), torch.cat(stds).contiguous()
    if cache is not None:
        cache = Path(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp")
        save_file({"mean": mean, "std": std}, str(tmp))
        os.replace(tmp, cache)
    return mean, std


def sample_posterior(mean: torch.Tensor, std: torch.Tensor, idx: torch.Tensor, generator: torch.Generator,
                     scale: float, shift: float = 0.0) -> torch.Tensor:
    """z ~ q(z|x) for the images `idx`, on the denoiser's scale: (mean + std * eps - shift) * scale (CPU)."""
    m = mean[idx]
    return (m + std[idx] * torch.randn(m.shape, generator=generator) - shift) * scale


def captions(scenes: list, idx: torch.Tensor, generator: torch.Generator, caption_for, dropout: float = 0.0
             ) -> list[str]:
    """A caption for each picked scene, worded afresh (`caption_for(scene, rng)`) by a random.Random drawn from
    `generator` (so a resumed run words them the same), a `dropout` share left empty (the unconditional branch
    classifier-free guidance needs)."""
    rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return ["" if dropout and rng.random() <= dropout else caption_for(scenes[i], rng) for i in idx.tolist()]


def token_ids(tokenizer, texts: list[str], max_length: int | None = None) -> torch.Tensor:
    """Input ids padded (and cut) to the tokenizer's length, as the pipelines tokenize prompts."""
    return tokenizer(texts, padding="max_length", max_length=max_length or tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def min_snr_eps_loss(pred: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor,
                     gamma: float = 5.0) -> torch.Tensor:
    """ε-prediction MSE with Min-SNR-γ weighting (Hang et al. 2023): each sample's loss times min(SNR, γ) / SNR, so
    the easiest, nearly noise-free steps waste fewer updates."""
    snr = alphas_cumprod.to(pred.device)[t] / (1 - alphas_cumprod.to(pred.device)[t])
    per_sample = (pred.float() - noise.float()).pow(2).mean(dim=tuple(range(1, pred.ndim)))
    return (torch.clamp(snr, max=gamma) / snr * per_sample).mean()


def check_finite(model: torch.nn.Module, what: str = "model") -> None:
    """Raise FloatingPointError if any parameter or buffer of `model` is NaN or infinite (validation.check_finite)."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        try:
            V.check_finite(t.detach(), name)
        except ValueError as e:
            raise FloatingPointError(f"refusing to save the {what}: {e} (non-finite: training diverged - lower the "
                                     "learning rate or check the data)") from None


# ------------------------------------------------------------------------------------------------ checkpoints
def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return None  # callables (schedule lambdas) and the like are rebuilt, not stored


def _flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state as tensors (`prefix.<param>.<key>`) + JSON (param groups and non-tensor state)."""
    sd = opt.state_dict()
    tensors, plain = {}, {}
    for pid, st in sd["state"].items():
        for key, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{pid}.{key}"] = v.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[key] = _jsonable(v)
    return tensors, {"param_groups": _jsonable(sd["param_groups"]), "plain": plain}


def _unflatten_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict,
                         prefix: str) -> None:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith(prefix + "."):
            pid, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(pid), {})[key] = v
    for pid, st in meta["plain"].items():
        state.setdefault(int(pid), {}).update(st)
    groups = meta["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


@dataclass
class _Run:
    """Everything a checkpoint holds, bundled for save / load."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    ema: Any
    generator: torch.Generator
    extra: dict[str, torch.nn.Module | torch.optim.Optimizer]
    step: int = 0
    minutes_before: float = 0.0


def _save_checkpoint(run: _Run, run_dir: Path, minutes: float) -> None:
    from safetensors.torch import save_file, save_model

    tmp = run_dir / (_CKPT + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(run.model, str(tmp / "model.safetensors"))
    tensors, opt_meta = _flatten_optimizer(run.opt, "opt")
    meta: dict[str, Any] = {"step": run.step, "minutes": minutes, "optimizer": opt_meta,
                            "scheduler": _jsonable(run.sched.state_dict()), "extra": {}}
    tensors["rng.generator"] = run.generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if run.ema is not None:
        ema = run.ema.state_dict()
        for i, p in enumerate(ema.pop("shadow_params")):
            tensors[f"ema.{i}"] = p.detach().cpu().contiguous()
        meta["ema"] = _jsonable(ema)
    for name, obj in run.extra.items():
        if isinstance(obj, torch.nn.Module):
            save_model(obj, str(tmp / f"extra_{name}.safetensors"))
            meta["extra"][name] = "module"
        else:
            t, m = _flatten_optimizer(obj, f"extra.{name}")
            tensors.update(t)
            meta["extra"][name] = m
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    final, old = run_dir / _CKPT, run_dir / (_CKPT + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(run: _Run, ckpt: Path, device: torch.device) -> None:
    from safetensors.torch import load_file, load_model

    meta = json.loads((ckpt / "state.json").read_text())
    tensors = load_file(str(ckpt / "state.safetensors"))
    load_model(run.model, str(ckpt / "model.safetensors"), device=str(device))
    _unflatten_optimizer(run.opt, tensors, meta["optimizer"], "opt")
    run.sched.load_state_dict(meta["scheduler"])
    run.generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    if run.ema is not None:
        if "ema" not in meta:
            raise ValueError(f"the checkpoint in {ckpt} was written without EMA; run with the same ema_decay")
        shadow = [tensors[f"ema.{i}"].to(device) for i in range(len(run.ema.shadow_params))]
        run.ema.load_state_dict({**meta["ema"], "shadow_params": shadow})
    for name, obj in run.extra.items():
        if isinstance(obj, torch.nn.Module):
            load_model(obj, str(ckpt / f"extra_{name}.safetensors"), device=str(device))
        else:
            _unflatten_optimizer(obj, tensors, meta["extra"][name], f"extra.{name}")
    run.step, run.minutes_before = int(meta["step"]), float(meta["minutes"])


# ------------------------------------------------------------------------------------------------ the loop
def _accelerator(cfg: FitConfig):
    from accelerate import Accelerator

    return Accelerator(cpu=cfg.device == "cpu", mixed_precision=cfg.mixed_precision,
                       gradient_accumulation_steps=cfg.grad_accum)


def _with_ema(run: _Run, fn):
    """Call fn(model) on the model with its EMA weights: a copy, so the live model (and any reference a stage keeps
    to it) stays as it trains; the live model itself when there is no EMA."""
    if run.ema is None:
        return fn(run.model)
    shadow = copy.deepcopy(run.model)
    run.ema.copy_to(shadow.parameters())
    return fn(shadow)


class _Log:
    def __init__(self, path: Path, fresh: bool):
        self.path = path
        if fresh:
            path.write_text("")

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")


def _evaluate(stage: Stage, run: _Run, log: _Log, minutes: float) -> dict:
    def ev(m):
        was = m.training
        m.eval()
        try:
            with torch.no_grad():
                return stage.evaluate(m)
        finally:
            m.train(was)

    score = _with_ema(run, ev) or {}
    if score:
        log.write({"step": run.step, "eval": score, "minutes": round(minutes, 3)})
    return score


def _finish(stage: Stage, run: _Run, cfg: FitConfig) -> Path:
    out = cfg.out if cfg.out is not None else cfg.run_dir / "model"
    if run.step < 1:
        raise ValueError(f"refusing to save the {stage.name} model: it took 0 updates (steps must be >= 1)")

    def save(m):
        check_finite(m, f"{stage.name} model")
        stage.save(m if run.ema is not None else copy.deepcopy(m), out)

    _with_ema(run, save)
    return out


def fit(stage: Stage, cfg: FitConfig) -> FitResult:
    """Train `stage` for `cfg.steps` optimiser updates (continuing from `cfg.run_dir/checkpoint` if there is one),
    then evaluate and save the (EMA) model with `stage.save` into `cfg.out` (default `run_dir/model`)."""
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    check_fit_config(cfg)
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    acc = _accelerator(cfg)
    stage.device = acc.device
    stage.setup(acc.device)
    model = stage.model().to(acc.device)
    model.train()
    opt = stage.optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    n = acc.num_processes
    sched = get_scheduler(cfg.schedule, opt, num_warmup_steps=cfg.warmup * n, num_training_steps=cfg.steps * n)
    ema = (EMAModel(model.parameters(), decay=cfg.ema_decay, use_ema_warmup=cfg.ema_warmup, power=cfg.ema_power)
           if cfg.ema_decay is not None else None)
    prepared, opt, sched = acc.prepare(model, opt, sched)
    stage.prepared = prepared
    run = _Run(model=acc.unwrap_model(prepared), opt=opt, sched=sched, ema=ema,
               generator=torch.Generator().manual_seed(cfg.seed), extra=stage.checkpointed())
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    resumed = (cfg.run_dir / _CKPT / "state.json").is_file()
    if resumed:
        _load_checkpoint(run, cfg.run_dir / _CKPT, acc.device)
        if ema is not None:
            ema.to(acc.device)
    log = _Log(cfg.run_dir / "log.jsonl", fresh=not resumed)
    if cfg.eval_first and not resumed:
        _evaluate(stage, run, log, (time.time() - t0) / 60)
    result = _loop(stage, cfg, run, acc, prepared, log, t0, tqdm)
    if cfg.eval_every is None or run.step % cfg.eval_every or not result.evaluation:
        result.evaluation = _evaluate(stage, run, log, (time.time() - t0) / 60)
    result.out = _finish(stage, run, cfg)
    result.minutes = (time.time() - t0) / 60
    return result


def _loop(stage: Stage, cfg: FitConfig, run: _Run, acc, prepared, log: _Log, t0: float, tqdm) -> FitResult:
    result = FitResult(steps_done=run.step, minutes=0.0)
    if run.step >= cfg.steps:
        return result
    batches = iter(stage.batches(run.generator))
    sums: dict[str, torch.Tensor] = {}
    count = 0
    bar = tqdm(total=cfg.steps, initial=run.step, desc=stage.name, disable=not cfg.progress)
    while run.step < cfg.steps:
        with acc.accumulate(prepared):
            batch = _to_device(next(batches), acc.device)
            with acc.autocast():
                loss, metrics = stage.loss(batch)
            acc.backward(loss)
            if acc.sync_gradients and cfg.grad_clip is not None:
                acc.clip_grad_norm_(prepared.parameters(), cfg.grad_clip)
            run.opt.step()
            run.sched.step()
            run.opt.zero_grad(set_to_none=True)
        for k, v in {"loss": loss, **metrics}.items():  # summed on the device: no host sync here
            v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
            sums[k] = sums[k] + v if k in sums else v
        count += 1
        if not acc.sync_gradients:
            continue
        run.step += 1
        bar.update(1)
        if run.ema is not None:
            run.ema.step(run.model.parameters())
        minutes = (time.time() - t0) / 60
        out_of_time = ((cfg.max_minutes is not None and minutes >= cfg.max_minutes)
                       or (cfg.stop_at is not None and run.step >= cfg.stop_at))
        if run.step % cfg.log_every == 0 or run.step == cfg.steps or out_of_time:
            result.metrics = {k: float(v) / count for k, v in sums.items()}  # the one host sync
            sums, count = {}, 0
            if not math.isfinite(result.metrics["loss"]):
                raise FloatingPointError(f"{stage.name}: the loss is {result.metrics['loss']} at update {run.step}; "
                                         "training diverged (lower the learning rate or check the data)")
            lr = run.sched.get_last_lr()[0]
            log.write({"step": run.step, **result.metrics, "lr": lr, "minutes": round(minutes, 3)})
            bar.set_postfix(loss=f"{result.metrics['loss']:.4f}")
        if cfg.eval_every is not None and run.step % cfg.eval_every == 0:
            result.evaluation = _evaluate(stage, run, log, minutes)
        if run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps or out_of_time:
            _save_checkpoint(run, cfg.run_dir, run.minutes_before + minutes)
        if out_of_time:
            result.stopped_early = run.step < cfg.steps
            why = (f"stop_at {cfg.stop_at}" if cfg.stop_at is not None and run.step >= cfg.stop_at
                   else f"max_minutes {cfg.max_minutes}")
            print(f"{stage.name}: stopped at update {run.step} of {cfg.steps} ({why} reached)")
            break
    bar.close()
    result.steps_done = run.step
    return result


def _to_device(batch: Any, device: torch.device) -> Any:
    from accelerate.utils import send_to_device

    return send_to_device(batch, device)
