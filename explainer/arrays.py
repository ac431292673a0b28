"""Array helpers every view and export shares: any tensor/array/PIL image to numpy, to uint8 RGB, and a latent's
channels laid out as one 2-D mosaic."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def to_rgb(image: Any) -> np.ndarray:
    """PIL image, uint8 array (h, w, 3), or a VAE-range tensor/array ((1,)3,h,w in [-1, 1]) -> uint8 (h, w, 3)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"))
    arr = to_numpy(image)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of shape {arr.shape}")
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.dtype == np.uint8:
        return arr if arr.shape[-1] == 3 else np.repeat(arr, 3, axis=-1)
    arr = ((np.clip(arr.astype(np.float32), -1, 1) + 1) * 127.5).round().astype(np.uint8)
    return arr if arr.shape[-1] == 3 else np.repeat(arr, 3, axis=-1)


def latent_mosaic(latents: Any, cols: int | None = None) -> np.ndarray:
    """Lay the channels of one latent ((1,) c, h, w) side by side as a 2D array, channels in a near-square grid.

    A 4-channel latent becomes a 2x2 mosaic, so a learner sees every number the U-Net sees.
    Gaps between tiles are NaN (drawn blank).
    """
    arr = to_numpy(latents).astype(np.float32)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"expected one latent, got a batch of shape {arr.shape}")
        arr = arr[0]
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise ValueError(f"expected a latent of shape (c, h, w), got {arr.shape}")
    c, h, w = arr.shape
    cols = cols or math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    out = np.full((rows * h + rows - 1, cols * w + cols - 1), np.nan, dtype=np.float32)
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = arr[i]
    return out
