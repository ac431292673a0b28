"""SDXL: the SD U-Net layout plus two CLIP encoders (features concatenated) and text_time micro-conditioning."""

from __future__ import annotations

from typing import Any

import torch

from .sd import SDAdapter


class SDXLAdapter(SDAdapter):
    family = "sdxl"
    text_encoder_names = ("text_encoder", "text_encoder_2")

    def default_size(self) -> tuple[int, int]:
        s = self.pipe.default_sample_size
        h, w = (s, s) if isinstance(s, int) else tuple(s)
        return int(h) * self.vae_factor, int(w) * self.vae_factor

    def zero_uncond(self, negative_prompt: str | None) -> bool:
        """SDXL with force_zeros_for_empty_prompt uses all-zero embeddings for a missing negative prompt."""
        return negative_prompt is None and bool(self.pipe.config.get("force_zeros_for_empty_prompt", False))

    def returned_pooled(self, out: tuple) -> dict[str, torch.Tensor]:
        dims = [name for name, _ in self.text_encoders]  # the pooled embedding is the last encoder's
        return {dims[-1]: out[2]} if out[2] is not None and len(dims) > 1 else {}

    def pooled_states(self, extra: dict[str, torch.Tensor], n: int, cfg: bool) -> dict[str, tuple]:
        """The pooled embedding the U-Net got (added_cond_kwargs["text_embeds"]) belongs to the last encoder."""
        pooled = extra.get("added.text_embeds")
        dims = [name for name, _ in self.text_encoders]
        if pooled is None or len(dims) < 2:
            return {}
        return {dims[-1]: (pooled[n:], pooled[:n]) if cfg else (pooled, None)}

    def settings(self, extra: dict[str, torch.Tensor], n: int, cfg: bool, b: int) -> dict[str, Any]:
        ids = extra.get("added.time_ids")
        return {} if ids is None else {"micro_conditioning_time_ids": ids[n + b if cfg else b].tolist()}
