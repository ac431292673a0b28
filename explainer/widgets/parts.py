"""What every explorer shares: pictures (PNG panels, colour maps, attention overlays), the message area and the
run's notes, and the word / level menus of a trace. Light on purpose: numpy, PIL and ipywidgets at import time
(matplotlib, torch and the package's models load only inside the functions that need them), so a classroom
student's page can import it without a model."""

from __future__ import annotations

import html
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as W
import numpy as np
from PIL import Image

DISPLAY_PX = 256  # on-screen size of a picture panel (nearest-neighbour upscaling)
STOPWORDS = {"a", "an", "the", "of", "to", "and", "in", "on", "at", "with", "left", "right", "above", "below",
             "is", "are", "big", "small"}


# --------------------------------------------------------------------------------------------- pictures
def _png(rgb: np.ndarray, size: int = DISPLAY_PX) -> bytes:
    """uint8 (h, w, 3) -> PNG bytes, upscaled by an integer factor (nearest) to about `size` pixels on its long side."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    k = max(1, size // max(img.size))
    if k > 1:
        img = img.resize((img.size[0] * k, img.size[1] * k), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def colour_table(cmap: str) -> np.ndarray:
    """A matplotlib colour map as a (256, 3) uint8 table, so a page without matplotlib can colour maps the same."""
    from matplotlib import colormaps

    return (colormaps[cmap](np.arange(256))[:, :3] * 255).round().astype(np.uint8)


def _colour(arr: np.ndarray, cmap: str | np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """2D array -> uint8 RGB through a colour map (a matplotlib name or a `colour_table`); NaN (gaps between latent
    tiles) -> white. Values pick the table's entry as matplotlib does (floor of 256 x the value, 1.0 the last)."""
    table = colour_table(cmap) if isinstance(cmap, str) else np.asarray(cmap, np.uint8)
    a = np.asarray(arr, dtype=np.float32)
    nan = np.isnan(a)
    span = (vmax - vmin) or 1.0
    x = np.clip((np.nan_to_num(a, nan=vmin) - vmin) / span, 0, 1)
    rgb = table[np.minimum((x * len(table)).astype(np.int64), len(table) - 1)]
    rgb[nan] = 255
    return rgb


def _signed_png(arr: np.ndarray) -> bytes:
    from ..plots import DIVERGING

    lim = float(np.nanmax(np.abs(arr))) or 1.0
    return _png(_colour(arr, DIVERGING, -lim, lim))


def _resize_nearest(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) * arr.shape[0] // h).clip(0, arr.shape[0] - 1)
    xs = (np.arange(w) * arr.shape[1] // w).clip(0, arr.shape[1] - 1)
    return arr[ys][:, xs]


def _attention_rgb(image_rgb: np.ndarray, amap: np.ndarray, overlay: bool = True,
                   table: np.ndarray | None = None) -> np.ndarray:
    """The attention map (own max = brightest) over a grey copy of the image, at the image's resolution; `table`:
    the attention colour map as a `colour_table` (default: read from matplotlib)."""
    if table is None:
        from ..plots import ATTENTION

        table = colour_table(ATTENTION)
    h, w = image_rgb.shape[:2]
    heat = _colour(_resize_nearest(amap, h, w), table, 0.0, float(amap.max()) or 1.0).astype(np.float32)
    if not overlay:
        return heat.astype(np.uint8)
    grey = image_rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (0.35 * grey[..., None] + 0.65 * heat).round().clip(0, 255).astype(np.uint8)


def _figure_png(fig: Any, width_px: int = 720) -> bytes:
    from ..export import figure_to_png_bytes

    return figure_to_png_bytes(fig, width_px)


# --------------------------------------------------------------------------------------------- small parts
def _image(cls: str, width: int | None = None) -> W.Image:
    img = W.Image(format="png", value=b"")
    if width:
        img.layout.width = f"{width}px"
    img.add_class(cls)
    return img


def _panel(title: str, image: W.Image) -> tuple[W.VBox, W.HTML]:
    caption = W.HTML(f"<b>{html.escape(title)}</b>")
    box = W.VBox([caption, image], layout=W.Layout(align_items="center", margin="0 6px"))
    return box, caption


def _message() -> W.HTML:
    m = W.HTML("")
    m.add_class("explainer-message")
    return m


def _say(message: W.HTML, text: str = "", error: bool = False) -> None:
    if not text:
        message.value = ""
        return
    style = "color:#b2182b;font-weight:bold" if error else "color:#444"
    cls = "explainer-error" if error else "explainer-info"
    message.value = f'<div class="{cls}" style="{style}">{html.escape(text)}</div>'


NOTE_CHARS = 300  # a note longer than this is cut (a 1 MB prompt's dropped words are not listed in full)


def _short(text: str, limit: int = NOTE_CHARS) -> str:
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()}\u2026 ({len(text) - limit:,} more characters)"


def _add_notes(message: W.HTML, notes: list[str]) -> None:
    """Append the run's warnings to the message area as a note (not an error), after any error already there."""
    if not notes:
        return
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    message.value += (f'<div class="explainer-warning" style="color:#8a5a00"><b>Note from this run:</b>'
                      f'<ul style="margin:2px 0">{items}</ul></div>')


