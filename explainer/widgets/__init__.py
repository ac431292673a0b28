"""Interactive explorers (ipywidgets 8; JupyterLab and Voila): move a slider, see the model's insides change.
One file per explorer; `parts` holds what they share (pictures, messages, word menus); `run_view` reads a run the same
way from a Trace here or from the classroom's shared worker (`worker_page`, `explainer.serving`).

    ex.widgets.step_explorer(tr)        # slider over steps: x_t, predicted noise, CFG delta, x0, attention of a word
    ex.widgets.attention_explorer(tr)   # word x level x (one step | mean over steps), over the image
    ex.widgets.playground(pipe)         # prompt, negative, seed, CFG, steps, sampler, Generate -> image + trace panels
                                        # (+ a control map for the shipped ControlNets on the shapes model); in the
                                        # classroom the same page, its runs made by the shared worker
    ex.widgets.grid_explorer(pipe)      # pick two axes and their values -> labelled image grid
    ex.widgets.cfg_explorer(sweep)      # CFG slider over a finished cfg_sweep: its images, judged, and its numbers

Each returns an ipywidgets container (display it, or leave it as a cell's last line). Widgets are thin: numbers come
from the Trace, figures from `explainer.plots`; pictures are `ipywidgets.Image` PNGs upscaled with nearest-neighbour
(a 32x32 image shows as 256x256 with crisp pixels), so a browser test can compare their bytes or pixels.
Bad input (steps 0, an empty prompt, a word that is not in the prompt, ...) shows a readable message inside the widget
(`explainer-message`), never a traceback, and the widget keeps working. What the toolkit warns about during a run
(words dropped beyond the token limit, ...) shows there too, as a note: a `warnings.warn` inside a button callback
would otherwise never reach the page.

Stable CSS classes (for browser tests and styling), by widget:
  all:        explainer-message (HTML: error/help text; empty when all is well; errors carry `explainer-error`,
              notes from the run's warnings `explainer-warning`)
  step explorer (explainer-step-explorer):
              explainer-step (IntSlider), explainer-token (Dropdown), explainer-level (Dropdown),
              explainer-step-info (Label), images explainer-xt, explainer-noise, explainer-cfg-delta, explainer-x0,
              explainer-attention
  attention explorer (explainer-attention-explorer):
              explainer-token, explainer-level, explainer-attention-mode (ToggleButtons: "mean over steps" /
              "one step"), explainer-step, explainer-attention (overlay image), explainer-attention-map (heat map),
              explainer-mask (Dropdown: none / named object / a judged object; outlined on the overlay, its scores
              in a span of class explainer-map-score inside the caption)
  playground (explainer-playground):
              inputs explainer-prompt, explainer-negative, explainer-seed, explainer-cfg, explainer-steps
              (IntText), explainer-sampler (Dropdown); explainer-generate (Button); explainer-progress
              (IntProgress); explainer-status (Label: timing); outputs explainer-image (final image),
              explainer-step (IntSlider), explainer-step-image (x0 at that step), explainer-word (Dropdown),
              explainer-attention (the word's attention at that step), explainer-cfg-curve (CFG-delta curve PNG;
              hidden when CFG <= 1, with a note in explainer-cfg-note);
              control map (ControlNet; the whole explainer-control-panel shows only on the shipped shapes model):
              explainer-control (Dropdown: none / edges / segmentation), explainer-control-parts (hidden while
              control is none) holding explainer-control-scale (FloatSlider 0-2), explainer-control-seed (IntText:
              the scene whose map is drawn), explainer-control-next (Button: another scene),
              explainer-control-from-image (Button: the map of the last image as the judge reads it),
              explainer-control-map (the map the next Generate uses) and explainer-control-caption (what it shows);
              in the results explainer-control-used (the map the shown image was made with, beside it)
  grid explorer (explainer-grid-explorer):
              explainer-prompt, explainer-rows-axis, explainer-rows-values, explainer-cols-axis,
              explainer-cols-values, explainer-seed, explainer-cfg, explainer-steps, explainer-sampler,
              explainer-generate, explainer-progress, explainer-status, explainer-grid-image
  cfg explorer (explainer-cfg-explorer):
              explainer-cfg-scale (SelectionSlider over the sweep's scales), explainer-sweep-prompt (Dropdown),
              explainer-cfg-row (HTML: the sweep's numbers at that scale), explainer-sweep-image (one per seed) and
              explainer-sweep-caption (what the judge read in it)
"""


from .attention import AttentionExplorer, _judged_objects, attention_explorer
from .cfg import SWEEP_PX, CfgExplorer, cfg_explorer
from .grid import GRID_AXES, GRID_HELP, GridExplorer, _parse_values, grid_explorer
from .parts import DISPLAY_PX, STOPWORDS, _collecting_warnings, sampler_options
from .playground_ui import (
    CONTROL_MAP_PX,
    CONTROL_SCENE_SEED,
    SEGMENTATION_LEGEND,
    LocalBackend,
    Playground,
    playground,
    scene_from_judge,
)
from .step import StepExplorer, step_explorer

__all__ = ["step_explorer", "StepExplorer", "attention_explorer", "AttentionExplorer", "playground", "Playground",
           "LocalBackend", "grid_explorer", "GridExplorer", "cfg_explorer", "CfgExplorer", "sampler_options",
           "control_conditions", "control_pipeline", "scene_from_judge", "load_model", "session_model", "model_key",
           "CONTROL_SCENE_SEED", "CONTROL_MAP_PX", "SEGMENTATION_LEGEND", "DISPLAY_PX", "STOPWORDS", "SWEEP_PX",
           "GRID_AXES", "GRID_HELP", "_SESSION", "_judged_objects", "_collecting_warnings", "_parse_values"]

#: the session's models live in explainer.models (imported on first use: a classroom page never loads torch)
_FROM_MODELS = {"_SESSION": "_SESSION", "control_conditions": "control_conditions", "load_model": "load_model",
                "model_key": "model_key", "session_model": "session_model", "control_pipeline": "controlnet_pipeline"}


def __getattr__(name: str):
    if name in _FROM_MODELS:
        from .. import models

        return getattr(models, _FROM_MODELS[name])
    raise AttributeError(f"module 'explainer.widgets' has no attribute {name!r}")
