"""Trace one generation: run a real diffusers pipeline once and keep every intermediate a lesson needs.

    tr = trace(pipe, "a red circle left of a blue square", seed=0, steps=25, cfg=7.5)
    tr.image, tr.tokens, tr.steps[i].x0, tr.attention(token="circle"), tr.decode(10), tr.save("run.safetensors")

The capture lives in `explainer.capture` (probes in `explainer.probes`, pipeline families in `explainer.adapters`,
latent math in `explainer.latents`); this module checks the arguments first, runs it, and packs the result into
`Trace`s (saved by `explainer.tracefile`: one safetensors file whose header carries the JSON metadata; never pickle).

Attention is kept for the prompt's real tokens only, plus one column with the padding's share (rows still sum to 1);
`Trace.attention_maps` gives every position back, each padding position an equal part of that column.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import tracefile
from .adapters import get_adapter
from .capture import ATTENTION_MAX_RES, Recorder, capture
from .generation import seed_generator, seed_generators
from .latents import decode_pil, to_vae_scale
from .packing import Run, pack
from .schedulers import make_scheduler, scheduler_name_of
from .tracefile import TraceFileError
from .validation import (
    check_bool,
    check_cfg,
    check_choice,
    check_image_size,
    check_optional_prompt,
    check_prompt,
    check_seed,
    check_step_index,
    check_steps,
    check_vocabulary,
    warn_dropped_words,
)
from .words import Lookup, Token, Word, lookup, prompt_words, tokenize

__all__ = ["Eval", "Step", "StepIndexError", "Trace", "TraceFileError", "Token", "tokenize", "trace", "trace_batch"]


class StepIndexError(IndexError, ValueError):
    """A step index out of range (an IndexError for sequence protocols, a ValueError like other bad input)."""


# --------------------------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class Eval:
    """One U-Net evaluation. Heun (and PNDM's first step) make two per step; other samplers one."""

    timestep: float
    sigma: float
    latents: torch.Tensor  # x_t given to scheduler.step (the U-Net saw scheduler.scale_model_input of it)
    noise_uncond: torch.Tensor | None
    noise_cond: torch.Tensor
    noise_guided: torch.Tensor
    latents_next: torch.Tensor  # what scheduler.step returned for this evaluation


@dataclass(frozen=True)
class Step:
    """One sampler step. Tensors are (C, h, w) latents-space views into the trace (no copies)."""

    index: int
    timestep: float
    sigma: float  # sqrt((1 - alpha_bar) / alpha_bar) at this step (k-diffusion's sigma)
    latents: torch.Tensor  # x_t going in
    noise_uncond: torch.Tensor | None  # U-Net prediction for the negative/empty prompt (None when cfg <= 1)
    noise_cond: torch.Tensor  # U-Net prediction for the prompt
    noise_guided: torch.Tensor  # uncond + cfg * (cond - uncond): what the scheduler used
    cfg_delta: torch.Tensor | None  # cond - uncond: the direction the prompt pushes in
    x0: torch.Tensor  # predicted clean latents from the guided prediction at this step
    latents_next: torch.Tensor  # x after the step (== the next step's latents)
    evals: tuple[Eval, ...]


class StepList(Sequence):
    def __init__(self, trace: Trace):
        self._trace = trace

    def __len__(self) -> int:
        return self._trace._n_steps

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        try:
            i = check_step_index(i, len(self), "steps[i]")
        except ValueError as err:
            raise StepIndexError(str(err)) from None
        return self._trace._step(i)

    def __iter__(self):
        return (self._trace._step(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return f"<{len(self)} steps>"


# --------------------------------------------------------------------------------------------- trace
class Trace:
    """Everything recorded in one generation. Build with `trace()`; read back with `Trace.load()`."""

    def __init__(self, tensors: dict[str, torch.Tensor], meta: dict, pipe: Any = None):
        self._t = tensors
        self._meta = meta
        self._pipe = pipe
        self._decoded: dict = {}
        self._image = None
        self._tokens = [Token.from_dict(d) for d in meta["tokens"]]
        self._negative_tokens = [Token.from_dict(d) for d in meta.get("negative_tokens", [])]
        self._words: list[Word] | None = None
        self._n_steps = int(tensors["timesteps"].shape[0])

    # basic views ---------------------------------------------------------------------------------------
    @property
    def image(self):
        """The final image (PIL), bit-identical to the untraced pipeline's."""
        if self._image is None:
            from PIL import Image

            self._image = Image.fromarray(self._t["image"].numpy())
        return self._image

    @property
    def tokens(self) -> list[Token]:
        """Every position the U-Net attends to, in order (index = attention column); .special/.padding marked."""
        return list(self._tokens)

    @property
    def words(self) -> list[Word]:
        """The prompt's words as the user wrote them, each with the token positions it spans (.positions: the
        attention columns, all text encoders together; .by_encoder: per encoder part; .pieces: the tokenizer's
        pieces, e.g. ("aut", "umn</w>")). Punctuation words (",") have .punctuation set."""
        if self._words is None:
            self._words = prompt_words(self.prompt, self._tokens, self._meta.get("token_groups"))
        return list(self._words)

    def lookup(self, token: str | int) -> Lookup:
        """What `attention(token)` sums: the positions, the word's label and a note such as
        "2 pieces summed: aut + umn" (`.title` joins them for a figure)."""
        return lookup(token, self.words, self._tokens, prompt=self.prompt, dropped=self.dropped_tokens)

    @property
    def negative_tokens(self) -> list[Token]:
        """Tokens of the unconditional branch: the negative prompt, or "" (empty when SDXL uses zero embeddings)."""
        return list(self._negative_tokens)

    @property
    def dropped_tokens(self) -> list[str]:
        """Words beyond the text encoder's limit, which the model never saw."""
        return list(self._meta.get("dropped_tokens", []))

    @property
    def settings(self) -> dict:
        """seed, steps, cfg, scheduler (name, class, config), model id, sizes, dtype, device, notes, versions."""
        return json.loads(json.dumps(self._meta["settings"]))

    @property
    def prompt(self) -> str:
        return self._meta["settings"]["prompt"]

    @property
    def steps(self) -> StepList:
        return StepList(self)

    @property
    def has_uncond(self) -> bool:
        """False when cfg <= 1: the pipeline made no unconditional pass, so there is no uncond/delta."""
        return "noise_uncond" in self._t

    @property
    def nbytes(self) -> int:
        """Bytes held by the trace's tensors (latents, predictions, attention maps, embeddings, image)."""
        return sum(t.numel() * t.element_size() for t in self._t.values())

    @property
    def text_embeddings(self) -> dict[str, dict[str, torch.Tensor | None]]:
        """Per text encoder: "cond"/"uncond" per-token hidden states as the U-Net saw them (T, D), and
        "cond_pooled"/"uncond_pooled" pooled outputs (None where the encoder was not run for that branch)."""
        out = {}
        for name in self._meta["text_encoders"]:
            out[name] = {k: self._t.get(f"text.{name}.{k}") for k in ("cond", "uncond", "cond_pooled", "uncond_pooled")}
        return out

    @property
    def levels(self) -> list[str]:
        """Attention levels ("8x8", "4x4", ...), finest first."""
        return list(self._meta.get("levels", {}))

    def _next(self, i: int, prefix: str = "") -> torch.Tensor:
        """x after evaluation/step i. Stored once: it is the next entry's input latents, and only the last one
        (`latents_final`) is kept apart; a trace whose chain is not continuous keeps the full `latents_next`."""
        t = self._t
        if f"{prefix}latents_next" in t:
            return t[f"{prefix}latents_next"][i]
        lat = t[f"{prefix}latents"]
        return lat[i + 1] if i + 1 < lat.shape[0] else t["latents_final"][0]

    def _step(self, i: int) -> Step:
        t = self._t
        unc = t["noise_uncond"][i] if self.has_uncond else None
        if "evals.step" in t:
            idx = (t["evals.step"] == i).nonzero().flatten().tolist()
            evals = tuple(Eval(float(t["evals.timesteps"][j]), float(t["evals.sigmas"][j]), t["evals.latents"][j],
                               t["evals.noise_uncond"][j] if self.has_uncond else None, t["evals.noise_cond"][j],
                               t["evals.noise_guided"][j], self._next(j, "evals.")) for j in idx)
        else:
            evals = (Eval(float(t["timesteps"][i]), float(t["sigmas"][i]), t["latents"][i], unc, t["noise_cond"][i],
                          t["noise_guided"][i], self._next(i)),)
        return Step(i, float(t["timesteps"][i]), float(t["sigmas"][i]), t["latents"][i], unc, t["noise_cond"][i],
                    t["noise_guided"][i], None if unc is None else t["noise_cond"][i] - unc, t["x0"][i],
                    self._next(i), evals)

    # attention -----------------------------------------------------------------------------------------
    def _level_names(self, level: str | int | None) -> list[str]:
        names = self.levels
        if not names:
            raise ValueError("this trace has no attention maps: it was traced with attention=False")
        if level is None:
            return names
        if isinstance(level, str) and level in names:
            return [level]
        if isinstance(level, (int, np.integer)) and not isinstance(level, bool) and -len(names) <= level < len(names):
            return [names[int(level)]]
        if isinstance(level, slice) and names[level]:
            return names[level]
        if isinstance(level, (range, list, tuple)) and len(level) > 0:  # a block range, e.g. range(4, 8)
            try:
                return [self._level_names(x)[0] for x in level]
            except ValueError:
                pass
        what = "blocks" if self._meta["settings"].get("attention_group") == "block" else "levels"
        order = "in model order" if what == "blocks" else "0 = finest"
        raise ValueError(f"level must be None (all {what}), one of {names}, an index 0..{len(names) - 1} "
                         f"({order}), or (for a block range) a range/slice/list of those, got {level!r}")

    def _map(self, name: str, step: int | None) -> torch.Tensor:
        """The stored maps of one level (S, h, w, columns) as fp32: one step, or the mean over steps."""
        a = self._t[f"attention.{name}"]
        return a[step].float() if step is not None else a.float().mean(0)

    def _padding_positions(self) -> list[int]:
        kept = set(self._meta.get("attention_columns") or range(len(self._tokens)))
        return [i for i in range(len(self._tokens)) if i not in kept]

    def _columns(self, m: torch.Tensor) -> torch.Tensor:
        """(..., stored columns) -> (..., every token position): the kept columns where they were, and the padding
        column shared equally by the padding positions (so rows still sum to 1)."""
        cols = self._meta.get("attention_columns")
        if cols is None:
            return m
        out = m.new_zeros(*m.shape[:-1], len(self._tokens))
        out[..., cols] = m[..., :-1]
        pads = self._padding_positions()
        if pads:
            out[..., pads] = m[..., -1:] / len(pads)
        return out

    def _positions(self, m: torch.Tensor, pos: Sequence[int]) -> torch.Tensor:
        """(...,) the sum of positions `pos` of stored maps m (a padding position: its equal part of the padding
        column)."""
        cols = self._meta.get("attention_columns")
        if cols is None:
            return m[..., list(pos)].sum(-1)
        where = {p: j for j, p in enumerate(cols)}
        out = m[..., [where[p] for p in pos if p in where]].sum(-1)
        n_pad = sum(1 for p in pos if p not in where)
        return out + m[..., -1] * n_pad / len(self._padding_positions()) if n_pad else out

    def attention_maps(self, step: int | None = None, level: str | int | None = None) -> torch.Tensor:
        """(h, w, tokens) cross-attention probabilities: mean over heads and the level's layers; `step` None = mean
        over steps; `level` None = every level upsampled (bilinear) to the finest and averaged, levels equally.
        Padding positions share the padding's column equally (the trace keeps the prompt's real tokens apart and
        the padding's total)."""
        names = self._level_names(level)
        s = None if step is None else check_step_index(step, self._n_steps)
        maps = [self._columns(self._map(name, s)) for name in names]
        if len(maps) == 1:
            return maps[0]
        h, w = maps[0].shape[:2]
        up = [F.interpolate(m.permute(2, 0, 1)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
              if m.shape[:2] != (h, w) else m.permute(2, 0, 1) for m in maps]
        return torch.stack(up).mean(0).permute(1, 2, 0)

    def attention(self, token: str | int, step: int | None = None, level: str | int | None = None) -> torch.Tensor:
        """2D map (h, w) of how much each latent position attends to `token`: a word of the prompt
        (case-insensitive, e.g. "fox" or "Autumn"; a phrase "red fox"), a token position (int), or a `Token`/`Word`
        of this trace.

        A word the tokenizer splits ("autumn" -> "aut" + "umn</w>"), repeats, or several text encoders see (SD3's
        CLIP and T5) gives the sum of the maps of all its positions (`tr.lookup(token).title` says which). A word not
        in the prompt raises ValueError listing the prompt's words (a word the tokenizer cannot write, or one cut by
        the token limit, says so). step/level as in `attention_maps`. Values are probabilities over the prompt's
        tokens (every position's row sums to 1)."""
        s = None if step is None else check_step_index(step, self._n_steps)
        return self._attention(token, s, level)

    def attention_by_step(self, token: str | int, level: str | int | None = None) -> torch.Tensor:
        """(steps, h, w): `attention(token, step=i, level=level)` for every step i, bit for bit, in one pass."""
        return self._attention(token, slice(None), level)

    def _attention(self, token: str | int, s: int | slice | None, level: str | int | None) -> torch.Tensor:
        """A token's map at step s (an int), at every step (slice(None): steps first) or averaged over steps (None)."""
        pos = list(self.lookup(token).positions)
        maps = [self._positions(self._t[f"attention.{name}"][slice(None) if s is None else s].float(), pos)
                for name in self._level_names(level)]  # (S, h, w) or (h, w)
        maps = [m.mean(0) for m in maps] if s is None else maps  # None: the mean over steps
        if len(maps) == 1:
            return maps[0]
        size = maps[0].shape[-2:]
        up = [F.interpolate(m.reshape(-1, 1, *m.shape[-2:]), size=size, mode="bilinear",
                            align_corners=False).reshape(*m.shape[:-2], *size) if m.shape[-2:] != size else m
              for m in maps]
        return torch.stack(up).mean(0)

    # decoding ------------------------------------------------------------------------------------------
    def attach(self, pipe: Any) -> Trace:
        """Give a loaded trace a pipeline (for `decode`). Returns the trace."""
        latent_channels = int(self._t["latents"].shape[1])
        if getattr(getattr(pipe, "vae", None), "config", None) is None:
            raise ValueError(f"pipe must be a diffusers pipeline with a VAE, got {type(pipe).__name__}")
        if pipe.vae.config.latent_channels != latent_channels:
            raise ValueError(f"pipe's VAE has {pipe.vae.config.latent_channels} latent channels, this trace has "
                             f"{latent_channels}: it comes from another model ({self.settings.get('model_id')})")
        self._pipe = pipe
        self._decoded.clear()
        return self

    def decode(self, step: int, pipe: Any = None, what: str = "x0"):
        """The VAE's picture (PIL) of step `step`'s predicted clean latents (what="x0", default), its noisy input
        ("latents") or output ("latents_next"). Lazy and cached. A trace loaded from disk has no pipeline:
        pass pipe=... once (or call tr.attach(pipe))."""
        i = check_step_index(step, self._n_steps)
        check_choice(what, ("x0", "latents", "latents_next"), "what")
        if pipe is not None and pipe is not self._pipe:
            self.attach(pipe)
        if self._pipe is None:
            raise ValueError("decode needs the pipeline, and this trace has none (it was loaded from disk): "
                             "call tr.decode(step, pipe=pipe) or tr.attach(pipe) first")
        key = (i, what)
        if key not in self._decoded:
            lat = (self._next(i) if what == "latents_next" else self._t[what][i]).unsqueeze(0).double()
            if what != "x0":
                # Euler/Heun keep x = x0 + sigma*eps; the VAE expects the VP scale x / sqrt(sigma^2 + 1)
                sig = float(self._t["sigmas"][i if what == "latents" else min(i + 1, self._n_steps - 1)])
                sig = 0.0 if what == "latents_next" and i == self._n_steps - 1 else sig
                lat = to_vae_scale(lat, sig, self._meta["settings"].get("latent_space", "vp"))
            self._decoded[key] = _decode_latents(self._pipe, lat)
        return self._decoded[key]

    # saving ------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One safetensors file: the tensors, plus JSON metadata (settings, tokens, checksum) in its header."""
        return tracefile.write(path, self._t, self._meta)

    @classmethod
    def load(cls, path: str | Path, pipe: Any = None) -> Trace:
        """Read a file written by `save`. Raises TraceFileError (a ValueError) for a truncated, modified or foreign
        file. Pass `pipe` (or attach later) to decode steps."""
        tensors, meta = tracefile.read(path)
        try:
            tr = cls(tensors, meta)
        except (IndexError, KeyError, TypeError, ValueError) as err:
            raise TraceFileError(f"{path} is damaged: its metadata does not fit its tensors ({err!r})") from None
        if pipe is not None:
            tr.attach(pipe)
        return tr

    def __repr__(self) -> str:
        s = self._meta["settings"]
        return (f"Trace({s['prompt']!r}, seed={s['seed']}, steps={self._n_steps}, cfg={s['cfg']}, "
                f"scheduler={s['scheduler']!r}, levels={self.levels}, {self.nbytes / 1e6:.2f} MB)")


def _decode_latents(pipe: Any, latents: torch.Tensor):
    """Denoiser-scale latents (1, C, h, w) -> PIL, exactly as the pipeline decodes (explainer.latents.decode)."""
    return decode_pil(pipe, latents)[0]


# --------------------------------------------------------------------------------------------- running
def _check_scheduler_steps(sched: Any, steps: int) -> None:
    limit = int(sched.config.get("num_train_timesteps", 1000))
    if type(sched).__name__ == "LCMScheduler":
        limit = min(limit, int(sched.config.get("original_inference_steps", 50)))
    if steps > limit:
        raise ValueError(f"steps must be at most {limit} for the {type(sched).__name__} sampler, got {steps}")


def _check_args(pipe: Any, adapter: Any, a: dict, single: bool) -> dict:
    """Every argument checked (ValueError naming it) before any heavy work; returns them normalised."""
    a["prompts"] = [check_prompt(p, "prompt" if single else f"prompts[{i}]") for i, p in enumerate(a["prompts"])]
    a["negative_prompt"] = check_optional_prompt(a["negative_prompt"], "negative_prompt")
    a["seeds"] = [check_seed(s, "seed") for s in a["seeds"]]
    a["steps"] = check_steps(a["steps"], "steps")
    a["cfg"] = check_cfg(a["cfg"], "cfg")
    a["true_cfg"] = check_cfg(a["true_cfg"], "true_cfg")
    a["scheduler"] = adapter.check_sampler(a["scheduler"])
    a["height"], a["width"] = check_image_size(pipe, a["height"], a["width"], adapter.size_multiple,
                                               batch=len(a["prompts"]))
    a["attention"] = check_bool(a["attention"], "attention")
    a["attention_blocks"] = check_choice(a["attention_blocks"], ("all", "groups"), "attention_blocks")
    res, mb = a["attention_max_res"], a["max_bytes"]
    if res is not None and (isinstance(res, bool) or not isinstance(res, int) or res < 1):
        raise ValueError(f"attention_max_res must be None (never pool) or a positive int, got {res!r}")
    if mb is not None and (isinstance(mb, bool) or not isinstance(mb, int) or mb < 1):
        raise ValueError(f"max_bytes must be None (no limit) or a positive int (bytes), got {mb!r}")
    adapter.check_guidance(a["cfg"], a["negative_prompt"], a["true_cfg"])
    a["control_call"] = adapter.check_control(a["control"] or {}, len(a["prompts"]), a["height"], a["width"])
    a["sched"] = make_scheduler(a["scheduler"], pipe.scheduler.config) if a["scheduler"] else None
    _check_scheduler_steps(a["sched"] if a["sched"] is not None else pipe.scheduler, a["steps"])
    return a


def _text_side(pipe: Any, adapter: Any, a: dict, cfg_on: bool, zero_uncond: bool) -> tuple[list, list]:
    """Tokens of every prompt (and of the negative prompt), with the warnings a user should see before the run:
    words the tokenizer cannot write, words past the token limit (the limit the adapter's tokenizer applies)."""
    check_vocabulary(pipe, a["prompts"], "prompt", stacklevel=4)
    limit = adapter.token_limit()
    per_prompt = []
    for p in a["prompts"]:
        toks, dropped, groups = adapter.tokens(p)
        warn_dropped_words(dropped, limit, "prompt", stacklevel=4)
        per_prompt.append((toks, dropped, groups))
    neg_tokens: list = []
    if cfg_on and not zero_uncond:
        if a["negative_prompt"]:
            check_vocabulary(pipe, [a["negative_prompt"]], "negative_prompt", stacklevel=4)
        neg_tokens, neg_dropped, _ = adapter.tokens(a["negative_prompt"] or "")
        warn_dropped_words(neg_dropped, limit, "negative_prompt", stacklevel=4)
    return per_prompt, neg_tokens


def kept_columns(per_prompt: list) -> list[int] | None:
    """The text positions whose attention is kept: every position that is a real token (not padding) in any prompt
    of the batch; None when that is every position (nothing to fold into a padding column)."""
    toks = [t for t, _, _ in per_prompt]
    kept = [i for i in range(len(toks[0])) if any(not ts[i].padding for ts in toks)]
    return None if len(kept) == len(toks[0]) else kept


def _check_bytes(pipe: Any, adapter: Any, a: dict, hw: tuple[int, int], n_columns: int, n_tokens: int,
                 groups: dict | None) -> None:
    used = a["sched"] if a["sched"] is not None else pipe.scheduler
    evals = a["steps"] * (2 if hasattr(used, "state_in_first_order") else 1) + 1
    n = len(a["prompts"])
    per = adapter.bytes_per_eval(n, hw, int(pipe.vae.config.latent_channels), a["attention"], n_columns,
                                 a["attention_max_res"])
    spans = groups or {}
    text = 0  # per-token text states of each encoder over its own span, cond and uncond, fp32
    for name, enc in adapter.text_encoders:
        lo, hi = spans.get(adapter.token_span(name), (0, n_tokens))
        text += n * 2 * (hi - lo) * int(getattr(enc.config, "hidden_size", 0) or 0) * 4
    estimate = evals * per + text + n * hw[0] * hw[1] * adapter.vae_factor ** 2 * 3
    if estimate > a["max_bytes"]:
        raise ValueError(
            f"max_bytes={a['max_bytes']}: this capture would keep about {estimate:,} bytes ({estimate / 1e6:.1f} MB: "
            f"{evals} evaluations x {per:,} bytes, attention={'on' if a['attention'] else 'off'}); lower steps, "
            "pass attention=False or a smaller attention_max_res, or raise max_bytes")


def _run(pipe: Any, single: bool, **args: Any) -> list[Trace]:
    adapter = get_adapter(pipe)
    a = _check_args(pipe, adapter, args, single)
    adapter.grouped = a["attention_blocks"] == "groups"  # DiTs: runs of blocks averaged into one map each
    negative_prompt, cfg, true_cfg, n = a["negative_prompt"], a["cfg"], a["true_cfg"], len(a["prompts"])
    cfg_on = adapter.cfg_on(cfg, negative_prompt, true_cfg)
    zero_uncond = cfg_on and adapter.zero_uncond(negative_prompt)
    notes = adapter.guidance_notes(cfg, cfg_on, negative_prompt, zero_uncond)
    if not cfg_on and negative_prompt is not None:
        warnings.warn("negative_prompt is ignored: this run makes no unconditional pass "
                      + ("(Flux uses it only with true_cfg > 1)" if adapter.family == "flux" else "(cfg <= 1)"),
                      UserWarning, 3)
    per_prompt, neg_tokens = _text_side(pipe, adapter, a, cfg_on, zero_uncond)
    if any(not p.strip() for p in a["prompts"]) and cfg_on:
        notes.append("the prompt is empty: it is the unconditional prompt, so cond and uncond coincide"
                     + ("" if not zero_uncond else " (except SDXL's zeroed uncond)"))
    vf = adapter.vae_factor
    dh, dw = adapter.default_size()
    H, W = a["height"] or dh, a["width"] or dw
    columns = kept_columns(per_prompt) if a["attention"] else None
    if a["max_bytes"] is not None:
        n_tok = len(per_prompt[0][0])
        _check_bytes(pipe, adapter, a, (H // vf, W // vf), n_tok if columns is None else len(columns) + 1, n_tok,
                     per_prompt[0][2])
    generator = seed_generator(a["seeds"][0]) if single else seed_generators(a["seeds"])
    neg = negative_prompt if single or negative_prompt is None else [negative_prompt] * n
    call = dict(prompt=a["prompts"][0] if single else a["prompts"], num_inference_steps=a["steps"],
                generator=generator, height=a["height"], width=a["width"],
                **adapter.call_kwargs(cfg, neg, true_cfg), **a["control_call"])
    rec = Recorder(n, (H // vf, W // vf), a["attention"], a["attention_max_res"], adapter, columns)
    with capture(pipe, adapter, rec, a["sched"]):
        used = pipe.scheduler
        images = pipe(**call).images
    common = dict(negative_prompt=negative_prompt, steps=a["steps"], cfg=cfg, cfg_applied=bool(rec.cfg),
                  scheduler=a["scheduler"] or scheduler_name_of(used), height=H, width=W,
                  attention_max_res=a["attention_max_res"], attention_blocks=a["attention_blocks"], notes=notes,
                  batch_size=n,
                  **({"true_cfg": true_cfg} if adapter.family == "flux" else {}))
    run = Run(a["prompts"], a["seeds"], per_prompt, neg_tokens, columns, common)
    return [Trace(t, meta, pipe) for t, meta in pack(pipe, adapter, used, rec, images, run)]


def trace(pipe: Any, prompt: str, seed: int = 0, steps: int = 25, cfg: float = 7.5,
          negative_prompt: str | None = None, scheduler: str | None = None, height: int | None = None,
          width: int | None = None, attention: bool = True, *,
          attention_max_res: int | None = ATTENTION_MAX_RES, true_cfg: float = 1.0,
          max_bytes: int | None = None, control_image: Any = None, controlnet_conditioning_scale: float = 1.0,
          guess_mode: bool = False, attention_blocks: str = "all") -> Trace:
    """Run `pipe` once on `prompt` and record every denoising step.

    The image is bit-identical (same machine, same thread count) to this untraced call:

        if scheduler is not None:
            pipe.scheduler = explainer.schedulers.make_scheduler(scheduler, pipe.scheduler.config)
        pipe(prompt, negative_prompt=negative_prompt, num_inference_steps=steps, guidance_scale=cfg,
             generator=torch.Generator().manual_seed(seed), height=height, width=width).images[0]

    (`trace` installs a named scheduler only for the run; the pipeline keeps its own afterwards.)

    scheduler: None (the default) traces the pipeline's own scheduler, exactly as you set it
        (`pipe.scheduler = EulerDiscreteScheduler.from_config(...)` is what gets traced); or a short name ("ddim",
        "ddpm", "pndm", "euler", "euler_a", "dpm++2m", "dpm++2m_karras", "heun", "lcm") built from the pipeline's
        scheduler config. The trace records which: settings["scheduler"] (short name or class name),
        settings["scheduler_class"] and settings["scheduler_config"]. (Before, the default was "dpm++2m"; for the
        shipped shapes model nothing changes, its own scheduler is DPM++ 2M.)
    cfg: guidance scale; <= 1 turns classifier-free guidance off (no unconditional pass is made or recorded).
    attention: record cross-attention maps (conditional branch, mean over heads, per step and level, fp16 on CPU).
    attention_max_res: levels finer than this many positions per side are average-pooled down (None = never).
    attention_blocks: transformer pipelines: "all" (default) keeps one map per block; "groups" averages runs of
        consecutive blocks into one map each ("double 0-4", "single 5-9"; at most 4 runs per kind of block), as a
        U-Net level averages its layers. U-Net pipelines group by level either way.
    true_cfg: Flux only: true classifier-free guidance scale (> 1 needs negative_prompt; the transformer then also
        runs on the negative prompt each step). For Flux, `cfg` is the guidance embedding (not CFG).
    max_bytes: refuse, before the run, a capture whose estimated size exceeds this many bytes (None = no limit).
    control_image, controlnet_conditioning_scale, guess_mode: ControlNet pipelines only (load_pipeline(controlnet=...)):
        the control map (PIL image or (h, w, 3) array, finite), passed to the pipeline as image=, and the pipeline's
        own scale (0 to 10) / guess-mode arguments. The map must have the image's size (height x width, the model's
        own when None): a map of another size is refused, never resized or allowed to set the size. The trace holds
        the map ("control.image") and, per step, each ControlNet residual's norm ("controlnet.norm") and magnitude
        map ("controlnet.map.<name>").
    Transformer pipelines (PixArt, SD3, Flux) take the flow/DiT samplers their adapter lists ("flow_euler", ...);
    their attention maps are grouped by block ("block 0", "double 3", "single 7") instead of U-Net level.
    Every argument is checked before any heavy work (ValueError naming the parameter).
    """
    return _run(pipe, True, prompts=[prompt], seeds=[seed], steps=steps, cfg=cfg, negative_prompt=negative_prompt,
                scheduler=scheduler, height=height, width=width, attention=attention,
                attention_max_res=attention_max_res, true_cfg=true_cfg, max_bytes=max_bytes,
                attention_blocks=attention_blocks,
                control=_control(control_image, controlnet_conditioning_scale, guess_mode))[0]


def _control(image: Any, scale: float, guess_mode: bool) -> dict | None:
    if image is None and scale == 1.0 and guess_mode is False:
        return None
    return {"control_image": image, "controlnet_conditioning_scale": scale, "guess_mode": guess_mode}


def trace_batch(pipe: Any, prompts: str | Sequence[str], seeds: int | Sequence[int] = 0, steps: int = 25,
                cfg: float = 7.5, negative_prompt: str | None = None, scheduler: str | None = None,
                height: int | None = None, width: int | None = None, attention: bool = True, *,
                attention_max_res: int | None = ATTENTION_MAX_RES, true_cfg: float = 1.0,
                max_bytes: int | None = None, control_image: Any = None, controlnet_conditioning_scale: float = 1.0,
                guess_mode: bool = False, attention_blocks: str = "all") -> list[Trace]:
    """Several prompts and/or seeds in one batched pipeline call; one Trace each.

    A single prompt or seed is repeated to match the other list. Trace k equals image k of the untraced call
        pipe(prompts, negative_prompt=[negative_prompt] * n or None, num_inference_steps=steps, guidance_scale=cfg,
             generator=[torch.Generator().manual_seed(s) for s in seeds], height=height, width=width)
    (batched arithmetic may differ in the last bits from one-prompt runs, so compare with this call, not `trace`).
    scheduler: as in `trace` (None, the default, = the pipeline's own; it used to be "dpm++2m").
    """
    p_list = [prompts] if isinstance(prompts, str) else list(prompts)
    s_list = list(seeds) if isinstance(seeds, (Sequence, np.ndarray, range)) else [seeds]  # numpy arrays, as grid
    if not p_list or not s_list:
        raise ValueError("prompts and seeds must not be empty")
    if len(p_list) == 1:
        p_list = p_list * len(s_list)
    if len(s_list) == 1:
        s_list = s_list * len(p_list)
    if len(p_list) != len(s_list):
        raise ValueError(f"prompts and seeds must have the same length (or one of them be single), got "
                         f"{len(p_list)} prompts and {len(s_list)} seeds")
    return _run(pipe, False, prompts=p_list, seeds=s_list, steps=steps, cfg=cfg, negative_prompt=negative_prompt,
                scheduler=scheduler, height=height, width=width, attention=attention,
                attention_max_res=attention_max_res, true_cfg=true_cfg, max_bytes=max_bytes,
                attention_blocks=attention_blocks,
                control=_control(control_image, controlnet_conditioning_scale, guess_mode))
