"""Flux: FluxTransformer2DModel with double-stream blocks (text and image streams, joint attention) and single-stream
blocks ([text; image] concatenated inside the block). `cfg` is the guidance *embedding* (a number fed to the
transformer), not classifier-free guidance: there is no unconditional branch unless true CFG (true_cfg > 1 with a
negative prompt), which runs the transformer a second time per step. Latents are packed 2x2 into a token sequence."""

from __future__ import annotations

from typing import Any

import torch

from ..probes import AttentionProbe
from .base import DiTAdapter, call_default


class FluxAdapter(DiTAdapter):
    family = "flux"
    text_encoder_names = ("text_encoder", "text_encoder_2")
    batched_cfg = False

    @property
    def tokenizer(self) -> Any:
        return self.pipe.tokenizer_2  # T5: its positions are the transformer's text tokens (CLIP gives the pooled)

    @property
    def patch(self) -> int:
        return 2  # 2x2 latent pixels packed into one token

    @property
    def t5_length(self) -> int:
        return int(call_default(self.pipe, "max_sequence_length", 512))

    def samplers(self) -> list[str]:
        return ["flow_euler"]  # the pipeline passes custom sigmas, which only FlowMatchEuler accepts

    @property
    def size_multiple(self) -> int:
        return self.vae_factor * 2

    def cfg_on(self, cfg: float, negative_prompt: str | None, true_cfg: float) -> bool:
        return true_cfg > 1 and negative_prompt is not None

    def check_guidance(self, cfg: float, negative_prompt: str | None, true_cfg: float) -> None:
        if true_cfg > 1 and negative_prompt is None:
            raise ValueError(f"true_cfg={true_cfg} asks Flux for true classifier-free guidance, which needs a "
                             "negative_prompt (the unconditional branch); pass negative_prompt=... or true_cfg=1")

    def call_kwargs(self, cfg: float, negative_prompt: Any, true_cfg: float) -> dict[str, Any]:
        return {"guidance_scale": cfg, "true_cfg_scale": true_cfg, "negative_prompt": negative_prompt}

    def guidance_notes(self, cfg: float, cfg_on: bool, negative_prompt: str | None, zero: bool) -> list[str]:
        if self.denoiser.config.get("guidance_embeds", False):
            notes = [f"Flux: cfg={cfg} is the guidance embedding fed to the transformer (guidance distillation), not "
                     "classifier-free guidance"]
        else:
            notes = [f"Flux without guidance embeddings: cfg={cfg} is ignored by the transformer"]
        if cfg_on:
            notes.append("true CFG: the transformer also runs on the negative prompt each step (noise_uncond), and "
                         "noise_guided = uncond + true_cfg * (cond - uncond)")
        else:
            notes.append("no unconditional branch, so there is no noise_uncond or cfg_delta and "
                         "noise_guided == noise_cond")
        return notes

    def attention_rows(self, call_index: int, batch: int, n: int) -> slice | None:
        return slice(0, batch) if call_index == 0 else None  # call 0 is the prompt, call 1 the negative prompt

    def split_raw(self, raws: list[torch.Tensor], n: int, cfg: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        return (raws[1] if cfg and len(raws) > 1 else None), raws[0]

    def probes(self, recorder: Any) -> list[AttentionProbe]:
        t = self.denoiser
        double, single = t.transformer_blocks, t.single_transformer_blocks
        return ([AttentionProbe(b.attn, recorder, g, "flux_double")
                 for b, g in zip(double, self.block_names("double", len(double)), strict=True)]
                + [AttentionProbe(b.attn, recorder, g, "flux_single")
                   for b, g in zip(single, self.block_names("single", len(single)), strict=True)])

    def attention_groups(self) -> list[str]:
        t = self.denoiser
        return list(dict.fromkeys(self.block_names("double", len(t.transformer_blocks))
                                  + self.block_names("single", len(t.single_transformer_blocks))))

    def to_grid(self, x: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
        """Packed (E, n, tokens, 4C) -> (E, n, C, h, w) with the pipeline's own unpacking (a pure permutation)."""
        h, w = latent_hw
        vf = self.vae_factor
        flat = self.pipe._unpack_latents(x.flatten(0, 1), h * vf, w * vf, vf)
        return flat.view(*x.shape[:2], *flat.shape[1:])

    def token_limit(self) -> int:
        return self.t5_length

    def tokens(self, prompt: str) -> tuple[list, list[str], dict[str, list[int]]]:
        toks, dropped = self._t5_tokens(self.pipe.tokenizer_2, prompt, self.t5_length, 0)
        return toks, dropped, {"t5": [0, len(toks)]}

    encode_kwargs = {"prompt_2": None}  # no guidance flag: Flux's CFG is an embedding; CLIP's pooled reaches the hooks

    def token_span(self, encoder: str) -> str:
        return "t5"

    def text_states(self, text: torch.Tensor, uncond_text: torch.Tensor | None, n: int,
                    cfg: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        return {"text_encoder_2": (text, uncond_text if cfg else None)}

    def settings(self, extra: dict[str, torch.Tensor], n: int, cfg: bool, b: int) -> dict[str, Any]:
        g = extra.get("guidance")
        return {"guidance_embedding": None if g is None else float(g.flatten()[b if g.numel() > b else 0])}
