"""Array helpers every view and export shares: any tensor/array/PIL image to numpy, to uint8 RGB, and a latent's
channels laid out as one 2-D mosaic."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .latents import to_uint8


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
    arr = to_uint8(arr.astype(np.float32), channels_first=False)
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


def mask_iou(a: Any, b: Any) -> float:
    """Intersection over union of two masks of the same shape (boolean masks as they are; coverage maps count where
    >= 0.5).

    Both empty gives 1.0: IoU asks whether two masks mark the same pixels, and two empty masks do (none). Of the
    callers, only the seed-layout study can meet it (the foregrounds of two generated images, which may both be blank)
    and it needs a number for every pair it averages; the ControlNet layout and the judge's masks are always compared
    with a scene's non-empty truth, so there the case never arises.
    """
    a, b = to_numpy(a) >= 0.5, to_numpy(b) >= 0.5
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (two masks to compare), got {a.shape} and {b.shape}")
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0
