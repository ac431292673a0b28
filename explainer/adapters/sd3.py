"""Stable Diffusion 3 (MMDiT): SD3Transformer2DModel with joint attention over [image; text] per block, text from
CLIP-L + CLIP-G (features concatenated, zero-padded to T5's width) followed by T5 (or zeros when text_encoder_3 is
None), the CFG batch [uncond, cond], flow-matching latents."""

from __future__ import annotations

from typing import Any

import torch

from ..probes import AttentionProbe
from ..words import Token, tokenize
from .base import DiTAdapter, call_default


class SD3Adapter(DiTAdapter):
    family = "sd3"
    text_encoder_names = ("text_encoder", "text_encoder_2", "text_encoder_3")

    def samplers(self) -> list[str]:
        return ["flow_euler", "flow_heun"]

    @property
    def clip_length(self) -> int:
        return int(getattr(self.pipe, "tokenizer_max_length", None) or self.pipe.tokenizer.model_max_length)

    @property
    def t5_length(self) -> int:
        return int(call_default(self.pipe, "max_sequence_length", 256))

    def probes(self, recorder: Any) -> list[AttentionProbe]:
        """Each block's joint attention: image queries x text keys (conditional rows)."""
        blocks = self.denoiser.transformer_blocks
        return [AttentionProbe(b.attn, recorder, g, "joint")
                for b, g in zip(blocks, self.block_names("block", len(blocks)), strict=True)]

    def attention_groups(self) -> list[str]:
        return list(dict.fromkeys(self.block_names("block", len(self.denoiser.transformer_blocks))))

    def _has_t5(self) -> bool:
        return getattr(self.pipe, "text_encoder_3", None) is not None and bool(getattr(self.pipe, "tokenizer_3", None))

    def token_limit(self) -> int:
        """T5's limit when T5 reads the prompt (its dropped words are the ones reported), else CLIP's."""
        return self.t5_length if self._has_t5() else int(self.pipe.tokenizer.model_max_length)

    def tokens(self, prompt: str) -> tuple[list, list[str], dict[str, list[int]]]:
        """CLIP positions (shared by CLIP-L and CLIP-G, one tokenizer's pieces), then T5's positions. Without
        text_encoder_3 the T5 part is zeros: those positions are marked padding and named "<no T5>"."""
        clip, clip_dropped = tokenize(self.pipe.tokenizer, prompt)
        c, t = len(clip), self.t5_length
        if self._has_t5():
            t5, dropped = self._t5_tokens(self.pipe.tokenizer_3, prompt, t, c)
        else:
            t5 = [Token("<no T5>", c + i, -1, "<no T5>", False, True) for i in range(t)]
            dropped = clip_dropped
        return clip + t5, dropped, {"clip": [0, c], "t5": [c, c + t]}

    # (its pooled output is both CLIPs' concatenated: the encoder hooks keep them apart)
    encode_kwargs = {"prompt_2": None, "prompt_3": None, "do_classifier_free_guidance": False}

    def token_span(self, encoder: str) -> str:
        return "t5" if encoder == "text_encoder_3" else "clip"

    def text_states(self, text: torch.Tensor, uncond_text: torch.Tensor | None, n: int,
                    cfg: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        c = self.clip_length
        out, col = {}, 0
        for name in ("text_encoder", "text_encoder_2"):
            enc = getattr(self.pipe, name, None)
            if enc is None:
                continue
            d = int(enc.config.hidden_size)
            part = text[:, :c, col:col + d]
            out[name] = (part[n:], part[:n]) if cfg else (part, None)
            col += d
        if getattr(self.pipe, "text_encoder_3", None) is not None:
            part = text[:, c:]
            out["text_encoder_3"] = (part[n:], part[:n]) if cfg else (part, None)
        return out
