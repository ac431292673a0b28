"""The capture: what `trace()` hooks into a diffusers pipeline for one run, and how it is all put back.

Everything family-specific comes from the pipeline's adapter (explainer/adapters/); this module only installs:
  * a forward pre-hook / hook on the adapter's denoiser (U-Net or transformer): its inputs as the adapter reads them
    and its raw output (the cond/uncond predictions, split by the adapter);
  * a wrapper on `scheduler.step` that keeps the method's signature (pipelines inspect it to decide whether to pass
    `generator`/`eta`): the guided prediction, x_t in, x_t-1 out;
  * forward hooks on the text encoders: their pooled outputs;
  * the attention probes the adapter names (explainer.probes.AttentionProbe: forward hooks that read the queries and
    keys the layer itself computes; the layer's processor is never replaced, so its output is bit-identical).
`capture()` installs all of it and removes it in `finally`, whatever happens (exceptions, KeyboardInterrupt).

The `Recorder` is the probes' sink: it says which rows of a denoiser call to record (the conditional branch), the
text length, and which text columns to keep (the prompt's real tokens; the probes add one column for the rest).
Hot path: nothing recorded leaves the pipeline's device during the run (no per-call host copies or syncs); attention
is averaged over heads and summed into one running map per group (U-Net level or DiT block) per call, then cast to
fp16; `Recorder.finish()` stacks everything on the device and moves it to the CPU in one pass. A step's input latents
are not kept again when they are the previous step's output (the same tensor object).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .adapters.base import Adapter, arg
from .probes import pool_to

ATTENTION_MAX_RES = 64  # maps finer than 64x64 are average-pooled down to fit 64x64 (SD1.5 at 512 px is 64x64)


# --------------------------------------------------------------------------------------------- recorder
def _host(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy we own (the pipeline may reuse or free its tensor)."""
    return t.detach().to("cpu", copy=True)


def _own(t: Any) -> Any:
    """A device copy we own (no host transfer, no sync)."""
    return t.detach().clone() if torch.is_tensor(t) else t


