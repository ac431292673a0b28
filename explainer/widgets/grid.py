"""The grid explorer: pick two settings to vary and their values; the others stay fixed; Generate -> labelled grid."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from .parts import (
    _add_notes,
    _collecting_warnings,
    _figure_png,
    _image,
    _message,
    _reporting,
    sampler_options,
)

GRID_AXES = {"seeds": "seed", "cfgs": "CFG", "steps": "steps", "schedulers": "sampler",
             "negative_prompts": "negative prompt"}
GRID_HELP = ("Values are separated by commas (e.g. 0, 1, 2 or 1, 3, 7.5); negative prompts by | "
             "(write none for no negative prompt).")


def _parse_values(axis: str, text: str) -> list:
    if axis == "negative_prompts":
        parts = [p.strip() for p in text.split("|")]
        return [None if p.lower() in ("", "none") else p for p in parts]
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"give at least one value for {GRID_AXES[axis]}. {GRID_HELP}")
    out = []
    for p in parts:
        try:
            out.append(int(p) if axis in ("seeds", "steps") else float(p) if axis == "cfgs" else
                       None if p.lower() == "none" else p)
        except ValueError:
            kind = "whole number" if axis in ("seeds", "steps") else "number"
            raise ValueError(f"{GRID_AXES[axis]} values must each be a {kind}; could not read {p!r}") from None
    return out


class GridExplorer(W.VBox):
    """Pick two settings to vary (rows, columns) and their values; the others stay fixed; Generate -> labelled grid."""

    def __init__(self, pipe: Any, prompt: str = "a red circle left of a blue square"):
        self.pipe = pipe
        self.result: Any = None
        self.message = _message()
        axes = [(label, key) for key, label in GRID_AXES.items()]
        self.prompt = W.Text(value=prompt, description="prompt", layout=W.Layout(width="420px"))
        self.rows_axis = W.Dropdown(options=axes, value="seeds", description="rows")
        self.rows_values = W.Text(value="0, 1, 2", description="values", placeholder="0, 1, 2")
        self.cols_axis = W.Dropdown(options=axes, value="cfgs", description="columns")
        self.cols_values = W.Text(value="1, 3, 7.5, 12", description="values", placeholder="1, 3, 7.5")
        self.seed = W.IntText(value=0, description="seed", layout=W.Layout(width="200px"))
        self.cfg = W.FloatText(value=7.5, description="CFG", layout=W.Layout(width="200px"))
        self.steps = W.IntText(value=20, description="steps", layout=W.Layout(width="200px"))
        self.sampler = W.Dropdown(options=sampler_options(pipe), value=None, description="sampler",
                                  layout=W.Layout(width="260px"))
        self.generate = W.Button(description="Generate grid", button_style="primary", icon="th")
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="260px"))
        self.status = W.Label("")
        self.image = _image("explainer-grid-image")
        for w, cls in ((self.prompt, "prompt"), (self.rows_axis, "rows-axis"), (self.rows_values, "rows-values"),
                       (self.cols_axis, "cols-axis"), (self.cols_values, "cols-values"), (self.seed, "seed"),
                       (self.cfg, "cfg"), (self.steps, "steps"), (self.sampler, "sampler"),
                       (self.generate, "generate"), (self.progress, "progress"), (self.status, "status")):
            w.add_class(f"explainer-{cls}")
        super().__init__([
            W.HTML("<b>Grid explorer</b> \u2014 vary two settings, keep the rest fixed"), self.prompt,
            W.HBox([self.rows_axis, self.rows_values]), W.HBox([self.cols_axis, self.cols_values]),
            W.HTML(f"<small>{html.escape(GRID_HELP)} Fixed settings (used where not varied):</small>"),
            W.HBox([self.seed, self.cfg, self.steps, self.sampler]),
            W.HBox([self.generate, self.progress, self.status]), self.message, self.image])
        self.add_class("explainer-grid-explorer")
        self.generate.on_click(lambda _: self.run())

    def _args(self) -> dict:
        if not self.prompt.value.strip():
            raise ValueError("prompt is empty: type what the pictures should show")
        r, c = self.rows_axis.value, self.cols_axis.value
        if r == c:
            raise ValueError(f"rows and columns both vary {GRID_AXES[r]}: choose two different settings")
        args: dict[str, Any] = {"seeds": self.seed.value, "cfgs": self.cfg.value, "steps": self.steps.value,
                                "schedulers": self.sampler.value, "negative_prompts": None}
        args[r] = _parse_values(r, self.rows_values.value)
        args[c] = _parse_values(c, self.cols_values.value)
        n = len(args[r]) * len(args[c])
        if n > 64:
            raise ValueError(f"that is {n} images; keep the grid to 64 or fewer (e.g. 8 x 8)")
        from ..validation import check_steps

        for v in args["steps"] if isinstance(args["steps"], list) else [args["steps"]]:
            check_steps(v, "steps", maximum=200)  # as the playground: a classroom grid of 1000-step cells never ends
        return dict(args, prompt=self.prompt.value, rows=r)

    def run(self) -> None:
        """What the Generate button does."""
        from ..sweeps import grid

        self.generate.disabled = True
        notes: list[str] = []
        try:
            with _reporting(self.message), _collecting_warnings(notes):
                args = self._args()
                self.progress.value, self.progress.max = 0, len(args[args["rows"]]) * len(
                    args[self.cols_axis.value])
                self.status.value = "generating\u2026"

                def report(done: int, total: int) -> None:
                    self.progress.max, self.progress.value = total, done

                self.result = grid(self.pipe, progress=report, **args)
                from ..plots import plot_grid

                self.image.value = _figure_png(plot_grid(self.result), 900)
                self.status.value = f"{self.result.shape[0] * self.result.shape[1]} images in " \
                                    f"{self.result.seconds:.1f} s"
            if self.message.value:
                self.status.value = ""
            _add_notes(self.message, notes)
        finally:
            self.generate.disabled = False


def grid_explorer(pipe: Any = None, prompt: str | None = None) -> GridExplorer:
    """Choose two axes (seed, CFG, steps, sampler, negative prompt) and their values; see the labelled grid. The
    prompt defaults to the model's own first prompt (the fox on scenes-sd, the shapes prompt elsewhere)."""
    from ..models import load_model, model_key, session_model
    from ..shipped import first_prompt

    if pipe is None:
        pipe = load_model(session_model())
    return GridExplorer(pipe, first_prompt(model_key(pipe)) if prompt is None else prompt)
