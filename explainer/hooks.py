"""The capture: what `trace()` hooks into a diffusers pipeline for one run, and how it is all put back.

Nothing here reads private locals of a pipeline's `__call__`; everything is observed at public seams:
  * a forward pre-hook / hook on the U-Net: its inputs (text embeddings, SDXL micro-conditioning) and its raw output
    (the cond/uncond noise predictions, batched [uncond, cond] as every SD pipeline does);
  * a wrapper on `scheduler.step` that keeps the method's signature (pipelines inspect it to decide whether to pass
    `generator`/`eta`): the guided prediction, x_t in, x_t-1 out;
  * forward hooks on the text encoders: their pooled outputs;
  * on cross-attention layers only, a processor that calls the layer's own processor for the output (so the output
    is bit-identical: SDPA stays SDPA) and computes softmax(QK^T/sqrt(d)) beside it, for the conditional rows only.
    Self-attention is untouched.
`capture()` installs all of it and restores processors, hooks, `scheduler.step` and `pipe.scheduler` in `finally`,
whatever happens (exceptions, KeyboardInterrupt).

Attention storage: per U-Net call, each cross-attention layer's probabilities are averaged over heads and summed into
one running map per resolution level (on the device, fp32); at the end of the call the level means are pooled if
larger than ATTENTION_MAX_RES x ATTENTION_MAX_RES, cast to fp16 and moved to the CPU once.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

ATTENTION_MAX_RES = 64  # maps finer than 64x64 are average-pooled down to fit 64x64 (SD1.5 at 512 px is 64x64)

# Schedulers whose `sample` lives in "VE" space, x = x0 + sigma * eps (k-diffusion style; the pipeline divides the
# U-Net input by sqrt(sigma^2 + 1)). All others keep x = alpha * x0 + sigma_vp * eps with alpha^2 + sigma_vp^2 = 1.
VE_SCHEDULERS = {"EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
                 "LMSDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
                 "DPMSolverSDEScheduler"}


# --------------------------------------------------------------------------------------------- pipeline adapters
@dataclass
class Adapter:
    """What differs between SD and SDXL, in one place."""

    kind: str  # "sd" or "sdxl"
    pipe: Any
    text_encoders: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def tokenizer(self):
        return self.pipe.tokenizer if getattr(self.pipe, "tokenizer", None) is not None else self.pipe.tokenizer_2

    @property
    def vae_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @property
    def size_multiple(self) -> int:
        # SD and SDXL pipelines require multiples of 8 (check_inputs), whatever the VAE factor
        return math.lcm(8, self.vae_factor)

    def default_size(self) -> tuple[int, int]:
        if self.kind == "sdxl":
            s = self.pipe.default_sample_size
        else:
            s = self.pipe.unet.config.sample_size
        h, w = (s, s) if isinstance(s, int) else tuple(s)
        return int(h) * self.vae_factor, int(w) * self.vae_factor

    def zero_uncond(self, negative_prompt: str | None) -> bool:
        """SDXL with force_zeros_for_empty_prompt uses all-zero embeddings for a missing negative prompt."""
        return (self.kind == "sdxl" and negative_prompt is None
                and bool(self.pipe.config.get("force_zeros_for_empty_prompt", False)))

    def text_dims(self, total: int) -> list[tuple[str, int]]:
        """How the U-Net's encoder_hidden_states split into encoders (SDXL concatenates both on the last dim)."""
        dims = [(name, int(enc.config.hidden_size)) for name, enc in self.text_encoders]
        if sum(d for _, d in dims) != total:
            return [(self.text_encoders[0][0], total)]
        return dims


