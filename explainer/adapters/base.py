"""The adapter contract: everything `capture`, the recorder and `explainer.packing` need to know about a family.

A family subclasses `Adapter` and overrides only what differs (see the SD adapter for the U-Net defaults, the SD3
adapter for a transformer). Nothing outside explainer/adapters/ may switch on the pipeline class.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..words import tokenize


def arg(args: tuple, kwargs: dict, pos: int | None, name: str):
    """A call argument by position or name (positions None: keyword only)."""
    if pos is not None and len(args) > pos:
        return args[pos]
    return kwargs.get(name)


class _MaxLength:
    """A tokenizer seen with another `model_max_length` (pipelines pad T5 prompts to max_sequence_length)."""

    def __init__(self, tokenizer: Any, max_length: int):
        self._tok, self.model_max_length = tokenizer, int(max_length)

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


class Adapter:
    """One pipeline family. Attributes a subclass sets:

    family            short name ("sd", "sdxl", "pixart", "sd3", "flux")
    denoiser_name     the pipeline attribute holding the denoiser ("unet" or "transformer")
    text_encoder_names  pipeline attributes of the text encoders, in the order the pipeline runs them
    group_label       what an attention group is called in views ("level" for U-Nets, "block" for DiTs)
    batched_cfg       True when the denoiser batch is [uncond, cond] under CFG (False for Flux: separate calls)
    """

    family = "base"
    denoiser_name = "unet"
    text_encoder_names: tuple[str, ...] = ("text_encoder",)
    group_label = "level"
    batched_cfg = True

    def __init__(self, pipe: Any):
        self.pipe = pipe

    @property
    def kind(self) -> str:
        """Alias of `family` (the name the first adapter used)."""
        return self.family

    # --- modules -------------------------------------------------------------------------------------
    @property
    def denoiser(self) -> torch.nn.Module:
        return getattr(self.pipe, self.denoiser_name)

    @property
    def text_encoders(self) -> list[tuple[str, Any]]:
        return [(n, getattr(self.pipe, n)) for n in self.text_encoder_names if getattr(self.pipe, n, None) is not None]

    @property
    def tokenizer(self) -> Any:
        """The tokenizer whose positions are the attention columns (the first one present)."""
        for name in ("tokenizer", "tokenizer_2", "tokenizer_3"):
            if getattr(self.pipe, name, None) is not None:
                return getattr(self.pipe, name)
        raise ValueError(f"{type(self.pipe).__name__} has no tokenizer")

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    # --- samplers and sizes --------------------------------------------------------------------------
    def samplers(self) -> list[str]:
        """The short sampler names that make sense for this family."""
        from ..schedulers import scheduler_names

        return scheduler_names()

    def check_sampler(self, name: str | None, param: str = "scheduler") -> str | None:
        """None keeps the pipeline's own; otherwise a name from `samplers()`, else a ValueError listing them."""
        from ..validation import check_sampler_name

        return check_sampler_name(name, self.samplers(), type(self.pipe).__name__, param)

    @property
    def vae_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @property
    def patch(self) -> int:
        """Latent pixels per side of one attention query (1 for U-Nets)."""
        return 1

    @property
    def size_multiple(self) -> int:
        return math.lcm(8, self.vae_factor)

    def default_size(self) -> tuple[int, int]:
        s = self.denoiser.config.sample_size
        h, w = (s, s) if isinstance(s, int) else tuple(s)
        return int(h) * self.vae_factor, int(w) * self.vae_factor

    # --- guidance --------------------------------------------------------------------------------------
    def cfg_on(self, cfg: float, negative_prompt: str | None, true_cfg: float) -> bool:
        """Will the pipeline make an unconditional branch? (its own rule)"""
        return cfg > 1

    def zero_uncond(self, negative_prompt: str | None) -> bool:
        """True when the unconditional branch uses all-zero text embeddings instead of encoding a prompt."""
        return False

    def check_guidance(self, cfg: float, negative_prompt: str | None, true_cfg: float) -> None:
        """Family-specific guidance checks (before any work)."""
        if true_cfg != 1.0:
            raise ValueError(f"true_cfg applies to Flux pipelines only (they take cfg as a guidance embedding); "
                             f"for {type(self.pipe).__name__} use cfg, got true_cfg={true_cfg!r}")

    def check_control(self, control: dict[str, Any], n: int, height: int | None = None,
                      width: int | None = None) -> dict[str, Any]:
        """Control-map arguments of `trace` (control_image, ...) -> extra pipeline-call kwargs; only ControlNet
        pipelines take them (explainer/adapters/controlnet.py)."""
        if control:
            raise ValueError(f"control_image / controlnet_conditioning_scale / guess_mode apply to ControlNet "
                             f"pipelines only, and {type(self.pipe).__name__} has "
                             "none; load one with explainer.load_pipeline(controlnet='edges') (or 'segmentation')")
        return {}

    def call_kwargs(self, cfg: float, negative_prompt: Any, true_cfg: float) -> dict[str, Any]:
        """The guidance part of the pipeline call."""
        return {"guidance_scale": cfg, "negative_prompt": negative_prompt}

    def guidance_notes(self, cfg: float, cfg_on: bool, negative_prompt: str | None, zero: bool) -> list[str]:
        if not cfg_on:
            return ["cfg <= 1: the pipeline makes no unconditional pass, so there is no noise_uncond or cfg_delta "
                    "and noise_guided == noise_cond"]
        if zero:
            return ["SDXL with force_zeros_for_empty_prompt: the unconditional branch uses all-zero text embeddings"]
        if negative_prompt is None:
            return ['the unconditional branch is the empty prompt ""']
        return ["the negative prompt replaces the empty prompt in the unconditional branch"]

    # --- the denoiser call -----------------------------------------------------------------------------
    def read_inputs(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """From one denoiser call: "sample" (its latent input), "text" (per-token text states) and "extra" (other
        tensors worth keeping, e.g. SDXL's added_cond_kwargs)."""
        added = kwargs.get("added_cond_kwargs") or {}
        return {"sample": arg(args, kwargs, 0, "sample"), "text": arg(args, kwargs, 2, "encoder_hidden_states"),
                "extra": {f"added.{k}": v for k, v in added.items() if torch.is_tensor(v)}}

    def raw_output(self, output: Any) -> torch.Tensor:
        """The denoiser's prediction from its return value, in the layout the CFG arithmetic uses."""
        return output[0] if isinstance(output, tuple) else output.sample

    def is_cfg_batch(self, sample: torch.Tensor, n: int) -> bool:
        return self.batched_cfg and sample.shape[0] == 2 * n

    def attention_rows(self, call_index: int, batch: int, n: int) -> slice | None:
        """Rows of this denoiser call whose attention is recorded (the conditional branch), or None (skip)."""
        return slice(batch - n, batch) if batch >= n else None

    def split_raw(self, raws: list[torch.Tensor], n: int, cfg: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(uncond, cond) from the raw outputs of one step's denoiser calls, stacked over evaluations:
        raws[k] is (E, batch, ...) for the k-th call of each scheduler step."""
        raw = raws[0]
        return (raw[:, :n], raw[:, n:]) if cfg else (None, raw)

    # --- attention -------------------------------------------------------------------------------------
    def probes(self, recorder: Any) -> list[Any]:
        """The `explainer.probes.AttentionProbe`s to install, writing to `recorder` (their sink)."""
        return []

    def query_grid(self, latent_hw: tuple[int, int]) -> tuple[int, int] | None:
        """(h, w) of the attention queries for a transformer (latents / patch); None for a U-Net (levels are found
        from each layer's number of positions)."""
        return None

    def attention_groups(self) -> list[str]:
        """Names of the attention groups the probes report, when known before the run (blocks); [] for U-Nets."""
        return []

    def extra_hooks(self, recorder: Any) -> list[tuple[Any, Any, Any]]:
        """Extra (module, forward_pre_hook or None, forward_hook or None) that `capture` installs and removes, e.g. on
        a ControlNet. They may keep device tensors in `recorder.extra_records[key]` (a list per key)."""
        return []

    def pack_extra(self, data: dict[str, Any], n: int, cfg: bool, b: int) -> dict[str, torch.Tensor]:
        """Tensors for trace b from `data["extra_records"]` (CPU lists, as `extra_hooks` recorded them)."""
        return {}

    # --- latents -----------------------------------------------------------------------------------------
    def to_grid(self, x: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
        """(E, n, ...) scheduler-layout latents -> (E, n, C, h, w) on the VAE's latent grid."""
        return x

    # --- text ----------------------------------------------------------------------------------------------
    def tokens(self, prompt: str) -> tuple[list, list[str], dict[str, list[int]]]:
        """The denoiser's text positions for `prompt`: (tokens, dropped words, {encoder: [start, stop)})."""
        toks, dropped = tokenize(self.tokenizer, prompt)
        return toks, dropped, {self.text_encoder_names[0]: [0, len(toks)]}

    def token_limit(self) -> int:
        """The token limit whose truncation `tokens()` reports as dropped words (what a warning should name)."""
        return int(self.tokenizer.model_max_length)

    # what this family's `encode_prompt` needs besides the prompt to skip the guidance branch
    encode_kwargs: dict[str, Any] = {"do_classifier_free_guidance": False}

    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The denoiser's text input for `prompts` from the pipeline's own `encode_prompt`, no guidance branch,
        and pooled embeddings it returns that the encoder hooks cannot see (`returned_pooled`)."""
        out = self.pipe.encode_prompt(prompt=prompts, device=self.pipe.device, num_images_per_prompt=1,
                                      **self.encode_kwargs)
        return out[0], self.returned_pooled(out)

    def returned_pooled(self, out: tuple) -> dict[str, torch.Tensor]:
        return {}

    def token_span(self, encoder: str) -> str:
        """Which part of `tokens()`'s spans an encoder's per-token states cover (SD/SDXL: the one part)."""
        return self.text_encoder_names[0]

    def text_dims(self, total: int) -> list[tuple[str, int]]:
        """How the denoiser's text states split on the feature axis (SDXL concatenates both encoders)."""
        dims = [(name, int(enc.config.hidden_size)) for name, enc in self.text_encoders]
        if sum(d for _, d in dims) != total:
            return [(self.text_encoders[0][0], total)]
        return dims

    def text_states(self, text: torch.Tensor, uncond_text: torch.Tensor | None, n: int,
                    cfg: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """Per encoder: (cond (n, T, D), uncond or None) as the denoiser saw them. `text` is the first denoiser call's
        text input; `uncond_text` the second call's where the uncond branch is a separate call (Flux true CFG)."""
        dims, col, out = self.text_dims(text.shape[-1]), 0, {}
        for name, d in dims:
            part = text[..., col:col + d]
            out[name] = (part[n:], part[:n]) if cfg else (part, None)
            col += d
        return out

    def pooled_states(self, extra: dict[str, torch.Tensor], n: int, cfg: bool) -> dict[str, tuple]:
        """Pooled embeddings the denoiser actually got, per encoder (overrides the text-encoder hooks)."""
        return {}

    def settings(self, extra: dict[str, torch.Tensor], n: int, cfg: bool, b: int) -> dict[str, Any]:
        """Family-specific settings for trace b."""
        return {}

    def bytes_per_eval(self, n: int, latent_hw: tuple[int, int], channels: int, attention: bool,
                       n_tokens: int, max_res: int | None) -> int:
        """Estimated bytes a trace keeps per denoiser evaluation (latents in, guided, raw branches; attention maps)."""
        h, w = latent_hw
        lat = n * channels * h * w * 4
        total = lat * 4  # latents, guided, cond, uncond
        if attention:
            total += self.attention_bytes(n, latent_hw, n_tokens, max_res)
        return total

    def attention_bytes(self, n: int, latent_hw: tuple[int, int], n_tokens: int, max_res: int | None) -> int:
        h, w = latent_hw
        per, total = 0, 0
        for _ in range(4):  # U-Net levels: latent size halved per level (upper bound: 4 levels)
            hh, ww = (min(h, max_res), min(w, max_res)) if max_res else (h, w)
            per = hh * ww * n_tokens * 2 * n
            total += per
            h, w = -(-h // 2), -(-w // 2)
        return total


def call_default(pipe: Any, name: str, fallback: Any = None) -> Any:
    """The default of one of the pipeline's `__call__` parameters (e.g. max_sequence_length)."""
    import inspect

    p = inspect.signature(type(pipe).__call__).parameters.get(name)
    return fallback if p is None or p.default is inspect.Parameter.empty else p.default


def offset_tokens(tokens: list, offset: int) -> list:
    """Tokens re-indexed to start at `offset` (a second encoder's positions after the first's)."""
    return [t.moved(offset) for t in tokens]  # keeps each token's character span in the prompt


class DiTAdapter(Adapter):
    """Shared by the transformer families: attention groups are blocks, queries are latent patches."""

    denoiser_name = "transformer"
    group_label = "block"
    grouped = False  # trace(attention_blocks="groups"): runs of blocks averaged into one map each
    RUNS = 4  # at most this many runs per kind of block when grouped

    def block_names(self, prefix: str, n: int) -> list[str]:
        """The attention group of each of `n` blocks: its own ("double 3"), or when `grouped` its run of consecutive
        blocks ("double 0-4"; at most RUNS runs per kind), whose maps are averaged as a U-Net level's layers are."""
        if not self.grouped:
            return [f"{prefix} {i}" for i in range(n)]
        size = -(-n // self.RUNS)
        runs = [(s, min(s + size, n) - 1) for s in range(0, n, size)]
        return [f"{prefix} {a}" if a == b else f"{prefix} {a}-{b}" for a, b in runs for _ in range(a, b + 1)]

    @property
    def patch(self) -> int:
        return int(self.denoiser.config.get("patch_size", 1) or 1)

    @property
    def size_multiple(self) -> int:
        return math.lcm(8, self.vae_factor * self.patch)

    def default_size(self) -> tuple[int, int]:
        s = getattr(self.pipe, "default_sample_size", None) or self.denoiser.config.sample_size
        h, w = (s, s) if isinstance(s, int) else tuple(s)
        return int(h) * self.vae_factor, int(w) * self.vae_factor

    def query_grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        return latent_hw[0] // self.patch, latent_hw[1] // self.patch

    def read_inputs(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        extra = {k: kwargs[k] for k in ("pooled_projections", "guidance", "encoder_attention_mask")
                 if torch.is_tensor(kwargs.get(k))}
        return {"sample": arg(args, kwargs, 0, "hidden_states"), "text": kwargs.get("encoder_hidden_states"),
                "extra": extra}

    def attention_bytes(self, n: int, latent_hw: tuple[int, int], n_tokens: int, max_res: int | None) -> int:
        h, w = self.query_grid(latent_hw)
        if max_res is not None and max(h, w) > max_res:
            f = 2 ** math.ceil(math.log2(max(h, w) / max_res))
            h, w = -(-h // f), -(-w // f)
        return len(self.attention_groups()) * h * w * n_tokens * 2 * n

    def _t5_tokens(self, tokenizer: Any, prompt: str, max_len: int, offset: int) -> tuple[list, list[str]]:
        toks, dropped = tokenize(_MaxLength(tokenizer, max_len), prompt)
        return offset_tokens(toks, offset), dropped
