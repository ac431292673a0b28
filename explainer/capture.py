"""The capture: what `trace()` hooks into a diffusers pipeline for one run, and how it is all put back.

Everything family-specific comes from the pipeline's adapter (explainer/adapters/); this module only installs:
  * a forward pre-hook / hook on the adapter's denoiser (U-Net or transformer): its inputs as the adapter reads them
    and its raw output (the cond/uncond predictions, split by the adapter);
  * a wrapper on `scheduler.step` that keeps the method's signature (pipelines inspect it to decide whether to pass
    `generator`/`eta`): the guided prediction, x_t in, x_t-1 out;
  * forward hooks on the text encoders: their pooled outputs;
  * on the attention layers the adapter names, a probe processor that calls the layer's own processor for the output
    (so the output is bit-identical: SDPA / the dispatch path stays what it was) and computes the attention
    probabilities of the conditional rows beside it, from the layer's own projections and norms:
      - U-Net and PixArt cross-attention: softmax(Q K^T / sqrt(d)) over the text tokens (PixArt's T5 mask added as the
        layer gets it, so padding gets no weight);
      - SD3 joint attention: image queries x text keys (the text block of the joint softmax, renormalised over the
        text tokens, which equals a softmax over the text keys alone);
      - Flux double-stream blocks: the same, with the rotary embedding applied as the layer applies it;
      - Flux single-stream blocks: the block attends over [text; image] concatenated, so the probe splits the joint
        sequence at the text length (read from the transformer's input) and takes image queries x text keys.
`capture()` installs all of it and restores processors, hooks, `scheduler.step` and `pipe.scheduler` in `finally`,
whatever happens (exceptions, KeyboardInterrupt).

Hot path: nothing recorded leaves the pipeline's device during the run (no per-call host copies or syncs); attention
is averaged over heads and summed into one running map per group (U-Net level or DiT block) per call, then cast to
fp16; `Recorder.finish()` stacks everything and moves it to the CPU once. A step's input latents are not kept again
when they are the previous step's output (the same tensor object).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from .adapters.base import Adapter, arg

ATTENTION_MAX_RES = 64  # maps finer than 64x64 are average-pooled down to fit 64x64 (SD1.5 at 512 px is 64x64)


# --------------------------------------------------------------------------------------------- attention math
def _softmax_mean(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None,
                  average_heads: bool = True) -> torch.Tensor:
    """q (b, heads, Q, d), k (b, heads, T, d) -> softmax(q k^T / sqrt(d)) in fp32, rows sum to 1."""
    d = q.shape[-1]
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * d**-0.5
    if mask is not None:
        scores = scores + mask.float().reshape(mask.shape[0], 1, 1, -1)
    probs = scores.softmax(dim=-1)
    return probs.mean(dim=1) if average_heads else probs


def cross_attention_probs(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                          temb: torch.Tensor | None = None, average_heads: bool = True,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) of a diffusers `Attention` cross-attention layer, as AttnProcessor2_0 computes Q, K.

    attention_mask: the additive bias the layer receives (b, 1, T) or (b, T), e.g. PixArt's T5 padding mask.
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
    return _softmax_mean(q, k, attention_mask, average_heads)


def joint_attention_probs(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                          average_heads: bool = True) -> torch.Tensor:
    """SD3 (MMDiT) joint attention, image queries x text keys, as JointAttnProcessor2_0 projects and normalises them.
    The text block of the joint softmax renormalised over the text tokens (= softmax over the text keys alone)."""
    b = hidden_states.shape[0]
    heads = attn.heads
    q = attn.to_q(hidden_states)
    d = q.shape[-1] // heads
    q = q.view(b, -1, heads, d).transpose(1, 2)
    k = attn.add_k_proj(encoder_hidden_states).view(b, -1, heads, d).transpose(1, 2)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_added_k is not None:
        k = attn.norm_added_k(k)
    return _softmax_mean(q, k, None, average_heads)


def flux_attention_probs(attn: Any, image: torch.Tensor, text: torch.Tensor, rotary: Any, single: bool,
                         average_heads: bool = True) -> torch.Tensor:
    """Flux image queries x text keys. Double-stream: text keys from the layer's added projections; single-stream:
    from its own projections on the text part of the joint sequence. The rotary embedding covers [text; image]."""
    from diffusers.models.embeddings import apply_rotary_emb

    t = text.shape[1]
    q = attn.norm_q(attn.to_q(image).unflatten(-1, (-1, attn.head_dim)))
    if single:
        k = attn.norm_k(attn.to_k(text).unflatten(-1, (-1, attn.head_dim)))
    else:
        k = attn.norm_added_k(attn.add_k_proj(text).unflatten(-1, (-1, attn.head_dim)))
    if rotary is not None:
        cos, sin = rotary
        q = apply_rotary_emb(q, (cos[t:], sin[t:]), sequence_dim=1)
        k = apply_rotary_emb(k, (cos[:t], sin[:t]), sequence_dim=1)
    return _softmax_mean(q.transpose(1, 2), k.transpose(1, 2), None, average_heads)


# --------------------------------------------------------------------------------------------- probes
@functools.lru_cache(maxsize=64)
def _call_params(cls: type) -> tuple[bool, frozenset]:
    """(takes **kwargs, parameter names) of a processor class's __call__ (computed once per class, not per run)."""
    params = inspect.signature(cls.__call__).parameters
    return any(p.kind is p.VAR_KEYWORD for p in params.values()), frozenset(params)


