"""One prompt, every panel, one self-contained HTML page (images inlined as base64): for a projector without Jupyter.

    from explainer.report import explain_to_html
    explain_to_html(pipe, "a red circle left of a blue square", "out/")   # -> out/index.html

The CLI (`python -m explainer explain ...`) is a thin wrapper around `explain_to_html`.
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import export, plots

PAGE_WIDTH_PX = 1400  # figures are rendered this wide for the page (sharp on a 1080p projector, small files)


@dataclass
class Panel:
    section: str
    title: str
    text: str
    mime: str = "image/png"
    data: bytes = b""
    filename: str = ""
    error: str = ""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _clip_available(pipe: Any) -> bool:
    path = Path(getattr(pipe, "name_or_path", "") or "")
    return (path / "clip" / "config.json").exists()


def _main_token(tr: Any) -> Any:
    """The word the attention-by-level panel follows: the first shape word if any (shapes model), else the prompt's
    last word (any model; a word split into pieces is followed as a whole)."""
    from .shapes import SHAPES
    from .words import words_of

    words = [w for w in words_of(tr) if not w.punctuation and w.positions]
    for w in words:
        if str(w).lower() in SHAPES:
            return w
    return words[-1] if words else tr.tokens[0]


Job = tuple[str, str, str, Callable[[], Figure]]  # (section, title, text, the figure's maker)


def _figure_jobs(pipe: Any, prompt: str, tr: Any, seed: int) -> list[Job]:
    """The page's figure panels for this trace, in page order (each made later, so one failure costs one panel)."""
    has_uncond = bool(getattr(tr, "has_uncond", True))
    has_attention = bool(list(getattr(tr, "levels", [])))
    jobs: list[Job] = [
        ("The pipeline", "Pipeline at a glance",
         "Every component of the loaded pipeline with its parameter count, and the shape of the data between them.",
         lambda: plots.plot_pipeline(pipe, prompt, steps=len(tr.steps))),
        ("The pipeline", "U-Net anatomy",
         "The denoiser's levels, channels and resolutions; dashed arcs are skip connections from the way down to the "
         "way up.", lambda: plots.plot_unet_anatomy(pipe.unet)),
        ("Text", "Tokens", "The prompt split into tokens, as the text encoder receives it (padded to a fixed length).",
         lambda: plots.plot_tokens(pipe, prompt)),
        ("Text", "Embeddings", "One vector per token: what the U-Net reads through cross-attention at every step.",
         lambda: plots.plot_trace_embeddings(tr)),
        ("Denoising", "Filmstrip", "Noisy latents going in, the predicted noise, and the clean image the model "
         "predicts at that step (decoded by the VAE).", lambda: plots.plot_filmstrip(tr)),
    ]
    if has_uncond:
        jobs += [
            ("Guidance", "CFG delta per step", "How different the prediction with the prompt is from the one without"
             " it (or with the negative prompt), step by step.", lambda: plots.plot_cfg_delta_norm(tr)),
            ("Guidance", "Where the prompt pushes", "The same difference at each latent position.",
             lambda: plots.plot_cfg_delta_maps(tr)),
            ("Guidance", "Conditional, unconditional, guided", "Both U-Net predictions at one step, the guided mix, "
             "and the clean image each one implies.", lambda: plots.plot_cfg_branches(tr, pipe=pipe)),
        ]
    if has_attention:
        tok = _main_token(tr)
        jobs += [
            ("Attention", "Where each word looks", "Cross-attention of every word over the final image, averaged "
             "over steps and resolution levels.", lambda: plots.plot_attention(tr)),
            ("Attention", f"\u201c{tok}\u201d at each level", "The same word's attention at each resolution of the "
             "U-Net.", lambda: plots.plot_attention_levels(tr, tok)),
            ("Attention", "Token \u00d7 step", "How each word's attention map changes as the image forms.",
             lambda: plots.plot_attention_grid(tr)),
        ]
    jobs += [
        ("Noise", "Noise schedules", "How much noise is left at each step, for several samplers with the same "
         "training schedule.", lambda: plots.plot_noise_schedules(pipe, steps=len(tr.steps))),
        ("Noise", "The forward process", "A real scene dissolving into noise as t grows: what the model learned to "
         "reverse.", lambda: plots.plot_forward_process(pipe, seed=seed)),
    ]
    if _clip_available(pipe):
        def clip_fig() -> Figure:
            from .shapes import make_dataset

            images, captions, _ = make_dataset(6, start_seed=10_000_000 + seed)
            return plots.plot_clip_similarity(plots.load_clip(pipe), images, captions)

        jobs.append(("Text", "CLIP: images and captions", "The text encoder was first trained with an image encoder "
                     "to put matching images and captions close together.", clip_fig))

    return jobs


