"""The playground: prompt, negative, seed, CFG, steps, sampler, model menu and Generate; the image, a step slider
over the predicted clean image, a word's attention at that step and the CFG curve; on the shipped shapes model a
ControlNet control map. The page asks a backend for its runs: `LocalBackend` holds the pipeline in this process (a
notebook); the classroom's student pages use `worker_page.WorkerBackend`, which asks the shared worker
(`explainer.serving`) and holds no model of its own."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np

from ..shipped import first_prompt
from .parts import (
    _add_notes,
    _attention_rgb,
    _collecting_warnings,
    _default_word,
    _image,
    _message,
    _panel,
    _png,
    _reporting,
    sampler_options,
)

#: the scene whose map the control panel draws first: an evaluation scene (seeds from shapes.EVAL_SEED on never
#: appear in training), the one lesson 14 opens with
CONTROL_SCENE_SEED = 10_300_003
CONTROL_MAP_PX = 128  # on-screen size of a control map (half a picture panel)
SEGMENTATION_LEGEND = ("colours: circle red \u00b7 square green \u00b7 triangle blue \u00b7 star yellow "
                       "\u00b7 cross magenta (the shape class, not the object's colour: the prompt says that)")
_CHOICES: dict[str, Any] = {}  # this page's remembered control choice (the model's is models.session_model)


class LocalBackend:
    """Runs in this process: the pipeline is here (models.load_model caches one per model for the session)."""

    def __init__(self, pipe: Any):
        from ..models import model_key, split_controlnet

        pipe, self.preset = split_controlnet(pipe)
        check_pipeline(pipe)
        self.pipe = pipe
        self.key = model_key(pipe)
        from ..models import _SESSION

        _SESSION.setdefault("pipes", {}).setdefault(self.key, pipe)  # switching back needs no reload

    def choices(self) -> list[str]:
        from ..models import model_choices

        return model_choices(self.pipe)

    def all_controls(self) -> list[str]:
        from ..models import CONTROLNETS

        return list(CONTROLNETS)

    def switch(self, key: str) -> str:
        from ..models import load_model

        self.pipe, self.key = load_model(key), key
        return f"{key} loaded ({type(self.pipe).__name__})"

    def samplers(self) -> list[tuple[str, str | None]]:
        return sampler_options(self.pipe)

    def controls(self) -> list[str]:
        from ..models import control_conditions

        return control_conditions(self.pipe)

    def prepare_control(self, condition: str) -> None:
        from ..models import controlnet_pipeline

        controlnet_pipeline(self.pipe, condition)

    def run(self, args: dict, progress: Callable[[int, int], None]) -> Any:
        from .. import generation
        from ..models import controlnet_pipeline
        from ..trace import trace
        from .run_view import TraceView

        condition = args.pop("condition", None)
        pipe = controlnet_pipeline(self.pipe, condition) if condition is not None else self.pipe
        total = generation.expected_denoiser_calls(pipe, args["scheduler"], args["steps"])
        progress(0, total)
        with generation.count_denoiser_calls(pipe, lambda n: progress(min(n, total), total)):
            tr = trace(pipe, **args)
        return TraceView(tr)

    def details(self, view: Any, page: Any) -> None:
        """Nothing to fetch: a TraceView decodes each step when it is shown."""


def check_pipeline(pipe: Any) -> None:
    """A playground needs a text-to-image diffusion pipeline: refuse anything else at once (not at Generate)."""
    if isinstance(pipe, str):
        raise ValueError(f"pipe must be a loaded pipeline, got the string {pipe!r}: to open a model by name or "
                         f"folder write playground(model={pipe!r})")
    if not (hasattr(pipe, "scheduler") and hasattr(pipe, "tokenizer")
            and (hasattr(pipe, "unet") or hasattr(pipe, "transformer"))):
        raise ValueError(f"pipe must be a diffusers text-to-image pipeline (load_pipeline(...)), got "
                         f"{type(pipe).__name__}: the playground traces diffusion steps, which "
                         f"{type(pipe).__name__} does not have")


class Playground(W.VBox):
    """Type a prompt, set the knobs, press Generate: the image, then the run's insides (a step slider over the
    predicted clean image, where a chosen word attends at that step, and how hard CFG pushed at each step).
    On the shipped shapes model a control menu adds a ControlNet: a map (edges or segmentation) of a scene drawn from
    a seed, or of the last image as the judge reads it, sets where things go; the prompt still says what."""

    def __init__(self, pipe: Any = None, prompt: str | None = None,
                 negative_prompt: str = "", seed: int = 0, cfg: float = 7.5, steps: int = 25,
                 scheduler: str | None = None, control: str | None = None, control_scale: float = 1.0,
                 control_seed: int = CONTROL_SCENE_SEED, backend: Any = None):
        from ..schedulers import check_scheduler_name

        self.backend = backend if backend is not None else LocalBackend(pipe)
        self.view: Any = None
        self._busy = False
        self.message = _message()
        self.model = W.Dropdown(options=[(k, k) for k in self.backend.choices()], value=self.backend.key,
                                description="model", layout=W.Layout(width="420px"))
        self.model.add_class("explainer-model")
        lay = W.Layout(width="420px")
        if prompt is None:  # the model's own first prompt: the article's fox on scenes-sd
            prompt = first_prompt(self.backend.key)
        self.prompt = W.Text(value=prompt, description="prompt", placeholder="describe a picture", layout=lay)
        self.negative = W.Text(value=negative_prompt, description="negative", placeholder="(optional) what to avoid",
                               layout=lay)
        self.seed = W.IntText(value=seed, description="seed", layout=W.Layout(width="200px"))
        self.cfg = W.FloatText(value=cfg, description="CFG", step=0.5, layout=W.Layout(width="200px"))
        self.steps = W.IntText(value=steps, description="steps", layout=W.Layout(width="200px"))
        scheduler = check_scheduler_name(scheduler)  # any spelling `trace` accepts ("DPM++2M")
        self.sampler = W.Dropdown(options=self.backend.samplers(), value=scheduler, description="sampler",
                                  layout=W.Layout(width="260px"))
        self.generate = W.Button(description="Generate", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="260px"))
        self.status = W.Label("")
        for w, cls in ((self.prompt, "prompt"), (self.negative, "negative"), (self.seed, "seed"), (self.cfg, "cfg"),
                       (self.steps, "steps"), (self.sampler, "sampler"), (self.generate, "generate"),
                       (self.progress, "progress"), (self.status, "status")):
            w.add_class(f"explainer-{cls}")
        self._build_results()
        preset = getattr(self.backend, "preset", None)
        self._build_control(control if control is not None else preset, control_scale, control_seed)
        self.results = W.VBox([W.HBox([self.step, self.word]), self.step_info,
                               W.HBox([self._image_box, self.control_used_box, self._step_box, self._attention_box]),
                               self.cfg_note, self.cfg_curve], layout=W.Layout(display="none"))
        super().__init__([
            W.HTML("<b>Playground</b> \u2014 generate an image and look inside the run"),
            self.model, self.prompt, self.negative, W.HBox([self.seed, self.cfg, self.steps, self.sampler]),
            self.control_panel, W.HBox([self.generate, self.progress, self.status]), self.message, self.results])
        self.add_class("explainer-playground")
        self.model.observe(lambda change: self.switch_model(change["new"]), "value")
        self.generate.on_click(lambda _: self.run())
        self.step.observe(lambda _: self.update(), "value")
        self.word.observe(lambda _: self.update(), "value")
        self.control.observe(lambda change: self.switch_control(change["new"]), "value")
        self.control_seed.observe(lambda _: self.draw_scene_map(), "value")
        self.control_next.on_click(lambda _: setattr(self.control_seed, "value", self.control_seed.value + 1))
        self.control_from_image.on_click(lambda _: self.map_from_last_image())

    @property
    def pipe(self) -> Any:
        """The pipeline in this process (None on a classroom page: the shared worker holds it)."""
        return getattr(self.backend, "pipe", None)

    @property
    def trace(self) -> Any:
        """The last run's Trace (None before the first, and on a classroom page, which gets a PayloadView)."""
        return getattr(self.view, "trace", None)

    def _build_results(self) -> None:
        self.image = _image("explainer-image")
        self.step = W.IntSlider(value=0, min=0, max=1, description="step", disabled=True,
                                layout=W.Layout(width="420px"))
        self.step.add_class("explainer-step")
        self.step_info = W.Label("")
        self.step_info.add_class("explainer-step-info")
        self.step_image = _image("explainer-step-image")
        self.word = W.Dropdown(options=[], description="word", disabled=True)
        self.word.add_class("explainer-word")
        self.attention = _image("explainer-attention")
        self.cfg_curve = _image("explainer-cfg-curve", width=640)
        self.cfg_note = W.HTML("")
        self.cfg_note.add_class("explainer-cfg-note")
        self._image_box, _ = _panel("image", self.image)
        self._step_box, self.step_caption = _panel("predicted x\u2080 at this step", self.step_image)
        self._attention_box, self.attention_caption = _panel("attention", self.attention)

    # ----------------------------------------------------------------------------------------- control map
    def _build_control(self, control: str | None, scale: float, scene_seed: int) -> None:
        from ..validation import check_seed

        names = tuple(self.backend.all_controls())
        if control is None:
            control = _CHOICES.get("control")  # this session's last choice, as the model menu remembers its own
        elif control == "none":
            control = None
        if control is not None and control not in names:
            raise ValueError(f"control must be None, 'none' or one of {list(names)}, got {control!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 <= float(scale) <= 2.0:
            raise ValueError(f"control_scale must be a number from 0 to 2, got {scale!r}")
        self.control = W.Dropdown(options=[("none", None)] + [(n, n) for n in names], value=control,
                                  description="control", layout=W.Layout(width="260px"))
        self.control_scale = W.FloatSlider(value=float(scale), min=0.0, max=2.0, step=0.05, description="scale",
                                           readout_format=".2f", continuous_update=False,
                                           layout=W.Layout(width="320px"))
        self.control_seed = W.IntText(value=check_seed(scene_seed, "control_seed"), description="scene seed",
                                      layout=W.Layout(width="220px"))
        self.control_next = W.Button(description="another scene", icon="random")
        self.control_from_image = W.Button(description="map of the last image", icon="image", disabled=True,
                                           tooltip="the judge reads the last image's objects; their exact map is "
                                                   "drawn from that reading")
        self.control_map = _image("explainer-control-map")
        self.control_caption = W.HTML("")
        self.control_used = _image("explainer-control-used")
        self.control_used_box, self.control_used_caption = _panel("control map", self.control_used)
        self.control_used_box.layout.display = "none"
        for w, cls in ((self.control, "control"), (self.control_scale, "control-scale"),
                       (self.control_seed, "control-seed"), (self.control_next, "control-next"),
                       (self.control_from_image, "control-from-image"), (self.control_caption, "control-caption")):
            w.add_class(f"explainer-{cls}")
        help_ = W.HTML("<small>A ControlNet reads a map and sets <i>where</i> things go; the prompt still says "
                       "<i>what</i>. Scale 0 is the plain model.</small>")
        self.control_parts = W.VBox([
            W.HBox([self.control_scale, self.control_seed, self.control_next, self.control_from_image]),
            W.HBox([self.control_map, self.control_caption], layout=W.Layout(align_items="center"))])
        self.control_parts.add_class("explainer-control-parts")
        self.control_panel = W.VBox([W.HBox([self.control, help_], layout=W.Layout(align_items="center")),
                                     self.control_parts])
        self.control_panel.add_class("explainer-control-panel")
        self._map_scene: Any = None
        self._map_label = ""
        self.control_map_image: Any = None  # the map (PIL, 32x32) the next Generate passes as control_image
        self.draw_scene_map()
        self._sync_control()

    def _sync_control(self) -> None:
        """Show the control parts where they mean something (the shipped shapes model), the map row while a
        control is chosen, and the judge's button once there is an image to read."""
        offered = self.backend.controls()
        self.control_panel.layout.display = None if offered else "none"
        self.control_parts.layout.display = None if self.control.value is not None else "none"
        self.control_from_image.disabled = self.view is None

    def _condition(self) -> str | None:
        """The control map the next run uses: the menu's choice where this model offers it, else none."""
        return self.control.value if self.control.value in self.backend.controls() else None

    def switch_control(self, condition: str | None) -> None:
        """What choosing a control map does: load the ControlNet (once per session), draw the current scene's map
        of that kind, and remember the choice for this session's next playground."""
        _CHOICES["control"] = condition
        self.generate.disabled = True
        try:
            with _reporting(self.message):
                if condition is not None and condition in self.backend.controls():
                    self.status.value = f"loading the {condition} ControlNet\u2026"
                    self.backend.prepare_control(condition)
                    self.status.value = f"{condition} ControlNet ready: Generate follows the map"
                elif condition is None:
                    self.status.value = ""
                self._draw_map()
        finally:
            self.generate.disabled = False
            self._sync_control()

    def draw_scene_map(self) -> None:
        """The map of the scene drawn from the scene seed (shapes.sample_scene: the exact map of its geometry)."""
        from .. import shapes
        from ..validation import check_seed

        with _reporting(self.message):
            seed = check_seed(self.control_seed.value, "scene seed")
            scene = shapes.sample_scene(seed)
            self._map_scene = scene
            self._map_label = f"scene {seed}: {shapes.caption_for(scene)}"
            self._draw_map()

    def map_from_last_image(self) -> None:
        """The map of the last generated image: the judge reads its objects (colour, shape, size, centre) and their
        exact map is drawn from that reading (an estimate: what the judge saw, not the pixels traced)."""
        with _reporting(self.message):
            if self.view is None:
                raise ValueError("generate an image first: its map is drawn from what the judge reads in it")
            scene, j = scene_from_judge(self.view.image_rgb())
            if scene is None:
                raise ValueError(f"the judge finds no object in the last image ({j.describe()}), so there is no map "
                                 "to take from it; draw a scene's map instead")
            self._map_scene = scene
            self._map_label = (f"the last image as the judge reads it: {j.describe()} \u2014 redrawn from that "
                               "reading (the judge's estimate of each object's shape, size and centre)")
            self._draw_map()

    def _draw_map(self) -> None:
        from .. import shapes

        condition = self.control.value
        if condition is None or self._map_scene is None:
            return
        self.control_map_image = shapes.render_condition(self._map_scene, condition)
        self.control_map.value = _png(np.asarray(self.control_map_image), CONTROL_MAP_PX)
        legend = f"<br><small>{html.escape(SEGMENTATION_LEGEND)}</small>" if condition == "segmentation" else ""
        self.control_caption.value = (f"<b>{condition} map</b> of {html.escape(self._map_label)}{legend}")

    # ----------------------------------------------------------------------------------------- runs
    def switch_model(self, key: str) -> None:
        """What choosing another model in the menu does: load it (once per session), reset the sampler menu to the
        new model's own, clear the results, and remember the choice for this session's next playground."""
        self.generate.disabled = True
        try:
            with _reporting(self.message):
                self.status.value = f"loading {key}\u2026"
                before = self.backend.key
                text = self.backend.switch(key)
                if self.prompt.value == first_prompt(before):  # the other world's opening prompt, not one typed
                    self.prompt.value = first_prompt(key)
                self.sampler.options = self.backend.samplers()
                self.sampler.value = None
                self.view = None
                self.results.layout.display = "none"
                self.status.value = text
        finally:
            self.generate.disabled = False
            self._sync_control()

    def _read(self) -> dict:
        from ..validation import check_cfg, check_seed, check_steps

        prompt = self.prompt.value
        if not prompt.strip():
            raise ValueError("prompt is empty: type what the picture should show, e.g. "
                             f"\u201c{first_prompt(self.backend.key)}\u201d")
        args = dict(prompt=prompt, negative_prompt=self.negative.value.strip() or None,
                    seed=check_seed(self.seed.value), cfg=check_cfg(self.cfg.value, "CFG"),
                    steps=check_steps(self.steps.value, "steps", maximum=200), scheduler=self.sampler.value)
        condition = self._condition()
        if condition is not None:
            if self.control_map_image is None:
                raise ValueError("there is no control map yet: set a scene seed (a whole number from 0) "
                                 "or take the map of the last image")
            args.update(condition=condition, control_image=self.control_map_image,
                        controlnet_conditioning_scale=float(self.control_scale.value))
        return args

    def _progress(self, done: int, total: int) -> None:
        self.progress.max, self.progress.value = max(total, 1), min(done, max(total, 1))

    def run(self) -> None:
        """What the Generate button does (callable directly, e.g. from tests). Warnings of the run (words dropped
        beyond the token limit, ...) are shown as a note in the message area."""
        self.generate.disabled = True
        notes: list[str] = []
        view = None
        try:
            with _reporting(self.message), _collecting_warnings(notes):
                args = self._read()
                self.status.value = "generating\u2026"
                t0 = time.perf_counter()
                view = self.backend.run(args, self._progress)
                notes.extend(n for n in getattr(view, "notes", []) if n not in notes)
                self.progress.value = self.progress.max
                self.status.value = f"done in {time.perf_counter() - t0:.1f} s"
                self.show(view)
            if self.message.value:
                self.status.value = ""
            _add_notes(self.message, notes)
        finally:
            self.generate.disabled = False
        if view is not None and view is self.view:
            self.backend.details(view, self)  # a classroom page: every step's x0 and the CFG curve follow

    def show(self, tr: Any) -> None:
        """Show a run in the result panels (the Generate button calls this): a Trace, or a view of one."""
        from .run_view import TraceView

        view = tr if hasattr(tr, "image_rgb") else TraceView(tr)
        self.view = view
        self.image.value = _png(view.image_rgb())
        self._show_control(view)
        n = view.n_steps
        self._busy = True  # one update at the end, not one per control change
        try:
            first = self.step.disabled
            self.step.max = n - 1
            self.step.value = n // 2 if first else min(self.step.value, n - 1)
            self.step.disabled = False
            opts = view.words
            old = self.word.label
            self.word.options = opts
            labels = [k for k, _ in opts]
            self.word.value = opts[labels.index(old)][1] if old in labels else _default_word(opts)
            self.word.disabled = not (view.has_attention and opts)
        finally:
            self._busy = False
        self.show_curve()
        self.results.layout.display = None
        self.update()

    def show_curve(self) -> None:
        """The CFG-delta curve, once the view has it (a classroom page receives it a moment after the image)."""
        view = self.view
        if view is None:
            return
        if view.has_uncond:
            png = view.cfg_curve_png()
            self.cfg_curve.value = png or b""
            self.cfg_curve.layout.display = None
            failed = getattr(view, "failed_details", False)
            self.cfg_note.value = ("" if png else "<i>the CFG curve did not arrive (generate again to retry)</i>"
                                   if failed else "<i>drawing the CFG curve\u2026</i>")
        else:
            self.cfg_curve.value = b""
            self.cfg_curve.layout.display = "none"
            self.cfg_note.value = ("<i>CFG \u2264 1: the model made no unconditional pass, so there is no CFG delta "
                                   "to plot. Raise CFG above 1 to see guidance at work.</i>")

    def _show_control(self, view: Any) -> None:
        """Beside the image: the control map it was made with (the run's own copy), or nothing for a plain run."""
        used = view.control_used()
        self._sync_control()
        if used is None:
            self.control_used.value = b""
            self.control_used_box.layout.display = "none"
            return
        self.control_used.value = _png(used[0], CONTROL_MAP_PX)
        self.control_used_caption.value = used[1]
        self.control_used_box.layout.display = None

    def update(self) -> None:
        view = self.view
        if view is None or self._busy:
            return
        with _reporting(self.message):
            i = self.step.value
            self.step_info.value = view.step_text(i)
            x0 = view.x0_rgb(i)
            if x0 is None and hasattr(self.backend, "want_x0"):  # a classroom page: the worker decodes it now
                self.backend.want_x0(view, i, self)
            self.step_image.value = _png(x0) if x0 is not None else b""
            self.step_caption.value = ("<b>predicted x\u2080 at this step</b>" if x0 is not None
                                       else "<b>predicted x\u2080: arriving\u2026</b>")
            if view.has_attention and self.word.value is not None:
                amap = view.attention(self.word.value, i)
                self.attention.value = _png(_attention_rgb(view.image_rgb(), amap, table=view.table))
                self.attention_caption.value = (f"<b>where {view.word_caption(self.word.value)} "
                                                f"attends at this step</b>")


def scene_from_judge(image: Any) -> tuple[Any, Any]:
    """(Scene, Judgement): the objects the judge reads in `image` (colour, shape, size, centre) as a shapes-world
    scene, so its exact maps can be drawn; None for the scene when the judge finds no object."""
    from .. import shapes
    from ..judge import judge

    if isinstance(image, np.ndarray):
        from PIL import Image

        image = Image.fromarray(image)
    j = judge(image)
    if not j.objects:
        return None, j
    objects = tuple(shapes.ShapeObject(o.color, o.shape, o.size, float(o.x), float(o.y)) for o in j.objects)
    return shapes.Scene(objects, j.background, j.relation, caption=j.describe()), j


def playground(pipe: Any = None, model: str | None = None, **defaults: Any) -> Playground:
    """The playground app. pipe=None loads `model`: a shipped model's name ("shapes-sd", "shapes-dit") or a
    pipeline folder; default: this session's last choice in a model menu, else the EXPLAINER_MODEL environment
    variable (what `python -m explainer.classroom --model PATH` sets), else the shipped shapes model. Inside the
    classroom (EXPLAINER_WORKER set by `python -m explainer.classroom`) and with no pipe given, the page asks the
    classroom's shared worker for its runs and loads no model itself.
    defaults: prompt, negative_prompt, seed, cfg, steps, scheduler (the initial values of the controls); control
    ("none", "edges", "segmentation"; default: this session's last choice, else none), control_scale (0-2) and
    control_seed (the scene whose map is drawn) on the shipped shapes model. A pipeline from
    `load_pipeline(controlnet="edges")` opens with that control chosen."""
    import os

    if pipe is None and os.environ.get("EXPLAINER_WORKER"):
        from .worker_page import WorkerBackend

        return Playground(backend=WorkerBackend(os.environ["EXPLAINER_WORKER"], model), **defaults)
    if pipe is None:
        from ..models import load_model, session_model

        pipe = load_model(session_model() if model is None else model)
    elif model is not None:
        raise ValueError("pass either pipe (a loaded pipeline) or model (a name or folder), not both")
    return Playground(pipe, **defaults)