def _stack_scalars(values: list[Any]) -> torch.Tensor:
    """Timesteps (0-d tensors on the device, or Python numbers) as one float64 vector, stacked where they are."""
    if all(torch.is_tensor(v) for v in values) and len({v.device for v in values}) == 1:
        return torch.stack([v.detach().reshape(()).to(torch.float64) for v in values])
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def to_host(tree: Any) -> Any:
    """A nested dict/list of tensors moved to the CPU: every copy queued without waiting, then one synchronisation
    (not one blocking copy per tensor)."""
    used: set = set()

    def move(x):
        if torch.is_tensor(x):
            if x.device.type == "cpu":
                return x
            used.add(x.device)
            return x.to("cpu", non_blocking=True)
        if isinstance(x, dict):
            return {k: move(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(move(v) for v in x)
        return x

    out = move(tree)
    for d in used:
        if d.type == "cuda":
            torch.cuda.synchronize(d)
    return out


class Recorder:
    """Collects one run. Per denoiser evaluation ("eval", one `scheduler.step` call): x_t in, the raw denoiser
    outputs of that step's calls, the guided prediction, x out, timestep, the scheduler's step index, whether it
    starts a new sampler step, and per-group attention maps. All on the pipeline's device until `finish()`."""

    def __init__(self, n_samples: int, latent_hw: tuple[int, int], attention: bool = True,
                 max_res: int | None = ATTENTION_MAX_RES, adapter: Adapter | None = None,
                 columns: list[int] | None = None):
        self.n_samples = n_samples
        # the text positions whose attention is kept (the prompt's real tokens); the probes add one column for the
        # rest of each row (the padding's share). None: every position, no extra column.
        self.columns = None if columns is None else torch.tensor(list(columns), dtype=torch.long)
        self.latent_hw = latent_hw
        self.attention = attention
        self.max_res = max_res
        self.adapter = adapter if adapter is not None else Adapter(None)
        self.cfg: bool | None = None  # True when the run has an unconditional branch
        self.cfg_batch: bool | None = None  # True when the denoiser batch holds [uncond, cond]
        self.unet_calls = 0  # denoiser calls (the name predates transformers)
        self.first_inputs: list[dict[str, Any]] = []  # the first step's denoiser inputs, one per call
        self.evals: list[dict[str, Any]] = []
        self.text_calls: dict[str, list[dict[str, torch.Tensor]]] = {}
        self.extra_records: dict[str, list[Any]] = {}  # filled by an adapter's extra_hooks (device tensors)
        self.level_layers: dict[str, int] = {}
        self.level_source: dict[str, tuple[int, int]] = {}
        self.rows: slice | None = None  # rows of the current call whose attention is recorded
        self.n_text = 0  # text length of the current call (Flux single-stream blocks split at it)
        self._grid = None
        self._raws: list[torch.Tensor] = []
        self._attn_now: dict[str, torch.Tensor] = {}
        self._acc: dict[Any, list] = {}
        self._shapes: dict[int, tuple[int, int]] = {}
        self._last_next: torch.Tensor | None = None  # the pipeline's own tensor returned by the last step

    # denoiser ------------------------------------------------------------------------------------------
    def denoiser_pre(self, module, args, kwargs):
        inp = self.adapter.read_inputs(args, kwargs)
        sample, text = inp["sample"], inp["text"]
        n = self.n_samples
        if self.cfg_batch is None:
            self.cfg_batch = self.adapter.is_cfg_batch(sample, n)
        if not self.evals:
            self.first_inputs.append({"text": _own(text), "extra": {k: _own(v) for k, v in inp["extra"].items()}})
        if text is not None:
            self.n_text = text.shape[1]
        self.rows = (self.adapter.attention_rows(len(self._raws), sample.shape[0], n) if self.attention else None)
        self._acc = {}
        return None

    unet_pre = denoiser_pre

    def denoiser_post(self, module, args, output):
        self._raws.append(_own(self.adapter.raw_output(output)))
        self.unet_calls += 1
        if self._acc:
            self._attn_now = self._flush_attention()
        self.rows = None
        return None

    unet_post = denoiser_post

    # attention -----------------------------------------------------------------------------------------
    def add_attention(self, group: str | None, probs: torch.Tensor) -> None:
        key = probs.shape[1] if group is None else group
        acc = self._acc.get(key)
        if acc is None:
            self._acc[key] = [probs, 1]
        else:
            acc[0] += probs
            acc[1] += 1

    def level_shape(self, positions: int) -> tuple[int, int]:
        """(h, w) of a U-Net level from its number of positions: the latent size halved (rounding up) k times."""
        if positions not in self._shapes:
            h, w = self.latent_hw
            for _ in range(12):
                if h * w == positions:
                    break
                h, w = -(-h // 2), -(-w // 2)
            else:
                h, w = 1, positions
            self._shapes[positions] = (h, w)
        return self._shapes[positions]

    def _flush_attention(self) -> dict[str, torch.Tensor]:
        out = {}
        for key, (total, count) in self._acc.items():
            if isinstance(key, int):
                h, w = self.level_shape(key)
                name = f"{h}x{w}"
            else:
                if self._grid is None:
                    self._grid = self.adapter.query_grid(self.latent_hw)
                h, w = self._grid
                name = key
            m = pool_to((total / count).view(total.shape[0], h, w, total.shape[-1]), self.max_res)  # layers' mean
            out[name] = m.to(torch.float16)
            self.level_layers[name] = count
            self.level_source[name] = (h, w)
        self._acc = {}
        return out

    # scheduler ---------------------------------------------------------------------------------------------
    def on_step(self, model_output, timestep, sample, prev_sample, step_index, new_step: bool) -> None:
        if self.cfg is None:
            self.cfg = bool(self.cfg_batch) or len(self._raws) > 1
        same = sample is self._last_next and bool(self.evals)
        self.evals.append({
            "timestep": _own(timestep), "step_index": step_index, "new_step": new_step or not self.evals,
            "latents": None if same else _own(sample), "guided": _own(model_output), "next": _own(prev_sample),
            "raws": self._raws, "attn": self._attn_now,
        })
        self._last_next = prev_sample
        self._raws, self._attn_now = [], {}

    def finish(self) -> dict[str, Any]:
        """Everything stacked over evaluations on the device, then moved to the CPU in one pass (one sync)."""
        ev = self.evals
        if not ev:
            raise RuntimeError("the pipeline ran no denoising step: nothing was recorded")
        lat = [e["latents"] if e["latents"] is not None else ev[j - 1]["next"] for j, e in enumerate(ev)]
        n_calls = len(ev[0]["raws"])
        dev = {
            "timesteps": _stack_scalars([e["timestep"] for e in ev]),
            "latents": torch.stack(lat), "next": torch.stack([e["next"] for e in ev]),
            "guided": torch.stack([e["guided"] for e in ev]),
            "raws": [torch.stack([e["raws"][k] for e in ev]) for k in range(n_calls)],
            "attn": {name: torch.stack([e["attn"][name] for e in ev]) for name in ev[0]["attn"]},
            "inputs": [{"text": c["text"], "extra": c["extra"]} for c in self.first_inputs],
            "extra_records": self.extra_records,
        }
        out = to_host(dev)
        out["timesteps"] = [float(t) for t in out["timesteps"].tolist()]
        out["step_index"] = [e["step_index"] for e in ev]
        out["new_step"] = [e["new_step"] for e in ev]
        return out

    # text encoders -----------------------------------------------------------------------------------------
    def text_hook(self, name: str):
        def hook(module, args, kwargs, output):
            pooled = getattr(output, "text_embeds", None)
            if pooled is None:
                pooled = getattr(output, "pooler_output", None)
            if pooled is None and isinstance(output, tuple) and len(output) > 1:
                pooled = output[1]
            ids = arg(args, kwargs, 0, "input_ids")
            self.text_calls.setdefault(name, []).append(
                {"ids": None if ids is None else _host(ids),
                 "pooled": None if not torch.is_tensor(pooled) else _host(pooled)})
        return hook


def starts_new_step(scheduler: Any) -> bool:
    """Before a `scheduler.step` call: does it start a new sampler step, or finish one (2nd denoiser call)?"""
    if hasattr(scheduler, "state_in_first_order"):  # Heun, KDPM2: predictor then corrector
        return bool(scheduler.state_in_first_order)
    if type(scheduler).__name__ == "PNDMScheduler":
        c = scheduler.counter
        if scheduler.config.skip_prk_steps:  # PLMS warm-up: the first step evaluates twice
            return c != 1
        return c % 4 == 0 if c < len(scheduler.prk_timesteps) else True
    return True


def wrap_step(scheduler: Any, recorder: Recorder):
    """`scheduler.step` with recording, keeping the original's signature (functools.wraps sets __wrapped__)."""
    original = scheduler.step
    names = list(inspect.signature(original).parameters)[:3]  # model_output, timestep, sample

    @functools.wraps(original)
    def step(*args, **kwargs):
        new_step = starts_new_step(scheduler)
        model_output, timestep, sample = (arg(args, kwargs, i, n) for i, n in enumerate(names))
        out = original(*args, **kwargs)
        prev = out[0] if isinstance(out, tuple) else out.prev_sample
        recorder.on_step(model_output, timestep, sample, prev, getattr(scheduler, "step_index", None), new_step)
        return out

    return step


# --------------------------------------------------------------------------------------------- install / restore
@contextmanager
def capture(pipe: Any, adapter: Adapter, recorder: Recorder, scheduler: Any | None = None) -> Iterator[Recorder]:
    """Install the hooks for one run; everything is restored on exit, whatever happened."""
    saved_scheduler = pipe.scheduler
    handles: list[Any] = []
    sched, had_own_step = None, False
    recorder.adapter = adapter
    try:
        if scheduler is not None:
            pipe.scheduler = scheduler
        sched = pipe.scheduler
        had_own_step = "step" in sched.__dict__
        own_step = sched.__dict__.get("step")
        sched.step = wrap_step(sched, recorder)
        denoiser = adapter.denoiser
        handles.append(denoiser.register_forward_pre_hook(recorder.denoiser_pre, with_kwargs=True))
        handles.append(denoiser.register_forward_hook(recorder.denoiser_post))
        for name, enc in adapter.text_encoders:
            handles.append(enc.register_forward_hook(recorder.text_hook(name), with_kwargs=True))
        for module, pre, post in adapter.extra_hooks(recorder):
            if pre is not None:
                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            if post is not None:
                handles.append(module.register_forward_hook(post, with_kwargs=True))
        if recorder.attention:
            for probe in adapter.probes(recorder):
                handles.extend(probe.install())
        yield recorder
    finally:
        for h in reversed(handles):
            h.remove()
        if sched is not None:
            if had_own_step:
                sched.step = own_step
            else:
                sched.__dict__.pop("step", None)
        if pipe.scheduler is not saved_scheduler:
            pipe.scheduler = saved_scheduler