def _animation_panels(tr: Any, out: Path, write_files: bool) -> list[Panel]:
    """The final image and the two denoising GIFs (kept beside the page when write_files)."""
    final = export._with_caption(_upscale(tr.image, 384), "final image")
    panels = [Panel("Result", "The image", f"{plots.trace_caption(tr)}", data=_png(final), filename="image.png")]
    for frames, title, text in (("x0", "Denoising: predicted clean image per step", "What the model believes the "
                                 "image is at each step."),
                                ("xt", "Denoising: the noisy latents per step", "What is really in the latents at each"
                                 " step (decoded by the VAE).")):
        tmp = out / f"denoising_{frames}.gif"
        out.mkdir(parents=True, exist_ok=True)
        export.trace_to_gif(tr, tmp, frames=frames)
        panels.append(Panel("Result", title, text, "image/gif", tmp.read_bytes(), tmp.name))
        if not write_files:
            tmp.unlink()
    return panels


def _figure_panel(section: str, title: str, text: str, make: Callable[[], Figure]) -> Panel:
    try:
        data = export.figure_to_png_bytes(make(), PAGE_WIDTH_PX)
        return Panel(section, title, text, data=data, filename=_slug(title) + ".png")
    except Exception as err:  # one failing panel should not cost the teacher the page
        return Panel(section, title, text, error=f"{type(err).__name__}: {err}")


def explain_to_html(pipe: Any, prompt: str, out: str | os.PathLike, seed: int = 0, steps: int = 25, cfg: float = 7.5,
                    scheduler: str | None = None, negative_prompt: str | None = None, trajectories: int = 3,
                    progress: bool = True, write_files: bool = True) -> Path:
    """Trace `prompt` once and write `out/index.html` with every panel (plus each PNG/GIF beside it when
    write_files). trajectories: how many extra seeds to trace for the trajectory map (0 = skip that panel).
    Arguments are validated by `explainer.trace.trace` before any heavy work. Returns the page's path.
    """
    from tqdm.auto import tqdm

    from .trace import trace

    if not isinstance(trajectories, int) or isinstance(trajectories, bool) or not 0 <= trajectories <= 16:
        raise ValueError(f"trajectories must be an int between 0 and 16, got {trajectories!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, but {str(out)!r} is a file")
    t0 = time.time()
    kw = dict(seed=seed, steps=steps, cfg=cfg, scheduler=scheduler, negative_prompt=negative_prompt)
    bar = tqdm(total=4, desc="tracing", unit="task", disable=not progress, leave=False)
    tr = trace(pipe, prompt, **kw)
    bar.update(1)
    jobs = _figure_jobs(pipe, prompt, tr, seed)

    extra: list[Any] = []
    if trajectories:
        bar.total = 1 + trajectories + len(jobs) + 3
        for k in range(1, trajectories + 1):
            extra.append(trace(pipe, prompt, **dict(kw, seed=seed + k), attention=False))
            bar.update(1)
        jobs.append(("Denoising", "Trajectories", f"The path of the latents from noise to image for {trajectories + 1}"
                     " seeds, projected to 2D with PCA.", lambda: plots.plot_trajectories([tr] + extra)))
    else:
        bar.total = 1 + len(jobs) + 2
    bar.set_description("figures")
    bar.refresh()

    panels = _animation_panels(tr, out, write_files)  # the image and the animations first
    bar.update(2)
    for job in jobs:
        panels.append(_figure_panel(*job))
        bar.update(1)
    bar.close()

    out.mkdir(parents=True, exist_ok=True)
    if write_files:
        for p in panels:
            if p.data and p.filename and p.mime == "image/png":
                (out / p.filename).write_bytes(p.data)
    page = out / "index.html"
    page.write_text(_html(tr, panels, time.time() - t0), encoding="utf-8")
    return page