class _Probe:
    """Wraps a layer's own processor: the output is the original processor's; the map is computed beside it."""

    def __init__(self, original: Any, recorder: Recorder, group: str | None = None):
        self.original = original
        self.recorder = recorder
        self.group = group
        self._takes_any, self._params = _call_params(type(original))

    def _filter(self, kwargs: dict) -> dict:
        return kwargs if self._takes_any else {k: v for k, v in kwargs.items() if k in self._params}


class CrossAttentionProbe(_Probe):
    """U-Net / PixArt cross-attention. group None: grouped by resolution level (number of query positions)."""

    def __init__(self, original: Any, recorder: Recorder, group: str | None = None, use_mask: bool = False):
        super().__init__(original, recorder, group)
        self.use_mask = use_mask

    # Same parameter names as AttnProcessor2_0, so Attention.forward filters cross_attention_kwargs the same way.
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if temb is not None:
            kwargs["temb"] = temb
        out = self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                            attention_mask=attention_mask, **self._filter(kwargs))
        rows = self.recorder.rows
        if encoder_hidden_states is not None and rows is not None:
            mask = attention_mask[rows] if (self.use_mask and attention_mask is not None) else None
            self.recorder.add_attention(self.group, cross_attention_probs(
                attn, hidden_states[rows], encoder_hidden_states[rows], temb, attention_mask=mask))
        return out


class JointAttentionProbe(_Probe):
    """SD3 joint attention (the image-query x text-key block), one group per transformer block."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        out = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **self._filter(kwargs))
        rows = self.recorder.rows
        if encoder_hidden_states is not None and rows is not None:
            self.recorder.add_attention(self.group, joint_attention_probs(
                attn, hidden_states[rows], encoder_hidden_states[rows]))
        return out


class FluxAttentionProbe(_Probe):
    """Flux double-stream (text in encoder_hidden_states) or single-stream (text first in the joint sequence)."""

    def __init__(self, original: Any, recorder: Recorder, group: str, single: bool):
        super().__init__(original, recorder, group)
        self.single = single

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None,
                 **kwargs):
        out = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb,
                            **self._filter(kwargs))
        rec = self.recorder
        rows = rec.rows
        if rows is not None:
            if self.single:
                x, t = hidden_states[rows], rec.n_text
                probs = flux_attention_probs(attn, x[:, t:], x[:, :t], image_rotary_emb, True)
            elif encoder_hidden_states is not None:
                probs = flux_attention_probs(attn, hidden_states[rows], encoder_hidden_states[rows],
                                             image_rotary_emb, False)
            else:
                return out
            rec.add_attention(self.group, probs)
        return out


# --------------------------------------------------------------------------------------------- recorder
def _host(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy we own (the pipeline may reuse or free its tensor)."""
    return t.detach().to("cpu", copy=True)


def _own(t: Any) -> Any:
    """A device copy we own (no host transfer, no sync)."""
    return t.detach().clone() if torch.is_tensor(t) else t


class Recorder:
    """Collects one run. Per denoiser evaluation ("eval", one `scheduler.step` call): x_t in, the raw denoiser
    outputs of that step's calls, the guided prediction, x out, timestep, the scheduler's step index, whether it
    starts a new sampler step, and per-group attention maps. All on the pipeline's device until `finish()`."""

    def __init__(self, n_samples: int, latent_hw: tuple[int, int], attention: bool = True,
                 max_res: int | None = ATTENTION_MAX_RES, adapter: Adapter | None = None):
        self.n_samples = n_samples
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
            m = (total / count).view(total.shape[0], h, w, total.shape[-1])  # mean over the group's layers
            if self.max_res is not None and max(h, w) > self.max_res:
                f = 2 ** math.ceil(math.log2(max(h, w) / self.max_res))
                size = (-(-h // f), -(-w // f))
                m = F.adaptive_avg_pool2d(m.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1)  # rows still sum to 1
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
        """Everything stacked over evaluations and moved to the CPU, once."""
        ev = self.evals
        if not ev:
            raise RuntimeError("the pipeline ran no denoising step: nothing was recorded")
        nxt = torch.stack([e["next"] for e in ev])
        lat = torch.stack([e["latents"] if e["latents"] is not None else ev[j - 1]["next"] for j, e in enumerate(ev)])
        n_calls = len(ev[0]["raws"])
        out = {
            "timesteps": [float(t) for t in torch.stack([torch.as_tensor(e["timestep"], dtype=torch.float64)
                                                         .to("cpu") for e in ev]).tolist()],
            "step_index": [e["step_index"] for e in ev], "new_step": [e["new_step"] for e in ev],
            "latents": lat.cpu(), "next": nxt.cpu(), "guided": torch.stack([e["guided"] for e in ev]).cpu(),
            "raws": [torch.stack([e["raws"][k] for e in ev]).cpu() for k in range(n_calls)],
            "attn": {name: torch.stack([e["attn"][name] for e in ev]).cpu() for name in ev[0]["attn"]},
            "inputs": [{"text": None if c["text"] is None else c["text"].cpu(),
                        "extra": {k: v.cpu() for k, v in c["extra"].items()}} for c in self.first_inputs],
            "extra_records": {k: [v.cpu() if torch.is_tensor(v) else v for v in vs]
                              for k, vs in self.extra_records.items()},
        }
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
    handles, processors = [], []
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
            for m, probe in adapter.probes(recorder):
                processors.append((m, m.processor))
                m.set_processor(probe)
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
