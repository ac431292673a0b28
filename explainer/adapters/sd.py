"""Stable Diffusion 1.x / 2.x: a U-Net, one CLIP text encoder, the CFG batch [uncond, cond]."""

from __future__ import annotations

from typing import Any

from ..probes import AttentionProbe
from .base import Adapter


class SDAdapter(Adapter):
    family = "sd"
    denoiser_name = "unet"
    text_encoder_names = ("text_encoder",)
    group_label = "level"

    def cfg_on(self, cfg: float, negative_prompt: str | None, true_cfg: float) -> bool:
        # the pipeline's own rule: LCM-distilled U-Nets (time_cond_proj_dim) take guidance as an embedding
        return cfg > 1 and self.denoiser.config.get("time_cond_proj_dim") is None

    def probes(self, recorder: Any) -> list[AttentionProbe]:
        """Every cross-attention layer (self-attention untouched); maps are grouped by resolution level."""
        from diffusers.models.attention_processor import Attention

        return [AttentionProbe(m, recorder, None, "cross") for m in self.denoiser.modules()
                if isinstance(m, Attention) and m.is_cross_attention]
