"""The step explorer: a slider over a trace's denoising steps, with x_t, the predicted noise, the CFG push, x0 and a
word's attention at that step."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np

from .parts import (
    _attention_rgb,
    _choose_token,
    _colour,
    _default_word,
    _group_word,
    _has_attention,
    _image,
    _level_options,
    _message,
    _panel,
    _png,
    _reporting,
    _signed_png,
    _step_text,
    _word_at,
    _word_caption,
    _word_options,
    _x0_png,
)


class StepExplorer(W.VBox):
    """A slider over the denoising steps of a trace; panels for that step:
    x_t going in (latent channels as tiles), the guided noise prediction, where CFG pushes (|cond - uncond| per
    position), the predicted clean image x0 (decoded), and where a chosen word attends."""

    def __init__(self, tr: Any, step: int = 0, token: str | int | None = None):
        from ..validation import check_step_index

        n = len(tr.steps)
        step = check_step_index(step, n, "step")  # a clear error for "3" or 2.5; -1 counts from the end
        self.trace = tr
        self.message = _message()
        self.step = W.IntSlider(value=min(max(step, 0), n - 1), min=0, max=n - 1, description="step",
                                continuous_update=True, layout=W.Layout(width="480px"))
        self.step.add_class("explainer-step")
        self.info = W.Label()
        self.info.add_class("explainer-step-info")
        opts = _word_options(tr)
        self.token = W.Dropdown(options=opts, value=_default_word(opts), description="word")
        self.token.add_class("explainer-token")
        self.level = W.Dropdown(options=_level_options(tr), value=None, description=_group_word(tr))
        self.level.add_class("explainer-level")
        if not _has_attention(tr):
            self.token.disabled = self.level.disabled = True
        self.images = {k: _image(f"explainer-{k}") for k in ("xt", "noise", "cfg-delta", "x0", "attention")}
        titles = {"xt": "x\u209c in (latent channels)", "noise": "predicted noise \u03b5",
                  "cfg-delta": "CFG push |cond \u2212 uncond|", "x0": "predicted x\u2080 (decoded)",
                  "attention": "attention"}
        boxes, self.captions = [], {}
        for k, img in self.images.items():
            box, cap = _panel(titles[k], img)
            boxes.append(box)
            self.captions[k] = cap
        super().__init__([
            W.HTML(f"<b>Step explorer</b> \u2014 \u201c{html.escape(tr.prompt)}\u201d"),
            W.HBox([self.step, self.token, self.level]), self.info, self.message,
            W.HBox(boxes, layout=W.Layout(flex_flow="row wrap"))])
        self.add_class("explainer-step-explorer")
        self.step.observe(lambda _: self.update(), "value")
        self.token.observe(lambda _: self.update(), "value")
        self.level.observe(lambda _: self.update(), "value")
        self.update()
        if token is not None:
            _choose_token(self.token, token, tr, self.message)

    def update(self) -> None:
        from ..arrays import latent_mosaic
        from ..plots import MAGNITUDE
        from ..readouts import cfg_delta_map

        tr, i = self.trace, self.step.value
        with _reporting(self.message):
            st = tr.steps[i]
            self.info.value = _step_text(tr, i)
            self.images["xt"].value = _signed_png(latent_mosaic(st.latents))
            self.images["noise"].value = _signed_png(latent_mosaic(st.noise_guided))
            if tr.has_uncond:
                m = cfg_delta_map(tr, i)
                self.images["cfg-delta"].value = _png(_colour(m, MAGNITUDE, 0.0, float(m.max()) or 1.0))
                self.captions["cfg-delta"].value = "<b>CFG push |cond \u2212 uncond|</b>"
            else:
                self.images["cfg-delta"].value = _png(np.full((8, 8, 3), 230, np.uint8))
                self.captions["cfg-delta"].value = "<b>no CFG delta (CFG \u2264 1)</b>"
            if _has_attention(tr) and self.token.value is not None:
                amap = tr.attention(_word_at(tr, self.token.value), step=i, level=self.level.value).float().numpy()
                from ..arrays import to_rgb

                self.images["attention"].value = _png(_attention_rgb(to_rgb(tr.image), amap))
                self.captions["attention"].value = (f"<b>attention to {_word_caption(tr, self.token.value)}</b> "
                                                    f"(max {amap.max():.2f})")
            else:
                self.captions["attention"].value = "<b>no attention recorded</b>"
            self.images["x0"].value = _x0_png(tr, i)


def step_explorer(tr: Any, step: int = 0, token: str | int | None = None) -> StepExplorer:
    """A step slider over a trace, with x_t, noise, CFG delta, x0 and a word's attention at that step."""
    return StepExplorer(tr, step, token)


