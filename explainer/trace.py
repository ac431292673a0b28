"""Trace one generation: run a real diffusers pipeline once and keep every intermediate a lesson needs.

    tr = trace(pipe, "a red circle left of a blue square", seed=0, steps=25, cfg=7.5)
    tr.image, tr.tokens, tr.steps[i].x0, tr.attention(token="circle"), tr.decode(10), tr.save("run.safetensors")

The capture lives in `explainer.capture` (pipeline families in `explainer.adapters`, latent math in
`explainer.latents`); this module runs it, validates the arguments first, and packs the
result into a `Trace` (saved as one safetensors file whose header carries the JSON metadata; never pickle).
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .adapters import get_adapter
from .capture import ATTENTION_MAX_RES, Recorder, capture
from .latents import decode_pil, eval_sigmas, latent_space, prediction_type, to_vae_scale, x0_from
from .schedulers import make_scheduler, scheduler_name_of
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
from .words import Lookup, Word, lookup, prompt_words

FORMAT = "explainer.trace"
FORMAT_VERSION = 1
_META_KEY = "explainer.trace"


class TraceFileError(ValueError):
    """A trace file that cannot be read back: truncated, modified, or not a trace at all."""


class StepIndexError(IndexError, ValueError):
    """A step index out of range (an IndexError for sequence protocols, a ValueError like other bad input)."""


# --------------------------------------------------------------------------------------------- tokens
class Token(str):
    """One position of the text encoder's input. Compares and prints as its text without tokenizer markers ("red");
    carries .index (position = attention column), .id, .raw (the tokenizer's piece, e.g. "red</w>"),
    .special (start/end of text), .padding (filler after the end; the U-Net still attends to it), and .start/.end
    (the characters of the prompt it comes from; None for special tokens, padding, or old traces).
    The prompt's words and the positions each spans: `Trace.words` (explainer.words)."""

    index: int
    id: int
    raw: str
    special: bool
    padding: bool
    start: int | None
    end: int | None

    def __new__(cls, text: str, index: int, id: int, raw: str, special: bool, padding: bool,
                start: int | None = None, end: int | None = None) -> Token:
        obj = super().__new__(cls, text)
        obj.index, obj.id, obj.raw, obj.special, obj.padding = index, int(id), raw, bool(special), bool(padding)
        obj.start, obj.end = (None, None) if start is None or end is None else (int(start), int(end))
        return obj

    @property
    def kind(self) -> str:
        return "padding" if self.padding else "special" if self.special else "word"

    def moved(self, offset: int) -> Token:
        """The same token at position index + offset (a second encoder's part after the first's)."""
        return Token(str(self), self.index + offset, self.id, self.raw, self.special, self.padding, self.start,
                     self.end)

    def __repr__(self) -> str:
        mark = {"padding": "·pad", "special": "·special", "word": ""}[self.kind]
        return f"{str.__repr__(self)}{mark}"

    def __reduce__(self):  # copy/deepcopy support (no pickling of traces happens anywhere)
        return (Token, (str(self), self.index, self.id, self.raw, self.special, self.padding, self.start, self.end))

    def to_dict(self) -> dict:
        d = {"text": str(self), "index": self.index, "id": self.id, "raw": self.raw, "special": self.special,
             "padding": self.padding}
        if self.start is not None:
            d["start"], d["end"] = self.start, self.end
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Token:
        return cls(d["text"], d["index"], d["id"], d["raw"], d["special"], d["padding"], d.get("start"), d.get("end"))


def tokenize(tokenizer: Any, text: str) -> tuple[list[Token], list[str]]:
    """Tokens exactly as the pipeline feeds them to the text encoder (padded to max length, truncated), and the
    words the truncation dropped (the pipeline's own rule: ids between max_length-1 and the final end token).

    Each token keeps the characters of `text` it comes from (.start/.end, from a fast tokenizer's offset mapping),
    which is how `explainer.words` maps the prompt's words to token positions for any tokenizer."""
    from .words import clean_piece, split_words

    max_len = tokenizer.model_max_length
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(text, padding="max_length", max_length=max_len, truncation=True,
                    **({"return_offsets_mapping": True} if fast else {}))
    ids, mask = enc["input_ids"], enc["attention_mask"]
    offsets = enc.get("offset_mapping") if fast else None
    special_ids = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    tokens = []
    for i, (tid, piece, m) in enumerate(zip(ids, pieces, mask, strict=True)):
        special, padding = tid in special_ids and m == 1, m == 0
        text_i = tokenizer.convert_tokens_to_string([piece]).strip() or piece
        text_i = text_i if special or padding else clean_piece(text_i) or text_i  # no "</w>" whatever the decoder
        s, e = offsets[i] if offsets is not None and not special and not padding else (None, None)
        tokens.append(Token(text_i, i, tid, piece, special=special, padding=padding, start=s, end=e))
    dropped: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = tokenizer(text, padding="longest", truncation=False)["input_ids"]
    if len(full) > max_len:
        kept_end = max((t.end for t in tokens if t.end is not None), default=None)
        if kept_end is not None:  # whole words, as the user wrote them
            dropped = [w for w, ws, we in split_words(text) if we > kept_end]
        else:
            dropped = [tokenizer.convert_tokens_to_string([p]).strip()
                       for p in tokenizer.convert_ids_to_tokens(full[max_len - 1:-1])]
    return tokens, dropped


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
        return lookup(token, self.words, self._tokens)

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

    def attention_maps(self, step: int | None = None, level: str | int | None = None) -> torch.Tensor:
        """(h, w, tokens) cross-attention probabilities: mean over heads and the level's layers; `step` None = mean
        over steps; `level` None = every level upsampled (bilinear) to the finest and averaged, levels equally."""
        names = self._level_names(level)
        s = None if step is None else check_step_index(step, self._n_steps)
        maps = []
        for name in names:
            a = self._t[f"attention.{name}"]
            maps.append(a[s].float() if s is not None else a.float().mean(0))
        if len(maps) == 1:
            return maps[0]
        h, w = maps[0].shape[:2]
        up = [F.interpolate(m.permute(2, 0, 1)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
              if m.shape[:2] != (h, w) else m.permute(2, 0, 1) for m in maps]
        return torch.stack(up).mean(0).permute(1, 2, 0)

    def attention(self, token: str | int, step: int | None = None, level: str | int | None = None) -> torch.Tensor:
        """2D map (h, w) of how much each latent position attends to `token`: a word of the prompt
        (case-insensitive, e.g. "fox" or "Autumn"; a phrase "red fox"), a token position (int), or a `Token`/`Word`.

        A word the tokenizer splits into several pieces ("autumn" -> "aut" + "umn</w>"), a word repeated in the
        prompt, or a word seen by several text encoders (SD3's CLIP and T5 parts) gives the sum of the maps of all
        its positions; `tr.lookup(token).title` says which were summed (the figures print it). A word that is not
        in the prompt raises ValueError listing the prompt's words. step/level as in `attention_maps`. Values are
        probabilities over the prompt's tokens (every position's row sums to 1).
        """
        pos = list(self.lookup(token).positions)
        names = self._level_names(level)
        s = None if step is None else check_step_index(step, self._n_steps)
        maps = []
        for name in names:
            a = self._t[f"attention.{name}"][..., pos].float().sum(-1)  # (S, h, w)
            maps.append(a[s] if s is not None else a.mean(0))
        if len(maps) == 1:
            return maps[0]
        size = maps[0].shape
        up = [F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
              if m.shape != size else m for m in maps]
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
        from safetensors.torch import save_file

        path = _check_save_path(path)
        tensors = {k: v.contiguous() for k, v in self._t.items()}
        meta = dict(self._meta, format=FORMAT, version=FORMAT_VERSION)
        meta["checksum"] = _checksum(tensors, meta)
        save_file(tensors, str(path), metadata={_META_KEY: json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | Path, pipe: Any = None) -> Trace:
        """Read a file written by `save`. Raises TraceFileError (a ValueError) for a truncated, modified or foreign
        file. Pass `pipe` (or attach later) to decode steps."""
        path = Path(path)
        if not path.is_file():
            raise TraceFileError(f"no trace file at {str(path)!r}")
        meta = _read_meta(path)  # the header alone: a foreign file is refused before its body is read
        from safetensors.torch import load as st_load

        try:
            tensors = st_load(path.read_bytes())
        except Exception as err:  # safetensors' own error for bad offsets / truncation
            raise TraceFileError(f"{path} is damaged (truncated or modified): {err}") from None
        if _checksum(tensors, meta) != meta.get("checksum"):
            raise TraceFileError(f"{path} was modified or corrupted: its tensors or settings do not match the "
                                 "checksum written when it was saved")
        _check_layout(tensors, meta, path)
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


def _checksum(tensors: dict[str, torch.Tensor], meta: dict | None = None) -> str:
    """sha256 over the JSON metadata (everything but the checksum itself: prompt, seed, settings, tokens) and every
    tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    if meta is not None:
        h.update(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode())
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


_MAX_HEADER = 100_000_000  # safetensors' own limit for the JSON header


def _check_save_path(path: str | Path) -> Path:
    """Where `save` writes: a file path whose folder exists, not a folder."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise ValueError(f"path must be a file name (str or Path), got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder; give a file name, e.g. {str(path / 'trace.safetensors')!r}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot save to {str(path)!r}: the folder {str(path.parent)!r} does not exist "
                         "(create it first)")
    return path


def _read_meta(path: Path) -> dict:
    """Parse the safetensors header ourselves, reading only it: 8-byte little-endian length, then JSON."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) < 8:
            raise TraceFileError(f"{path} is not a trace file (only {len(first)} bytes)")
        if first[:1] == b"\x80" or first[:2] == b"PK":  # a pickle (torch.save, pickle.dump) or a zip archive
            raise TraceFileError(f"{path} is a pickle / torch.save file, not a trace, whatever its name: explainer "
                                 "never reads pickles. Make a trace with ex.trace(...) and save it with "
                                 "tr.save('name.safetensors')")
        (n,) = struct.unpack("<Q", first)
        if n > size - 8:
            raise TraceFileError(f"{path} is truncated (or not a trace): its header says {n} bytes, the file has "
                                 f"{size - 8}")
        if n > _MAX_HEADER:
            raise TraceFileError(f"{path} is not an explainer trace (a {n}-byte header)")
        head = f.read(n)
    try:
        header = json.loads(head)
        meta = json.loads(header["__metadata__"][_META_KEY])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise TraceFileError(f"{path} is not an explainer trace (no readable trace metadata in its header)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TraceFileError(f"{path} is not an explainer trace")
    if meta.get("version") != FORMAT_VERSION:
        raise TraceFileError(f"{path} is a trace of format version {meta.get('version')}; this explainer reads "
                             f"version {FORMAT_VERSION}")
    for key in ("settings", "tokens", "levels", "text_encoders", "checksum"):
        if key not in meta:
            raise TraceFileError(f"{path} is damaged: its metadata lacks {key!r}")
    return meta


def _check_layout(tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
    need = ["timesteps", "sigmas", "latents", "noise_cond", "noise_guided", "x0", "image"]
    missing = [k for k in need if k not in tensors]
    if "latents_next" not in tensors and "latents_final" not in tensors:
        missing.append("latents_final")
    if missing:
        raise TraceFileError(f"{path} is damaged: tensors {missing} are missing")
    n = tensors["timesteps"].shape[0]
    for k in need[1:6] + [k for k in ("latents_next",) if k in tensors] + [f"attention.{lv}" for lv in meta["levels"]]:
        if k not in tensors or tensors[k].shape[0] != n:
            raise TraceFileError(f"{path} is damaged: tensor {k!r} does not have one entry per step ({n})")


# --------------------------------------------------------------------------------------------- running
def _check_scheduler_steps(sched: Any, steps: int) -> None:
    limit = int(sched.config.get("num_train_timesteps", 1000))
    if type(sched).__name__ == "LCMScheduler":
        limit = min(limit, int(sched.config.get("original_inference_steps", 50)))
    if steps > limit:
        raise ValueError(f"steps must be at most {limit} for the {type(sched).__name__} sampler, got {steps}")


def _model_id(pipe: Any) -> str | None:
    return (getattr(pipe, "explainer_model_id", None) or getattr(pipe, "name_or_path", None)
            or pipe.config.get("_name_or_path") or None)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _run(pipe: Any, prompts: list[str], seeds: list[int], single: bool, steps: int, cfg: float,
         negative_prompt: str | None, scheduler: str | None, height: int | None, width: int | None,
         attention: bool, attention_max_res: int | None, true_cfg: float = 1.0,
         max_bytes: int | None = None, control: dict | None = None) -> list[Trace]:
    adapter = get_adapter(pipe)
    # ---- every check before any heavy work
    prompts = [check_prompt(p, "prompt" if single else f"prompts[{i}]") for i, p in enumerate(prompts)]
    negative_prompt = check_optional_prompt(negative_prompt, "negative_prompt")
    seeds = [check_seed(s, "seed") for s in seeds]
    steps = check_steps(steps, "steps")
    cfg = check_cfg(cfg, "cfg")
    true_cfg = check_cfg(true_cfg, "true_cfg")
    scheduler = adapter.check_sampler(scheduler)
    height, width = check_image_size(pipe, height, width, adapter.size_multiple, batch=len(prompts))
    attention = check_bool(attention, "attention")
    if attention_max_res is not None and (isinstance(attention_max_res, bool) or not isinstance(attention_max_res, int)
                                          or attention_max_res < 1):
        raise ValueError(f"attention_max_res must be None (never pool) or a positive int, got {attention_max_res!r}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes must be None (no limit) or a positive int (bytes), got {max_bytes!r}")
    adapter.check_guidance(cfg, negative_prompt, true_cfg)
    control_call = adapter.check_control(control or {}, len(prompts))  # ControlNet: image=, scale, guess mode
    sched = make_scheduler(scheduler, pipe.scheduler.config) if scheduler else None
    used = sched if sched is not None else pipe.scheduler
    _check_scheduler_steps(used, steps)

    cfg_on = adapter.cfg_on(cfg, negative_prompt, true_cfg)
    zero_uncond = cfg_on and adapter.zero_uncond(negative_prompt)
    notes = adapter.guidance_notes(cfg, cfg_on, negative_prompt, zero_uncond)
    if not cfg_on and negative_prompt is not None:
        warnings.warn("negative_prompt is ignored: this run makes no unconditional pass "
                      + ("(Flux uses it only with true_cfg > 1)" if adapter.family == "flux" else "(cfg <= 1)"),
                      UserWarning, 3)
    check_vocabulary(pipe, prompts, "prompt", stacklevel=3)  # words the tokenizer cannot write: a warning
    per_prompt = []
    for p in prompts:
        toks, dropped, groups = adapter.tokens(p)
        warn_dropped_words(dropped, len(toks), "prompt", stacklevel=3)
        per_prompt.append((toks, dropped, groups))
    neg_tokens = []
    if cfg_on and not zero_uncond:
        if negative_prompt:
            check_vocabulary(pipe, [negative_prompt], "negative_prompt", stacklevel=3)
        neg_tokens, neg_dropped, _ = adapter.tokens(negative_prompt or "")
        warn_dropped_words(neg_dropped, len(neg_tokens), "negative_prompt", stacklevel=3)
    if any(not p.strip() for p in prompts) and cfg_on:
        notes.append("the prompt is empty: it is the unconditional prompt, so cond and uncond coincide"
                     + ("" if not zero_uncond else " (except SDXL's zeroed uncond)"))

    vf = adapter.vae_factor
    dh, dw = adapter.default_size()
    H, W = height or dh, width or dw
    n = len(prompts)
    if max_bytes is not None:
        evals = steps * (2 if hasattr(used, "state_in_first_order") else 1) + 1
        per = adapter.bytes_per_eval(n, (H // vf, W // vf), _latent_channels(pipe), attention,
                                     len(per_prompt[0][0]), attention_max_res)
        estimate = evals * per + n * H * W * 3
        if estimate > max_bytes:
            raise ValueError(
                f"max_bytes={max_bytes}: this capture would keep about {estimate:,} bytes ({estimate / 1e6:.1f} MB: "
                f"{evals} evaluations x {per:,} bytes, attention={'on' if attention else 'off'}); lower steps, "
                "pass attention=False or a smaller attention_max_res, or raise max_bytes")
    generator = (torch.Generator().manual_seed(seeds[0]) if single
                 else [torch.Generator().manual_seed(s) for s in seeds])
    neg = negative_prompt if single or negative_prompt is None else [negative_prompt] * n
    call = dict(prompt=prompts[0] if single else prompts, num_inference_steps=steps, generator=generator,
                height=height, width=width, **adapter.call_kwargs(cfg, neg, true_cfg), **control_call)
    rec = Recorder(n, (H // vf, W // vf), attention, attention_max_res, adapter)
    with capture(pipe, adapter, rec, sched):
        used = pipe.scheduler
        out = pipe(**call)
        images = out.images
    return _pack(pipe, adapter, used, rec, images, prompts, seeds, per_prompt, neg_tokens, dict(
        negative_prompt=negative_prompt, steps=steps, cfg=cfg, cfg_applied=bool(rec.cfg),
        scheduler=scheduler or scheduler_name_of(used), height=H, width=W, attention_max_res=attention_max_res,
        notes=notes, batch_size=n, **({"true_cfg": true_cfg} if adapter.family == "flux" else {})))


def _latent_channels(pipe: Any) -> int:
    return int(pipe.vae.config.latent_channels)


def _pack(pipe, adapter, sched, rec, images, prompts, seeds, per_prompt, neg_tokens, common) -> list[Trace]:
    data = rec.finish()  # everything on the CPU now, stacked over evaluations
    n, cfg = len(prompts), bool(rec.cfg)
    E = len(data["timesteps"])
    starts = torch.tensor(data["new_step"])
    step_of = starts.long().cumsum(0) - 1
    S = int(step_of[-1]) + 1
    first = starts.nonzero().flatten()
    last = torch.cat([first[1:] - 1, torch.tensor([E - 1])])
    hw = rec.latent_hw
    lat = adapter.to_grid(data["latents"], hw)  # (E, n, C, h, w)
    nxt = adapter.to_grid(data["next"], hw)
    guided = adapter.to_grid(data["guided"], hw)
    uncond, cond = adapter.split_raw(data["raws"], n, bool(rec.cfg_batch) or cfg)
    cond = adapter.to_grid(cond, hw)
    uncond = None if uncond is None else adapter.to_grid(uncond, hw)
    ts = data["timesteps"]
    space, pred = latent_space(sched), prediction_type(sched)
    sig = eval_sigmas(sched, ts, data["step_index"])
    x0 = x0_from(space, pred, lat[first].flatten(0, 1), guided[first].flatten(0, 1),
                 sig[first].repeat_interleave(n)).view(S, n, *lat.shape[2:])
    ts_t = torch.tensor(ts, dtype=torch.float64)
    groups = adapter.attention_groups()
    if groups:
        levels = [g for g in groups if g in data["attn"]]
    else:
        levels = list(data["attn"])
        levels.sort(key=lambda name: -rec.level_source[name][0] * rec.level_source[name][1])
    attn = {}
    for name in levels:
        a = data["attn"][name]  # (E, n, h, w, T) fp16
        if E != S:  # several evaluations per step: average them into the step
            summed = torch.zeros((S, *a.shape[1:]), dtype=torch.float32).index_add_(0, step_of, a.float())
            a = (summed / torch.bincount(step_of, minlength=S).view(-1, 1, 1, 1, 1)).to(torch.float16)
        attn[name] = a
    inputs = data["inputs"]
    extra = inputs[0]["extra"]
    uncond_text = inputs[1]["text"] if len(inputs) > 1 else None
    states = adapter.text_states(inputs[0]["text"], uncond_text, n, cfg)
    pooled = adapter.pooled_states(extra, n, cfg)
    settings_base = dict(
        pipeline=type(pipe).__name__, family=adapter.family, denoiser=type(adapter.denoiser).__name__,
        attention_group=adapter.group_label, model_id=_model_id(pipe), scheduler_class=type(sched).__name__,
        scheduler_config=_jsonable(dict(sched.config)), prediction_type=pred, latent_space=space,
        latent_shape=list(lat.shape[2:]), vae_scale_factor=adapter.vae_factor, dtype=str(adapter.dtype),
        device=str(pipe.device), attention=rec.attention, unet_calls=rec.unet_calls, denoiser_calls=rec.unet_calls,
        n_evals=E, generator="torch.Generator('cpu').manual_seed(seed)", versions=_versions(),
    )
    encoders = [name for name in adapter.text_encoder_names
                if name in states or name in pooled or rec.text_calls.get(name)]
    traces = []
    for b in range(n):
        t: dict[str, torch.Tensor] = {
            "timesteps": ts_t[first], "sigmas": sig[first], "latents": lat[first, b],
            "noise_cond": cond[first, b], "noise_guided": guided[first, b], "x0": x0[:, b],
        }
        # x after each step is the next step's input: keep only the last one apart (the full chain when a
        # pipeline changed the latents between steps, so nothing recorded is lost)
        if torch.equal(nxt[last[:-1], b], lat[first[1:], b]):
            t["latents_final"] = nxt[last[-1:], b]
        else:
            t["latents_next"] = nxt[last, b]
        if uncond is not None:
            t["noise_uncond"] = uncond[first, b]
        if E != S:
            t.update({"evals.step": step_of, "evals.timesteps": ts_t, "evals.sigmas": sig, "evals.latents": lat[:, b],
                      "evals.noise_cond": cond[:, b], "evals.noise_guided": guided[:, b]})
            if not torch.equal(nxt[:-1, b], lat[1:, b]):
                t["evals.latents_next"] = nxt[:, b]
            if uncond is not None:
                t["evals.noise_uncond"] = uncond[:, b]
        for name in levels:
            t[f"attention.{name}"] = attn[name][:, b]
        for enc_name, (c, u) in states.items():
            t[f"text.{enc_name}.cond"] = c[b]
            if u is not None:
                t[f"text.{enc_name}.uncond"] = u[b]
        for enc_name, calls in rec.text_calls.items():
            if calls and calls[0]["pooled"] is not None:
                t[f"text.{enc_name}.cond_pooled"] = calls[0]["pooled"][b]
            if cfg and len(calls) > 1 and calls[1]["pooled"] is not None:
                t[f"text.{enc_name}.uncond_pooled"] = calls[1]["pooled"][b]
        for enc_name, (c, u) in pooled.items():  # what the denoiser actually got
            t[f"text.{enc_name}.cond_pooled"] = c[b]
            if u is not None:
                t[f"text.{enc_name}.uncond_pooled"] = u[b]
        t.update(adapter.pack_extra(data, n, cfg, b))
        t["image"] = torch.from_numpy(np.array(images[b].convert("RGB"), dtype=np.uint8))
        t = {k: v.contiguous().clone() for k, v in t.items()}
        settings = dict(settings_base, prompt=prompts[b], seed=seeds[b], **common, **adapter.settings(extra, n, cfg, b))
        toks, dropped, token_groups = per_prompt[b]
        meta = {"settings": settings, "tokens": [x.to_dict() for x in toks],
                "negative_tokens": [x.to_dict() for x in neg_tokens], "dropped_tokens": dropped,
                "text_encoders": encoders, "token_groups": token_groups,
                "levels": {name: {"size": list(attn[name].shape[2:4]), "source_size": list(rec.level_source[name]),
                                  "layers": rec.level_layers[name]} for name in levels}}
        traces.append(Trace(t, meta, pipe))
    return traces


def _versions() -> dict[str, str]:
    import diffusers
    import transformers

    from . import __version__

    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "explainer": __version__}


def trace(pipe: Any, prompt: str, seed: int = 0, steps: int = 25, cfg: float = 7.5,
          negative_prompt: str | None = None, scheduler: str | None = None, height: int | None = None,
          width: int | None = None, attention: bool = True, *,
          attention_max_res: int | None = ATTENTION_MAX_RES, true_cfg: float = 1.0,
          max_bytes: int | None = None, control_image: Any = None, controlnet_conditioning_scale: float = 1.0,
          guess_mode: bool = False) -> Trace:
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
    true_cfg: Flux only: true classifier-free guidance scale (> 1 needs negative_prompt; the transformer then also
        runs on the negative prompt each step). For Flux, `cfg` is the guidance embedding (not CFG).
    max_bytes: refuse, before the run, a capture whose estimated size exceeds this many bytes (None = no limit).
    control_image, controlnet_conditioning_scale, guess_mode: ControlNet pipelines only (load_pipeline(controlnet=...)):
        the control map (PIL image or (h, w, 3) array), passed to the pipeline as image=, and the pipeline's own
        scale / guess-mode arguments; the trace then holds the map ("control.image") and, per step, each ControlNet
        residual's norm ("controlnet.norm") and magnitude map ("controlnet.map.<name>").
    Transformer pipelines (PixArt, SD3, Flux) take the flow/DiT samplers their adapter lists ("flow_euler", ...);
    their attention maps are grouped by block ("block 0", "double 3", "single 7") instead of U-Net level.
    Every argument is checked before any heavy work (ValueError naming the parameter).
    """
    return _run(pipe, [prompt], [seed], True, steps, cfg, negative_prompt, scheduler, height, width, attention,
                attention_max_res, true_cfg, max_bytes, _control(control_image, controlnet_conditioning_scale,
                                                                 guess_mode))[0]


def _control(image: Any, scale: float, guess_mode: bool) -> dict | None:
    if image is None and scale == 1.0 and guess_mode is False:
        return None
    return {"control_image": image, "controlnet_conditioning_scale": scale, "guess_mode": guess_mode}


def trace_batch(pipe: Any, prompts: str | Sequence[str], seeds: int | Sequence[int] = 0, steps: int = 25,
                cfg: float = 7.5, negative_prompt: str | None = None, scheduler: str | None = None,
                height: int | None = None, width: int | None = None, attention: bool = True, *,
                attention_max_res: int | None = ATTENTION_MAX_RES, true_cfg: float = 1.0,
                max_bytes: int | None = None, control_image: Any = None, controlnet_conditioning_scale: float = 1.0,
                guess_mode: bool = False) -> list[Trace]:
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
    return _run(pipe, p_list, s_list, False, steps, cfg, negative_prompt, scheduler, height, width, attention,
                attention_max_res, true_cfg, max_bytes, _control(control_image, controlnet_conditioning_scale,
                                                                 guess_mode))


# --------------------------------------------------------------------------------------------- embeddings
@dataclass
class PromptEmbeddings:
    """Text-encoder outputs for many prompts: what the U-Net would see for each (for maps of meaning, UMAP...)."""

    prompts: list[str]
    tokens: list[list[Token]]  # the denoiser's text positions per prompt (all encoders' parts, as in a Trace)
    hidden_states: dict[str, torch.Tensor]  # encoder name -> (N, T, D) per-token states as the denoiser gets them
    pooled: dict[str, torch.Tensor]  # encoder name -> (N, D') pooled output (end-of-text token, projected if any)
    mask: torch.Tensor  # (N, T) bool: True at real (non-padding) tokens of the first encoder
    masks: dict[str, torch.Tensor] | None = None  # encoder name -> (N, T_encoder) bool, for every encoder

    def mean_tokens(self, encoder: str | None = None) -> torch.Tensor:
        """(N, D) mean over each prompt's real tokens: a simple per-prompt vector besides the pooled one."""
        name = encoder or next(iter(self.hidden_states))
        h = self.hidden_states[name]
        m = (self.masks or {}).get(name, self.mask).to(h.dtype).unsqueeze(-1)
        return (h * m).sum(1) / m.sum(1).clamp(min=1)


def encode_prompts(pipe: Any, prompts: Sequence[str], batch_size: int = 64) -> PromptEmbeddings:
    """Embed many prompts at once with the pipeline's own `encode_prompt` (no guidance branch)."""
    adapter = get_adapter(pipe)
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    prompts = [check_prompt(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    from .validation import check_steps as _positive

    batch_size = _positive(batch_size, "batch_size", maximum=100_000)
    rec = Recorder(1, (1, 1), attention=False)
    hidden: dict[str, list[torch.Tensor]] = {}
    pooled: dict[str, list[torch.Tensor]] = {}
    handles = [enc.register_forward_hook(rec.text_hook(name), with_kwargs=True) for name, enc in adapter.text_encoders]
    try:
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                chunk = prompts[i:i + batch_size]
                text, returned_pooled = adapter.encode_text(chunk)  # the family's own encode_prompt call
                for name, (c, _) in adapter.text_states(text, None, len(chunk), False).items():
                    hidden.setdefault(name, []).append(c.detach().cpu())
                for name, p in returned_pooled.items():
                    pooled.setdefault(name, []).append(p.detach().cpu())
    finally:
        for h in handles:
            h.remove()
    for name, calls in rec.text_calls.items():
        if name not in pooled and calls and calls[0]["pooled"] is not None:
            pooled[name] = [c["pooled"] for c in calls]
    hs = {name: torch.cat(parts).contiguous() for name, parts in hidden.items()}
    toks_spans = [adapter.tokens(p) for p in prompts]
    tokens = [toks for toks, _, _ in toks_spans]
    masks = {}
    for name, h in hs.items():
        rows = []
        for toks, _, spans in toks_spans:
            a, b = spans.get(adapter.token_span(name), (0, len(toks)))
            row = [not t.padding for t in toks[a:b]]
            rows.append(row if len(row) == h.shape[1] else [True] * h.shape[1])  # no token list: count them all
        masks[name] = torch.tensor(rows)
    mask = next(iter(masks.values()))
    return PromptEmbeddings(prompts, tokens, hs, {k: torch.cat(v) for k, v in pooled.items()}, mask, masks)
