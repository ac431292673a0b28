"""Exports for teachers: a trace as an animated GIF of the denoising, any figure as a slide-sized PNG."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

SLIDE_WIDTH_PX = 1920  # a 16:9 full-HD slide
MAX_PX = 8192  # the largest PNG width / GIF side we write (a 30000 px GIF would take minutes and gigabytes)
FRAMES = ("x0", "xt", "latents")


def figure_to_png_bytes(fig: Figure, width_px: int = SLIDE_WIDTH_PX) -> bytes:
    """Render `fig` as PNG bytes, `width_px` pixels wide (the height follows the figure's aspect ratio)."""
    if not isinstance(width_px, int) or not 100 <= width_px <= 10_000:
        raise ValueError(f"width_px must be an int between 100 and 10000, got {width_px!r}")
    dpi = width_px / fig.get_figwidth()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def save_png(fig: Figure, path: str | os.PathLike, width_px: int = SLIDE_WIDTH_PX) -> Path:
    """Save `fig` as a PNG `width_px` wide (default 1920, a full-HD slide). Returns the path written."""
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure (what every explainer.plots function returns), got "
                         f"{type(fig).__name__}")
    if isinstance(width_px, bool) or not isinstance(width_px, int) or not 16 <= width_px <= MAX_PX:
        raise ValueError(f"width_px must be an int from 16 to {MAX_PX}, got {width_px!r}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_to_png_bytes(fig, width_px))
    return path


def _latent_frame(latents: Any, lim: float) -> np.ndarray:
    """One latent as an RGB mosaic of its channels (blue < 0 < red, fixed range across frames)."""
    from matplotlib import colormaps

    from .arrays import latent_mosaic
    from .plots import DIVERGING

    m = latent_mosaic(latents)
    rgba = colormaps[DIVERGING]((np.nan_to_num(m, nan=0.0) / lim + 1) / 2)
    rgb = (rgba[..., :3] * 255).round().astype(np.uint8)
    rgb[np.isnan(m)] = 255  # white gaps between channel tiles
    return rgb


def gif_frames(tr: Any, frames: str = "x0") -> list[np.ndarray]:
    """The frames of the denoising animation, uint8 (h, w, 3) at the data's own resolution, one per step.

    frames="x0": the VAE decode of each step's predicted clean latents (what the model believes the image is);
    frames="xt": the VAE decode of each step's noisy latents x_t, ending with the final latents (what is really there);
    frames="latents": the raw latents x_t as channel tiles (blue < 0 < red, one scale), ending with the final latents.
    """
    from .arrays import to_rgb

    if frames not in FRAMES:
        raise ValueError(f"frames must be one of {FRAMES}, got {frames!r}")
    steps = list(tr.steps)
    if not steps:
        raise ValueError("the trace has no steps to animate")
    if frames == "x0":
        return [to_rgb(tr.decode(i)) for i in range(len(steps))]
    if frames == "xt":
        return [to_rgb(tr.decode(i, what="latents")) for i in range(len(steps))] + \
            [to_rgb(tr.decode(len(steps) - 1, what="latents_next"))]
    lats = [s.latents for s in steps] + [steps[-1].latents_next]
    lim = max(float(np.abs(np.asarray(_np(latent))).max()) for latent in lats) or 1.0
    return [_latent_frame(latent, lim) for latent in lats]


def _np(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def trace_to_gif(tr: Any, path: str | os.PathLike, frames: str = "x0", size: int = 256, duration_ms: int = 200,
                 hold_last_ms: int = 1500, label: bool = True, include_final: bool = True) -> Path:
    """Write the denoising as an animated GIF (looping). Each frame is upscaled with nearest-neighbour to about
    `size` px so the pixels stay sharp on a projector; a caption strip says which step it is.

    frames: "x0" (decoded predictions), "xt" (decoded noisy latents) or "latents" (raw latent channels).
    include_final: end on the pipeline's image (x0 only).
    """
    from .arrays import to_rgb

    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= MAX_PX:
        raise ValueError(f"size must be an int from 16 to {MAX_PX} (pixels per side), got {size!r}")
    if not isinstance(duration_ms, int) or duration_ms < 20:
        raise ValueError(f"duration_ms must be an int >= 20, got {duration_ms!r}")
    raw = gif_frames(tr, frames)
    captions = [f"step {i + 1}/{len(tr.steps)}  t={_timestep(tr.steps[i])}" for i in range(len(tr.steps))]
    if frames in ("xt", "latents"):
        captions = [f"x_t, step {i + 1}/{len(tr.steps)}" for i in range(len(tr.steps))] + ["final latents"]
    elif include_final and getattr(tr, "image", None) is not None:
        raw.append(to_rgb(tr.image))
        captions.append("final image")
    images = []
    for arr, cap in zip(raw, captions, strict=True):
        k = max(1, round(size / max(arr.shape[:2])))
        im = Image.fromarray(arr).resize((arr.shape[1] * k, arr.shape[0] * k), Image.Resampling.NEAREST)
        if label:
            im = _with_caption(im, cap)
        images.append(im.convert("P", palette=Image.Palette.ADAPTIVE, colors=255))
    durations = [duration_ms] * len(images)
    durations[-1] = max(duration_ms, hold_last_ms)
    path = Path(path)
    if path.suffix.lower() != ".gif":
        path = path.with_suffix(".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False,
                   disposal=1)
    return path


def _timestep(step: Any) -> str:
    t = getattr(step, "timestep", "?")
    t = t.item() if hasattr(t, "item") else t
    return f"{t:.0f}" if isinstance(t, (int, float)) else str(t)


def _with_caption(im: Image.Image, text: str) -> Image.Image:
    h = max(14, im.height // 12)
    try:
        font = ImageFont.load_default(size=int(h * 0.75))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    out = Image.new("RGB", (im.width, im.height + h), "white")
    out.paste(im.convert("RGB"), (0, 0))
    ImageDraw.Draw(out).text((4, im.height + h // 8), text, fill="black", font=font)
    return out