def _upscale(image: Any, size: int) -> Any:
    from PIL import Image

    k = max(1, size // max(image.size))
    return image.resize((image.width * k, image.height * k), Image.Resampling.NEAREST)


def _png(image: Any) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _slug(text: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "_" for c in text)
    return "_".join(x for x in keep.split("_") if x)[:60] or "figure"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#fafafa;color:#222}
header{background:#20324a;color:#fff;padding:18px 32px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:2px 0;opacity:.9}nav{padding:8px 32px;background:#e8edf3;font-size:14px}nav a{margin-right:14px}
main{padding:8px 32px 40px;max-width:1500px}h2{border-bottom:2px solid #20324a;padding-bottom:4px;margin-top:36px}
figure{margin:18px 0 28px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px}
figure img{max-width:100%;height:auto;display:block;margin:auto;image-rendering:pixelated}
figcaption{font-size:15px;margin-top:8px}figcaption b{display:block;font-size:17px;margin-bottom:2px}
.err{color:#a00}table{border-collapse:collapse;font-size:14px}td{padding:2px 12px 2px 0;vertical-align:top}
"""


def _html(tr: Any, panels: list[Panel], seconds: float) -> str:
    s = tr.settings
    sections = list(dict.fromkeys(p.section for p in panels))
    rows = [("prompt", s.get("prompt")), ("negative prompt", s.get("negative_prompt") or "\u2014"),
            ("seed", s.get("seed")), ("steps", s.get("steps")), ("CFG", s.get("cfg")),
            ("scheduler", s.get("scheduler")), ("model", s.get("model_id")),
            ("size", f"{s.get('width')}\u00d7{s.get('height')} px"), ("made in", f"{seconds:.1f} s")]
    notes = s.get("notes") or []
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>explainer: {html.escape(str(s.get('prompt')))}</title><style>{_CSS}</style></head><body>",
             f"<header><h1>\u201c{html.escape(str(s.get('prompt')))}\u201d</h1>",
             f"<p>{html.escape(plots.trace_caption(tr))}</p></header><nav>"]
    parts += [f"<a href='#{_slug(sec)}'>{html.escape(sec)}</a>" for sec in sections]
    parts.append("</nav><main><table>")
    parts += [f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
    parts.append("</table>")
    parts += [f"<p><i>{html.escape(str(n))}</i></p>" for n in notes]
    for sec in sections:
        parts.append(f"<h2 id='{_slug(sec)}'>{html.escape(sec)}</h2>")
        for p in (p for p in panels if p.section == sec):
            body = (f"<img alt='{html.escape(p.title)}' src='data:{p.mime};base64,{_b64(p.data)}'>" if p.data else
                    f"<p class='err'>This panel could not be drawn: {html.escape(p.error)}</p>")
            parts.append(f"<figure>{body}<figcaption><b>{html.escape(p.title)}</b>{html.escape(p.text)}"
                         "</figcaption></figure>")
    parts.append("<p style='font-size:12px;color:#777'>Made by <code>python -m explainer explain</code>. "
                 "Every image on this page is inlined; the file works offline.</p></main></body></html>")
    return "\n".join(parts)
