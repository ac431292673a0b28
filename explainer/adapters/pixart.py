"""PixArt-alpha / -sigma: a DiT (Transformer2DModel) with self-attention and cross-attention to T5 per block, the
CFG batch [uncond, cond], a T5 attention mask (padding masked out of the cross-attention), learned sigma (the
transformer predicts 2C channels; the first C are the noise prediction the pipeline uses)."""

from __future__ import annotations

from typing import Any

import torch

from ..probes import AttentionProbe
from .base import DiTAdapter, call_default

_BIN_SIZES = {"PixArtAlphaPipeline": (128, 64, 32), "PixArtSigmaPipeline": (256, 128, 64, 32)}


class PixArtAdapter(DiTAdapter):
    family = "pixart"
    text_encoder_names = ("text_encoder",)

    @property
    def t5_length(self) -> int:
        return int(call_default(self.pipe, "max_sequence_length", 120))

    def raw_output(self, output: Any) -> torch.Tensor:
        raw = output[0] if isinstance(output, tuple) else output.sample
        c = int(self.denoiser.config.in_channels)
        return raw[:, :c] if raw.shape[1] == 2 * c else raw  # learned sigma: the pipeline keeps the first half

    def call_kwargs(self, cfg: float, negative_prompt: Any, true_cfg: float) -> dict[str, Any]:
        # clean_caption=False: the prompt reaches T5 as typed, so the trace's token positions are the pipeline's
        # (cleaning rewrites captions, and needs ftfy/bs4)
        kw = {"guidance_scale": cfg, "negative_prompt": negative_prompt if negative_prompt is not None else "",
              "clean_caption": False}
        if int(self.denoiser.config.sample_size) not in _BIN_SIZES.get(type(self.pipe).__name__, ()):
            kw["use_resolution_binning"] = False  # the pipeline has no bins for this size (it would raise)
        return kw

    def probes(self, recorder: Any) -> list[AttentionProbe]:
        """Each block's cross-attention (attn2), with the T5 padding mask the layer itself gets."""
        blocks = [b for b in self.denoiser.transformer_blocks if getattr(b, "attn2", None) is not None]
        return [AttentionProbe(b.attn2, recorder, g, "cross", use_mask=True)
                for b, g in zip(blocks, self.block_names("block", len(blocks)), strict=True)]

    def attention_groups(self) -> list[str]:
        n = sum(getattr(b, "attn2", None) is not None for b in self.denoiser.transformer_blocks)
        return list(dict.fromkeys(self.block_names("block", n)))

    def token_span(self, encoder: str) -> str:
        return "t5"

    def token_limit(self) -> int:
        return self.t5_length

    def tokens(self, prompt: str) -> tuple[list, list[str], dict[str, list[int]]]:
        toks, dropped = self._t5_tokens(self.pipe.tokenizer, prompt, self.t5_length, 0)
        return toks, dropped, {"t5": [0, len(toks)]}
