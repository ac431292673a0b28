"""The CFG explorer: a CFG slider over a finished `cfg_sweep`, its own images judged, and its numbers."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np

from .parts import (
    _image,
    _message,
    _png,
    _reporting,
)

SWEEP_PX = 128  # on-screen size of one sweep image (six in a row stay within a notebook column)


class CfgExplorer(W.VBox):
    """A CFG slider over a finished sweep (`experiments.guidance.cfg_sweep`): one prompt's images, one per seed, at
    the chosen scale, each captioned with what the judge read, and the sweep's numbers at that scale. Nothing is
    generated: these are the very images the sweep's table counted."""

    def __init__(self, sweep: Any, prompt: str | None = None, scale: float | None = None):
        from ..experiments.guidance import check_sweep
        from ..validation import check_choice

        check_sweep(sweep)  # a finished cfg_sweep, not an empty or hand-made one
        prompts = list(dict.fromkeys(sweep.prompts))
        prompt = check_choice(prompts[0] if prompt is None else prompt, prompts, "prompt")
        scale = check_choice(sweep.scales[0] if scale is None else scale, sweep.scales, "scale")
        self.sweep = sweep
        self.message = _message()
        self.scale = W.SelectionSlider(options=[(f"{s:g}", s) for s in sweep.scales],
                                       value=next(s for s in sweep.scales if float(s) == float(scale)),
                                       description="CFG", continuous_update=True, layout=W.Layout(width="420px"))
        self.scale.add_class("explainer-cfg-scale")
        self.prompt = W.Dropdown(options=prompts, value=prompt, description="prompt", layout=W.Layout(width="420px"))
        self.prompt.add_class("explainer-sweep-prompt")
        self.row = W.HTML()
        self.row.add_class("explainer-cfg-row")
        n = max(sum(p == q for p in sweep.prompts) for q in prompts)
        self.images = [_image("explainer-sweep-image") for _ in range(n)]
        self.captions = [W.HTML() for _ in range(n)]
        for c in self.captions:
            c.add_class("explainer-sweep-caption")
        cells = [W.VBox([img, cap], layout=W.Layout(align_items="center", margin="0 4px", width=f"{SWEEP_PX + 8}px"))
                 for img, cap in zip(self.images, self.captions, strict=True)]
        super().__init__([
            W.HTML(f"<b>CFG explorer</b> \u2014 the sweep's own images ({len(sweep.prompts)} per scale, "
                   f"{sweep.steps} steps, DPM++ 2M): move the scale, pick a prompt"),
            W.HBox([self.scale, self.prompt]), self.row, self.message,
            W.HBox(cells, layout=W.Layout(flex_flow="row wrap"))])
        self.add_class("explainer-cfg-explorer")
        self.scale.observe(lambda _: self.update(), "value")
        self.prompt.observe(lambda _: self.update(), "value")
        self.update()

    def update(self) -> None:
        sw, s = self.sweep, self.scale.value
        with _reporting(self.message):
            a = sw.adherence[s]
            self.row.value = (
                f"At CFG {s:g}, over all {len(sw.prompts)} images: whole prompt right <b>{a['all']:.0%}</b> \u00b7 "
                f"both objects right {a.get('objects', float('nan')):.0%} \u00b7 relation right "
                f"{a.get('relation', float('nan')):.0%} \u00b7 extra objects {sw.extra_objects[s]:.0%} \u00b7 "
                f"saturation {sw.saturation[s]:.3f} \u00b7 clipped values {sw.clipped[s]:.2%}")
            ks = [k for k, p in enumerate(sw.prompts) if p == self.prompt.value]
            for slot, (img, cap) in enumerate(zip(self.images, self.captions, strict=True)):
                if slot >= len(ks):
                    img.value, cap.value = b"", ""
                    continue
                k = ks[slot]
                img.value = _png(np.asarray(sw.images[s][k].convert("RGB")), SWEEP_PX)
                verdict = sw.image_summary(s, k)
                colour = "#1a7f37" if verdict == "as asked" else "#b2182b"
                cap.value = (f"<small>seed {sw.seeds[k]}: <span style='color:{colour}'>"
                             f"{html.escape(verdict)}</span></small>")


def cfg_explorer(sweep: Any, prompt: str | None = None, scale: float | None = None) -> CfgExplorer:
    """A CFG slider over a finished `cfg_sweep`: one prompt's images at a scale, judged, with that scale's numbers."""
    return CfgExplorer(sweep, prompt, scale)


