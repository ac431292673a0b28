"""What the playground shows of one run, read the same way from a Trace in this process or from the classroom's
shared worker.

    TraceView(tr)             # in a notebook: the trace itself (x0 decoded when a step is shown)
    answer_bytes(tr)          # the worker: what a student's page needs at once (image, words, attention, steps)
    curve_bytes(tr)           # the worker, a moment later: the CFG curve
    x0_bytes(pipe, x0, i)     # the worker, when the page shows step i: that step's predicted x0, decoded then
    PayloadView(answer)       # the student's page: the same questions answered from those bytes (no torch, no model)

The bytes are a safetensors file (numpy arrays, JSON metadata in its header): no pickle crosses the wire.
"""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

from .parts import _word_at, _word_caption, _word_options

_KEY = "explainer.view"


class TraceView:
    """The playground's questions answered from a Trace in this process."""

    def __init__(self, tr: Any):
        self.trace = tr
        self.n_steps = len(tr.steps)
        self.has_uncond = bool(tr.has_uncond)
        self.has_attention = bool(getattr(tr, "levels", []))
        self.settings = dict(tr.settings)
        self.words = _word_options(tr)
        self.table: np.ndarray | None = None  # attention colours: matplotlib's own here

    def image_rgb(self) -> np.ndarray:
        from ..arrays import to_rgb

        return to_rgb(self.trace.image)

    def step_text(self, i: int) -> str:
        st = self.trace.steps[i]
        return (f"step {i + 1} of {self.n_steps} \u00b7 timestep {st.timestep:.0f} \u00b7 "
                f"noise level \u03c3 = {st.sigma:.3f}")

    def x0_rgb(self, i: int) -> np.ndarray | None:
        from ..arrays import to_rgb

        return to_rgb(self.trace.decode(i))

    def word_caption(self, index: int) -> str:
        return _word_caption(self.trace, index)

    def attention(self, index: int, i: int) -> np.ndarray:
        return self.trace.attention(_word_at(self.trace, index), step=i).float().numpy()

    def attention_by_step(self, index: int) -> np.ndarray:
        return self.trace.attention_by_step(_word_at(self.trace, index)).float().numpy()

    def cfg_curve_png(self) -> bytes | None:
        if not self.has_uncond:
            return None
        from ..plots import plot_cfg_delta_norm
        from .parts import _figure_png

        return _figure_png(plot_cfg_delta_norm(self.trace), 960)

    def control_used(self) -> tuple[np.ndarray, str] | None:
        used = getattr(self.trace, "_t", {}).get("control.image")
        if used is None:
            return None
        scale = self.settings.get("controlnet_conditioning_scale", 1.0)
        kind = str(self.settings.get("model_id", "")).rpartition("+controlnet-")[2] or "control"
        rgb = np.asarray(used.numpy() if hasattr(used, "numpy") else used, np.uint8)
        return rgb, f"<b>{html.escape(kind)} map, scale {float(scale):.2f}</b>"


def _pack(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata={_KEY: json.dumps(meta)})


def _unpack(data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    import struct

    from safetensors.numpy import load

    if len(data) < 8:
        raise ValueError("the worker's answer is empty or cut short")
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = json.loads(header.get("__metadata__", {}).get(_KEY, "{}"))
    return load(data), meta


def answer_bytes(tr: Any, notes: list[str] | None = None, run_id: str | None = None) -> bytes:
    """A run as the student's page needs it at once: the image, the words, every word's attention at every step
    (the finest level's map, as `tr.attention(word, step=i)` gives), the step captions and the control map used."""
    from ..plots import ATTENTION
    from .parts import colour_table

    view = TraceView(tr)
    arrays = {"image": view.image_rgb(), "table": colour_table(ATTENTION)}
    if view.has_attention and view.words:
        arrays["attention"] = np.stack([view.attention_by_step(idx) for _, idx in view.words]).astype(np.float32)
    used = view.control_used()
    if used is not None:
        arrays["control"] = used[0]
    meta = {"n_steps": view.n_steps, "has_uncond": view.has_uncond, "has_attention": view.has_attention,
            "words": [[label, idx] for label, idx in view.words],
            "captions": {str(idx): view.word_caption(idx) for _, idx in view.words},
            "steps": [view.step_text(i) for i in range(view.n_steps)],
            "control_caption": used[1] if used is not None else None,
            "settings": json.loads(json.dumps(view.settings, default=str)), "notes": list(notes or []),
            "run_id": run_id}
    return _pack(arrays, meta)


def curve_bytes(tr: Any) -> bytes:
    """What the page fills in after the image: the CFG curve (nothing without an unconditional pass)."""
    curve = TraceView(tr).cfg_curve_png()
    return _pack({"curve": np.frombuffer(curve, np.uint8)} if curve is not None else {}, {})


def x0_bytes(pipe: Any, x0: Any, i: int) -> bytes:
    """Step i's predicted x0 (`x0`: a run's x0 latents, one per step), decoded by `pipe`'s VAE when a page asks for
    that step: a class that only looks at its images pays for no decoding."""
    from ..latents import decode_pil

    return _pack({"x0": np.asarray(decode_pil(pipe, x0[i:i + 1])[0].convert("RGB"))}, {"step": int(i)})


class PayloadView:
    """The playground's questions answered from the worker's bytes (`answer_bytes`, then `add_curve` and `add_x0`
    for each step the page shows)."""

    trace = None

    def __init__(self, answer: bytes):
        self._a, meta = _unpack(answer)
        self.n_steps = int(meta["n_steps"])
        self.has_uncond = bool(meta["has_uncond"])
        self.has_attention = bool(meta["has_attention"])
        self.settings = meta["settings"]
        self.notes = list(meta.get("notes", []))
        self.run_id = meta.get("run_id")
        self.failed_details = False
        self.has_curve = False  # the curve's answer has arrived (it holds no curve without an unconditional pass)
        self._x0: dict[int, np.ndarray] = {}
        self.x0_asked: set[int] = set()  # steps whose x0 the page has asked the worker for (and not given up on)
        self.words = [(str(label), int(idx)) for label, idx in meta["words"]]
        self._captions = {int(k): v for k, v in meta["captions"].items()}
        self._steps = list(meta["steps"])
        self._control_caption = meta.get("control_caption")
        self._row = {idx: r for r, (_, idx) in enumerate(self.words)}
        self.table = self._a["table"]
        self._d: dict[str, np.ndarray] = {}

    def add_curve(self, data: bytes) -> None:
        self._d, _ = _unpack(data)
        self.has_curve = True

    def add_x0(self, data: bytes) -> None:
        arrays, meta = _unpack(data)
        self._x0[int(meta["step"])] = arrays["x0"]

    def image_rgb(self) -> np.ndarray:
        return self._a["image"]

    def step_text(self, i: int) -> str:
        return self._steps[i]

    def x0_rgb(self, i: int) -> np.ndarray | None:
        """Step i's predicted x0, or None until the worker's answer for that step arrived."""
        return self._x0.get(i)

    def word_caption(self, index: int) -> str:
        return self._captions[index]

    def attention(self, index: int, i: int) -> np.ndarray:
        return self._a["attention"][self._row[index], i]

    def cfg_curve_png(self) -> bytes | None:
        return self._d["curve"].tobytes() if "curve" in self._d else None

    def control_used(self) -> tuple[np.ndarray, str] | None:
        return (self._a["control"], self._control_caption) if "control" in self._a else None
