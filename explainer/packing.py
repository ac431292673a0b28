"""Packing one recorded run into the tensors and metadata of one trace per image (what `trace.Trace` wraps).

    pack(pipe, adapter, sched, recorder, images, run) -> [(tensors, meta), ...]

In named steps: `evaluations` (which denoiser evaluations start a sampler step), `predictions` (latents, branches,
x0 on the latent grid), `attention_levels` (maps per level/block, one entry per step), `text_side` (per-encoder
states and pooled vectors as the denoiser saw them), then `trace_tensors` / `trace_meta` for each image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._version import __version__
from .latents import eval_sigmas, latent_space, prediction_type, x0_from


@dataclass
class Run:
    """What `trace()` decided before the run: prompts, seeds, tokens per prompt, the kept attention columns."""

    prompts: list[str]
    seeds: list[int]
    per_prompt: list[tuple[list, list[str], dict]]  # (tokens, dropped words, token groups) per prompt
    neg_tokens: list
    columns: list[int] | None  # text positions whose attention the recorder kept (None: all)
    common: dict  # settings shared by every trace of the run


@dataclass
class Evaluations:
    E: int  # denoiser evaluations (scheduler.step calls)
    S: int  # sampler steps
    step_of: torch.Tensor  # (E,) the step each evaluation belongs to
    first: torch.Tensor  # (S,) each step's first evaluation
    last: torch.Tensor  # (S,) each step's last evaluation


def evaluations(new_step: list[bool]) -> Evaluations:
    starts = torch.tensor(new_step)
    step_of = starts.long().cumsum(0) - 1
    E, S = len(new_step), int(step_of[-1]) + 1
    first = starts.nonzero().flatten()
    return Evaluations(E, S, step_of, first, torch.cat([first[1:] - 1, torch.tensor([E - 1])]))


def predictions(adapter: Any, sched: Any, rec: Any, data: dict, ev: Evaluations, n: int, cfg: bool) -> dict:
    """Latents in/out, guided, cond/uncond (E, n, C, h, w) on the latent grid; timesteps, sigmas, x0 per step."""
    hw = rec.latent_hw
    lat, nxt = adapter.to_grid(data["latents"], hw), adapter.to_grid(data["next"], hw)
    guided = adapter.to_grid(data["guided"], hw)
    uncond, cond = adapter.split_raw(data["raws"], n, bool(rec.cfg_batch) or cfg)
    ts = data["timesteps"]
    space, pred = latent_space(sched), prediction_type(sched)
    sig = eval_sigmas(sched, ts, data["step_index"])
    f = ev.first
    x0 = x0_from(space, pred, lat[f].flatten(0, 1), guided[f].flatten(0, 1),
                 sig[f].repeat_interleave(n)).view(ev.S, n, *lat.shape[2:])
    return {"lat": lat, "next": nxt, "guided": guided, "cond": adapter.to_grid(cond, hw),
            "uncond": None if uncond is None else adapter.to_grid(uncond, hw),
            "ts": torch.tensor(ts, dtype=torch.float64),
            "sig": sig, "x0": x0, "space": space, "pred": pred}


def attention_levels(adapter: Any, rec: Any, data: dict, ev: Evaluations) -> dict[str, torch.Tensor]:
    """{level or block: (S, n, h, w, columns) fp16}, in the adapter's order (U-Net levels finest first); several
    evaluations per step (Heun) are averaged into the step."""
    groups = adapter.attention_groups()
    if groups:
        levels = [g for g in groups if g in data["attn"]]
    else:
        levels = sorted(data["attn"], key=lambda name: -rec.level_source[name][0] * rec.level_source[name][1])
    out = {}
    for name in levels:
        a = data["attn"][name]  # (E, n, h, w, C) fp16
        if ev.E != ev.S:
            summed = torch.zeros((ev.S, *a.shape[1:]), dtype=torch.float32).index_add_(0, ev.step_of, a.float())
            a = (summed / torch.bincount(ev.step_of, minlength=ev.S).view(-1, 1, 1, 1, 1)).to(torch.float16)
        out[name] = a
    return out


def own_columns(a: torch.Tensor, kept: list[int] | None, tokens: list) -> tuple[torch.Tensor, list[int] | None]:
    """A batch's maps (..., len(kept) + 1) narrowed to one prompt's real tokens: the batch-kept columns that are this
    prompt's padding join the last (padding) column. Returns (maps, that prompt's kept positions)."""
    if kept is None:
        return a, None
    mine = [j for j, p in enumerate(kept) if not tokens[p].padding]
    if len(mine) == len(kept):
        return a, list(kept)
    theirs = [j for j in range(len(kept)) if j not in set(mine)] + [len(kept)]
    rest = a[..., theirs].float().sum(-1, keepdim=True).to(a.dtype)
    return torch.cat([a[..., mine], rest], -1), [kept[j] for j in mine]


def text_side(adapter: Any, rec: Any, data: dict, n: int, cfg: bool) -> dict:
    """Per-encoder (cond, uncond) states and pooled vectors as the denoiser saw them, and the encoders present."""
    inputs = data["inputs"]
    extra = inputs[0]["extra"]
    uncond_text = inputs[1]["text"] if len(inputs) > 1 else None
    states = adapter.text_states(inputs[0]["text"], uncond_text, n, cfg)
    pooled = adapter.pooled_states(extra, n, cfg)
    encoders = [name for name in adapter.text_encoder_names
                if name in states or name in pooled or rec.text_calls.get(name)]
    return {"states": states, "pooled": pooled, "encoders": encoders, "extra": extra}


def trace_tensors(b: int, p: dict, ev: Evaluations, text: dict, rec: Any, cfg: bool) -> dict:
    """The tensors of image b (without attention and image): steps, evaluations, text."""
    f, last = ev.first, ev.last
    lat, nxt, unc = p["lat"], p["next"], p["uncond"]
    t: dict[str, torch.Tensor] = {"timesteps": p["ts"][f], "sigmas": p["sig"][f], "latents": lat[f, b],
                                  "noise_cond": p["cond"][f, b], "noise_guided": p["guided"][f, b], "x0": p["x0"][:, b]}
    # x after each step is the next step's input: keep only the last one apart (the full chain when a pipeline
    # changed the latents between steps, so nothing recorded is lost)
    if torch.equal(nxt[last[:-1], b], lat[f[1:], b]):
        t["latents_final"] = nxt[last[-1:], b]
    else:
        t["latents_next"] = nxt[last, b]
    if unc is not None:
        t["noise_uncond"] = unc[f, b]
    if ev.E != ev.S:
        t.update({"evals.step": ev.step_of, "evals.timesteps": p["ts"], "evals.sigmas": p["sig"],
                  "evals.latents": lat[:, b], "evals.noise_cond": p["cond"][:, b],
                  "evals.noise_guided": p["guided"][:, b]})
        if not torch.equal(nxt[:-1, b], lat[1:, b]):
            t["evals.latents_next"] = nxt[:, b]
        if unc is not None:
            t["evals.noise_uncond"] = unc[:, b]
    for enc, (c, u) in text["states"].items():
        t[f"text.{enc}.cond"] = c[b]
        if u is not None:
            t[f"text.{enc}.uncond"] = u[b]
    for enc, calls in rec.text_calls.items():
        if calls and calls[0]["pooled"] is not None:
            t[f"text.{enc}.cond_pooled"] = calls[0]["pooled"][b]
        if cfg and len(calls) > 1 and calls[1]["pooled"] is not None:
            t[f"text.{enc}.uncond_pooled"] = calls[1]["pooled"][b]
    for enc, (c, u) in text["pooled"].items():  # what the denoiser actually got
        t[f"text.{enc}.cond_pooled"] = c[b]
        if u is not None:
            t[f"text.{enc}.uncond_pooled"] = u[b]
    return t


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _model_id(pipe: Any) -> str | None:
    return (getattr(pipe, "explainer_model_id", None) or getattr(pipe, "name_or_path", None)
            or pipe.config.get("_name_or_path") or None)


def versions() -> dict[str, str]:
    import diffusers
    import transformers

    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "explainer": __version__}


def settings_base(pipe: Any, adapter: Any, sched: Any, rec: Any, p: dict, E: int) -> dict:
    return dict(
        pipeline=type(pipe).__name__, family=adapter.family, denoiser=type(adapter.denoiser).__name__,
        attention_group=adapter.group_label, model_id=_model_id(pipe), scheduler_class=type(sched).__name__,
        scheduler_config=_jsonable(dict(sched.config)), prediction_type=p["pred"], latent_space=p["space"],
        latent_shape=list(p["lat"].shape[2:]), vae_scale_factor=adapter.vae_factor, dtype=str(adapter.dtype),
        device=str(pipe.device), attention=rec.attention, unet_calls=rec.unet_calls, denoiser_calls=rec.unet_calls,
        n_evals=E, generator="torch.Generator('cpu').manual_seed(seed)", versions=versions(),
    )


def pack(pipe: Any, adapter: Any, sched: Any, rec: Any, images: list, run: Run) -> list[tuple[dict, dict]]:
    """(tensors, meta) of each image of the run, everything on the CPU."""
    data = rec.finish()  # everything on the CPU now, stacked over evaluations
    n, cfg = len(run.prompts), bool(rec.cfg)
    ev = evaluations(data["new_step"])
    p = predictions(adapter, sched, rec, data, ev, n, cfg)
    attn = attention_levels(adapter, rec, data, ev)
    text = text_side(adapter, rec, data, n, cfg)
    base = settings_base(pipe, adapter, sched, rec, p, ev.E)
    out = []
    for b in range(n):
        toks, dropped, token_groups = run.per_prompt[b]
        t = trace_tensors(b, p, ev, text, rec, cfg)
        cols = None
        for name, a in attn.items():
            t[f"attention.{name}"], cols = own_columns(a[:, b], run.columns, toks)
        t.update(adapter.pack_extra(data, n, cfg, b))
        t["image"] = torch.from_numpy(np.array(images[b].convert("RGB"), dtype=np.uint8))
        t = {k: v.contiguous().clone() for k, v in t.items()}
        settings = dict(base, prompt=run.prompts[b], seed=run.seeds[b], **run.common,
                        **adapter.settings(text["extra"], n, cfg, b))
        meta = {"settings": settings, "tokens": [x.to_dict() for x in toks],
                "negative_tokens": [x.to_dict() for x in run.neg_tokens], "dropped_tokens": dropped,
                "text_encoders": text["encoders"], "token_groups": token_groups,
                "levels": {name: {"size": list(attn[name].shape[2:4]), "source_size": list(rec.level_source[name]),
                                  "layers": rec.level_layers[name]} for name in attn}}
        if cols is not None:
            meta["attention_columns"] = cols
        out.append((t, meta))
    return out