def _ours(filename: str) -> bool:
    """A warning is the toolkit's own (shown on the page) unless it is attributed to a third-party library's file;
    explainer's warnings name the caller's line (stacklevel), which is explainer's or the user's code."""
    from pathlib import Path

    path = Path(filename or "").resolve()
    if Path(__file__).resolve().parents[1] in path.parents:
        return True
    return not any(part in ("site-packages", "dist-packages") for part in path.parts)


@contextmanager
def _collecting_warnings(notes: list[str]) -> Iterator[None]:
    """Record the toolkit's warnings raised inside into `notes` (short, without repeats) for the page; other
    warnings (a library's) are passed on as usual. The filters in force (models.quiet_libraries) still apply."""
    import warnings

    kept: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            try:
                yield
            finally:
                kept = list(caught)
    finally:  # also when the run failed: its error is shown, and the notes after it
        for w in kept:
            if issubclass(w.category, UserWarning) and _ours(w.filename):
                text = _short(str(w.message))
                if text not in notes:
                    notes.append(text)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _readable(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if isinstance(err, ValueError) else f"{type(err).__name__}: {text}"


@contextmanager
def _reporting(message: W.HTML) -> Iterator[None]:
    """Run a handler; any exception becomes a message in the widget (no traceback), and the widget stays usable."""
    try:
        yield
        _say(message)
    except Exception as err:  # noqa: BLE001 - a widget must never show a traceback
        _say(message, _readable(err), error=True)


def _word_options(tr: Any) -> list[tuple[str, int]]:
    """(label, word number) for each word of the prompt, as the user wrote it (no tokenizer markers such as
    "</w>"; a word split into pieces is one entry); a repeated word is labelled with its first token position."""
    from ..words import words_of

    words = [w for w in words_of(tr) if not w.punctuation and w.positions]
    counts: dict[str, int] = {}
    for w in words:
        counts[str(w).lower()] = counts.get(str(w).lower(), 0) + 1
    return [(str(w) if counts[str(w).lower()] == 1 else f"{w} (#{w.positions[0]})", int(w.index)) for w in words]


def _word_at(tr: Any, index: int) -> Any:
    """The Word a word menu's value (a word number) stands for; the attention functions sum its pieces."""
    from ..words import words_of

    return words_of(tr)[index]


def _word_caption(tr: Any, index: int) -> str:
    """\u201cword\u201d plus what was summed (\u201cautumn\u201d (2 pieces summed: aut + umn)), HTML-escaped."""
    return html.escape(tr.lookup(_word_at(tr, index)).title if hasattr(tr, "lookup")
                       else f"\u201c{_word_at(tr, index)}\u201d")


def _default_word(options: list[tuple[str, int]]) -> int | None:
    for label, idx in options:
        if label.split(" ")[0].lower() not in STOPWORDS:
            return idx
    return options[0][1] if options else None


def _choose_token(dropdown: W.Dropdown, token: str | int, tr: Any, message: W.HTML) -> None:
    """Select a word given by text (case-insensitive) or token position; a word not in the prompt becomes a message
    listing the prompt's words."""
    from ..words import lookup, words_of

    try:
        words = words_of(tr)
        found = lookup(token, words, list(tr.tokens))
        if found.words:
            index = found.words[0].index
        else:  # a token position: the word that contains it
            index = next((w.index for w in words if found.positions[0] in w.positions), None)
        if index is None or index not in [v for _, v in dropdown.options]:
            raise ValueError(f"token {token!r} is a special or padding token; choose a word of the prompt")
        dropdown.value = index
    except ValueError as err:
        _say(message, _readable(err), error=True)


def _level_options(tr: Any) -> list[tuple[str, Any]]:
    if _group_word(tr) == "block":  # a DiT's groups are blocks ("block 3", "single 0"): their names say so
        return [("all blocks", None)] + [(name, name) for name in tr.levels]
    return [("all levels", None)] + [(f"{name} level", name) for name in tr.levels]


def _group_word(tr: Any) -> str:
    """What a trace's attention groups are: U-Net resolution "level"s or transformer "block"s."""
    return "block" if getattr(tr, "settings", {}).get("attention_group") == "block" else "level"


def _step_text(tr: Any, i: int) -> str:
    st = tr.steps[i]
    return (f"step {i + 1} of {len(tr.steps)} \u00b7 timestep {st.timestep:.0f} \u00b7 "
            f"noise level \u03c3 = {st.sigma:.3f}")


def _x0_png(tr: Any, i: int) -> bytes:
    from ..arrays import to_rgb

    return _png(to_rgb(tr.decode(i)))


def _has_attention(tr: Any) -> bool:
    return bool(getattr(tr, "levels", []))




def sampler_options(pipe: Any) -> list[tuple[str, str | None]]:
    """The sampler menu: first the pipeline's own scheduler (value None, the default: what `pipe(...)` uses), then
    the short names that fit this pipeline's family."""
    from ..schedulers import scheduler_name_of

    own = getattr(pipe, "scheduler", None)
    try:
        from ..adapters import get_adapter

        names = get_adapter(pipe).samplers()
    except Exception:  # noqa: BLE001 - an unknown pipeline still gets the SD names
        from ..schedulers import scheduler_names

        names = scheduler_names()
    label = "model's own" if own is None else f"model's own ({type(own).__name__}: {scheduler_name_of(own)})"
    return [(label, None)] + [(n, n) for n in names]