def get_adapter(pipe: Any) -> Adapter:
    """The adapter for a pipeline; other pipelines fail clearly."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if isinstance(pipe, StableDiffusionXLPipeline):
        kind = "sdxl"
    elif isinstance(pipe, StableDiffusionPipeline):
        kind = "sd"
    elif hasattr(pipe, "transformer"):
        raise NotImplementedError(
            f"{type(pipe).__name__} is a transformer-based (DiT/MMDiT) pipeline: tracing it is not supported yet. "
            "explainer traces StableDiffusionPipeline (SD 1.x/2.x) and StableDiffusionXLPipeline.")
    else:
        raise NotImplementedError(
            f"tracing {type(pipe).__name__} is not supported yet: explainer traces StableDiffusionPipeline "
            "(SD 1.x/2.x) and StableDiffusionXLPipeline.")
    encoders = [(n, getattr(pipe, n)) for n in ("text_encoder", "text_encoder_2") if getattr(pipe, n, None) is not None]
    return Adapter(kind, pipe, encoders)


# --------------------------------------------------------------------------------------------- attention probe
def cross_attention_probs(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                          temb: torch.Tensor | None = None, average_heads: bool = True) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) of a diffusers `Attention` layer, as AttnProcessor2_0 computes Q and K.

    Returns (batch, queries, tokens) averaged over heads, or (batch, heads, queries, tokens); fp32, rows sum to 1.
    """
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    if hidden_states.ndim == 4:
        b, c, h, w = hidden_states.shape
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    q = attn.to_q(hidden_states)
    k = attn.to_k(encoder_hidden_states)
    b, heads = q.shape[0], attn.heads
    d = k.shape[-1] // heads
    q = q.view(b, -1, heads, d).transpose(1, 2)  # (b, heads, queries, d)
    k = k.view(b, -1, heads, d).transpose(1, 2)  # (b, heads, tokens, d)
    if getattr(attn, "norm_q", None) is not None:
        q = attn.norm_q(q)
    if getattr(attn, "norm_k", None) is not None:
        k = attn.norm_k(k)
    # SDPA's default scale is 1/sqrt(head_dim); softmax in fp32 so rows sum to 1 even for fp16 models
    probs = (torch.matmul(q, k.transpose(-1, -2)).float() * d**-0.5).softmax(dim=-1)
    return probs.mean(dim=1) if average_heads else probs


class CrossAttentionProbe:
    """Attention processor for a cross-attention layer: the layer's own processor makes the output (bit-identical),
    and the attention probabilities of the conditional rows are computed beside it and handed to the recorder."""

    def __init__(self, original: Any, recorder: Recorder):
        self.original = original
        self.recorder = recorder
        params = inspect.signature(original.__call__).parameters
        self._takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self._params = set(params)

    # Same parameter names as AttnProcessor2_0, so Attention.forward filters cross_attention_kwargs the same way.
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if temb is not None:
            kwargs["temb"] = temb
        if not self._takes_any:
            kwargs = {k: v for k, v in kwargs.items() if k in self._params}
        out = self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                            attention_mask=attention_mask, **kwargs)
        rec = self.recorder
        if encoder_hidden_states is not None and rec.attention:
            n = rec.n_samples  # the conditional rows are the last n of the batch ([uncond, cond] under CFG)
            if hidden_states.shape[0] >= n:
                rec.add_attention(cross_attention_probs(attn, hidden_states[-n:], encoder_hidden_states[-n:], temb))
        return out


