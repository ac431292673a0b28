"""The attention explorer: where a word looks, by level and by step (or the mean over steps), with the judged
object's outline and the map's scores against it."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np

from .parts import (
    DISPLAY_PX,
    _attention_rgb,
    _choose_token,
    _default_word,
    _group_word,
    _has_attention,
    _image,
    _level_options,
    _message,
    _panel,
    _png,
    _reporting,
    _step_text,
    _word_at,
    _word_caption,
    _word_options,
)


class AttentionExplorer(W.VBox):
    """Where a word looks: pick the word, the U-Net level (or all), and one step or the mean over steps."""

    MODES = ("mean over steps", "one step")

    def __init__(self, tr: Any, token: str | int | None = None):
        if not _has_attention(tr):
            raise ValueError("this trace has no attention maps: trace it with attention=True")
        n = len(tr.steps)
        self.trace = tr
        self.message = _message()
        opts = _word_options(tr)
        self.token = W.Dropdown(options=opts, value=_default_word(opts), description="word")
        self.token.add_class("explainer-token")
        self.level = W.Dropdown(options=_level_options(tr), value=None, description=_group_word(tr))
        self.level.add_class("explainer-level")
        self.mode = W.ToggleButtons(options=self.MODES, value=self.MODES[0])
        self.mode.add_class("explainer-attention-mode")
        self.step = W.IntSlider(value=n - 1, min=0, max=n - 1, description="step", disabled=True,
                                layout=W.Layout(width="420px"))
        self.step.add_class("explainer-step")
        self.overlay = _image("explainer-attention")
        self.heat = _image("explainer-attention-map")
        self._objects = _judged_objects(tr)  # the judge's objects and their masks (attention_scores.judged_masks)
        self.mask = W.Dropdown(options=[("none", None), ("named object", "auto")] + [
            (f"{o.color} {o.shape}", i) for i, (o, _) in enumerate(self._objects)], value="auto", description="mask")
        self.mask.add_class("explainer-mask")
        box1, self.caption = _panel("over the image", self.overlay)
        box2, _ = _panel("heat map alone", self.heat)
        super().__init__([
            W.HTML(f"<b>Attention explorer</b> \u2014 \u201c{html.escape(tr.prompt)}\u201d"),
            W.HBox([self.token, self.level, self.mask]), W.HBox([self.mode, self.step]), self.message,
            W.HBox([box1, box2])])
        self.add_class("explainer-attention-explorer")
        for w in (self.token, self.level, self.mode, self.step, self.mask):
            w.observe(lambda _: self.update(), "value")
        self.update()
        if token is not None:
            _choose_token(self.token, token, tr, self.message)

    def update(self) -> None:
        from ..arrays import to_rgb

        tr = self.trace
        one = self.mode.value == self.MODES[1]
        self.step.disabled = not one
        with _reporting(self.message):
            if self.token.value is None:  # an empty prompt, or one of words the tokenizer cannot write
                self.overlay.value = self.heat.value = b""
                self.caption.value = ""
                raise ValueError(f"the prompt {tr.prompt!r} has no word the model read, so there is no attention "
                                 "to show: trace a prompt with words in it (e.g. \u201ca red circle\u201d)")
            step = self.step.value if one else None
            amap = tr.attention(_word_at(tr, self.token.value), step=step, level=self.level.value).float().numpy()
            img = to_rgb(tr.image)
            self.overlay.value = _png(_attention_rgb(img, amap))
            self.heat.value = _png(_attention_rgb(img, amap, overlay=False))
            when = "mean over steps" if step is None else _step_text(tr, step)
            self.caption.value = (f"<b>{_word_caption(tr, self.token.value)}</b>, {when}, "
                                  f"{'all ' + _group_word(tr) + 's' if self.level.value is None else self.level.value} "
                                  f"(max {amap.max():.2f})")
            self._show_mask(amap, img)

    def _show_mask(self, amap: np.ndarray, img: np.ndarray) -> None:
        """Outline the chosen judged object over the map and add the map's scores against it to the caption."""
        from .. import attention_scores as S

        choice, idx = self.mask.value, None
        if choice == "auto":  # the judged object the chosen word names (by its colour or shape)
            label = dict((v, k) for k, v in self.token.options)[self.token.value].split(" (#")[0].lower()
            idx = next((i for i, (o, _) in enumerate(self._objects) if label in (o.color, o.shape)), None)
        elif choice is not None:
            idx = choice
        if idx is None:
            if choice == "auto":
                self.caption.value += "<br>mask: the judge found no object this word names"
            return
        obj, mask = self._objects[idx]
        s = S.score_map(amap, mask)
        self.overlay.value = _png(S.outline_rgb(_attention_rgb(img, amap), mask, DISPLAY_PX))
        self.caption.value += (f"<br><span class='explainer-map-score'>vs the judged {obj.color} {obj.shape} "
                               f"(outlined): peak {'inside' if s.pointing else 'outside'}, mass inside "
                               f"{s.mass_inside:.0%} (area {s.area:.0%}), AUC {s.auc:.2f}, best IoU "
                               f"{s.best_iou:.2f}</span>")


def _judged_objects(tr: Any) -> list:
    """(JudgedObject, 32x32 mask) for the trace's final image; empty when the judge cannot read it, and for a model
    loaded from outside the shapes world (the judge only knows our shapes: on another model its reading would mean
    nothing). Config-built pipelines without a model id keep the judge (tests build the shapes architecture so)."""
    from ..attention_scores import judged_masks
    from ..models import is_shapes_model

    if getattr(tr, "settings", {}).get("model_id") and not is_shapes_model(tr):  # a named model of someone else's
        return []
    try:
        return judged_masks(tr.image)
    except Exception:  # noqa: BLE001 - a picture the judge cannot segment simply offers no masks
        return []


def attention_explorer(tr: Any, token: str | int | None = None) -> AttentionExplorer:
    """Per-word cross-attention over the image, by level and by step (or averaged over steps)."""
    return AttentionExplorer(tr, token)


