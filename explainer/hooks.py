"""Compatibility shim: the capture moved to explainer.capture, pipeline families to explainer.adapters and the
latent math to explainer.latents. Import from those; this module only re-exports their names."""

from __future__ import annotations

from .adapters import Adapter, get_adapter
from .capture import (
    ATTENTION_MAX_RES,
    CrossAttentionProbe,
    Recorder,
    capture,
    cross_attention_probs,
    starts_new_step,
    wrap_step,
)
from .latents import VE_SCHEDULERS, eval_sigmas, predict_x0

__all__ = ["ATTENTION_MAX_RES", "VE_SCHEDULERS", "Adapter", "CrossAttentionProbe", "Recorder", "capture",
           "cross_attention_probs", "eval_sigmas", "get_adapter", "predict_x0", "starts_new_step", "wrap_step"]