# --------------------------------------------------------------------------------------------- recorder
def _host(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy we own (the pipeline may reuse or free its tensor)."""
    return t.detach().to("cpu", copy=True)


def _first(args: tuple, kwargs: dict, pos: int, name: str):
    return args[pos] if len(args) > pos else kwargs.get(name)


class Recorder:
    """Collects one run. Per U-Net evaluation ("eval"): x_t in, raw U-Net output, guided prediction, x out,
    timestep, the scheduler's step index, whether it starts a new sampler step, and per-level attention maps."""

    def __init__(self, n_samples: int, latent_hw: tuple[int, int], attention: bool = True,
                 max_res: int | None = ATTENTION_MAX_RES):
        self.n_samples = n_samples
        self.latent_hw = latent_hw
        self.attention = attention
        self.max_res = max_res
        self.cfg: bool | None = None  # True when the U-Net batch holds [uncond, cond]
        self.unet_inputs: dict[str, Any] | None = None
        self.unet_calls = 0
        self.evals: list[dict[str, Any]] = []
        self.text_calls: dict[str, list[dict[str, torch.Tensor]]] = {}
        self.level_layers: dict[str, int] = {}
        self.level_source: dict[str, tuple[int, int]] = {}
        self._raw: torch.Tensor | None = None
        self._attn_now: dict[str, torch.Tensor] = {}
        self._acc: dict[int, list] = {}
        self._shapes: dict[int, tuple[int, int]] = {}

    # U-Net -------------------------------------------------------------------------------------------------
    def unet_pre(self, module, args, kwargs):
        sample = _first(args, kwargs, 0, "sample")
        if self.unet_inputs is None:
            self.cfg = sample.shape[0] == 2 * self.n_samples
            ehs = _first(args, kwargs, 2, "encoder_hidden_states")
            added = kwargs.get("added_cond_kwargs") or {}
            self.unet_inputs = {"encoder_hidden_states": _host(ehs),
                                **{f"added.{k}": _host(v) for k, v in added.items() if torch.is_tensor(v)}}
        self._acc = {}
        return None

    def unet_post(self, module, args, output):
        raw = output[0] if isinstance(output, tuple) else output.sample
        self._raw = _host(raw)
        self.unet_calls += 1
        self._attn_now = self._flush_attention() if self.attention else {}
        return None

    # attention ---------------------------------------------------------------------------------------------
    def add_attention(self, probs: torch.Tensor) -> None:
        acc = self._acc.get(probs.shape[1])
        if acc is None:
            self._acc[probs.shape[1]] = [probs, 1]
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
        for positions, (total, count) in self._acc.items():
            h, w = self.level_shape(positions)
            name = f"{h}x{w}"
            m = (total / count).view(total.shape[0], h, w, total.shape[-1])  # mean over the level's layers
            if self.max_res is not None and max(h, w) > self.max_res:
                f = 2 ** math.ceil(math.log2(max(h, w) / self.max_res))
                size = (-(-h // f), -(-w // f))
                m = F.adaptive_avg_pool2d(m.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1)  # rows still sum to 1
            out[name] = m.to(torch.float16).to("cpu")
            self.level_layers[name] = count
            self.level_source[name] = (h, w)
        self._acc = {}
        return out

    # scheduler ---------------------------------------------------------------------------------------------
    def on_step(self, model_output, timestep, sample, prev_sample, step_index, new_step: bool) -> None:
        self.evals.append({
            "timestep": float(timestep), "step_index": step_index, "new_step": new_step or not self.evals,
            "latents": _host(sample), "guided": _host(model_output), "next": _host(prev_sample),
            "raw": self._raw, "attn": self._attn_now,
        })
        self._raw, self._attn_now = None, {}

    # text encoders -----------------------------------------------------------------------------------------
    def text_hook(self, name: str):
        def hook(module, args, kwargs, output):
            pooled = getattr(output, "text_embeds", None)
            if pooled is None:
                pooled = getattr(output, "pooler_output", None)
            if pooled is None and isinstance(output, tuple) and len(output) > 1:
                pooled = output[1]
            ids = _first(args, kwargs, 0, "input_ids")
            self.text_calls.setdefault(name, []).append(
                {"ids": _host(ids), "pooled": None if pooled is None else _host(pooled)})
        return hook


def starts_new_step(scheduler: Any) -> bool:
    """Before a `scheduler.step` call: does it start a new sampler step, or finish one (2nd U-Net call)?"""
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
        model_output, timestep, sample = (_first(args, kwargs, i, n) for i, n in enumerate(names))
        out = original(*args, **kwargs)
        prev = out[0] if isinstance(out, tuple) else out.prev_sample
        recorder.on_step(model_output, timestep, sample, prev, getattr(scheduler, "step_index", None), new_step)
        return out

    return step


# --------------------------------------------------------------------------------------------- sigma and x0
def eval_sigmas(scheduler: Any, timesteps: list[float], step_indices: list[int | None]) -> torch.Tensor:
    """Noise-to-signal ratio sigma = sqrt((1 - alpha_bar) / alpha_bar) of each U-Net evaluation (k-diffusion's sigma).

    Taken from the scheduler's own sigma table where it has one (`sigmas[step_index]` before the step), else from
    alphas_cumprod at the timestep.
    """
    sig = getattr(scheduler, "sigmas", None)
    ac = scheduler.alphas_cumprod.double().cpu()
    out = []
    for t, idx in zip(timesteps, step_indices, strict=True):
        if sig is not None and idx is not None and 0 < idx <= len(sig):
            out.append(float(sig[idx - 1]))
        else:
            a = ac[min(max(int(round(t)), 0), len(ac) - 1)]
            out.append(float(((1 - a) / a).sqrt()))
    return torch.tensor(out, dtype=torch.float64)


def predict_x0(scheduler: Any, sample: torch.Tensor, model_output: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Predicted clean latents x0 from x_t and the guided prediction, batched over evaluations (dim 0).

    VE schedulers (Euler, Heun, ...): x_t = x0 + s*eps, so x0 = x_t - s*eps (epsilon) or
        x_t/(s^2+1) - v*s/sqrt(s^2+1) (v-prediction).
    VP schedulers (DDIM, DDPM, PNDM, DPM++, LCM): x_t = a*x0 + b*eps with a = 1/sqrt(1+s^2), b = s*a, so
        x0 = (x_t - b*eps)/a (epsilon) or a*x_t - b*v (v-prediction).
    (LCM's own `denoised` also applies its boundary condition c_skip*x_t + c_out*x0; this is the plain x0.)
    """
    kind = scheduler.config.get("prediction_type", "epsilon")
    x, e = sample.double(), model_output.double()
    s = sigmas.double().view(-1, *([1] * (x.ndim - 1)))
    if kind == "sample":
        x0 = e
    elif type(scheduler).__name__ in VE_SCHEDULERS:
        x0 = x - s * e if kind == "epsilon" else x / (s**2 + 1) - e * s / (s**2 + 1).sqrt()
    else:
        a = 1 / (1 + s**2).sqrt()
        x0 = (x - s * a * e) / a if kind == "epsilon" else a * x - s * a * e
    return x0.to(sample.dtype)


# --------------------------------------------------------------------------------------------- install / restore
@contextmanager
def capture(pipe: Any, adapter: Adapter, recorder: Recorder, scheduler: Any | None = None) -> Iterator[Recorder]:
    """Install the hooks for one run; everything is restored on exit, whatever happened."""
    from diffusers.models.attention_processor import Attention

    saved_scheduler = pipe.scheduler
    handles, processors = [], []
    sched, had_own_step = None, False
    try:
        if scheduler is not None:
            pipe.scheduler = scheduler
        sched = pipe.scheduler
        had_own_step = "step" in sched.__dict__
        own_step = sched.__dict__.get("step")
        sched.step = wrap_step(sched, recorder)
        handles.append(pipe.unet.register_forward_pre_hook(recorder.unet_pre, with_kwargs=True))
        handles.append(pipe.unet.register_forward_hook(recorder.unet_post))
        for name, enc in adapter.text_encoders:
            handles.append(enc.register_forward_hook(recorder.text_hook(name), with_kwargs=True))
        if recorder.attention:
            for m in pipe.unet.modules():
                if isinstance(m, Attention) and m.is_cross_attention:
                    processors.append((m, m.processor))
                    m.set_processor(CrossAttentionProbe(m.processor, recorder))
        yield recorder
    finally:
        for m, p in reversed(processors):
            m.set_processor(p)
        for h in handles:
            h.remove()
        if sched is not None:
            if had_own_step:
                sched.step = own_step
            else:
                sched.__dict__.pop("step", None)
        if pipe.scheduler is not saved_scheduler:
            pipe.scheduler = saved_scheduler
