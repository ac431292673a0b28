"""explainer: open up a text-to-image diffusion model and watch every part of it work.

    import explainer as ex
    pipe = ex.load_pipeline()                 # the shipped shapes model (or a path / hub id)
    tr = ex.trace(pipe, "a red circle left of a blue square", seed=0)
    ex.plots.plot_filmstrip(tr)               # figures: ex.plots; explorers: ex.widgets; grids: ex.grid
"""

from . import export, plots, projections, sweeps, verdicts
from ._version import __version__
from .export import save_png, trace_to_gif
from .gan import load_gan
from .models import load_pipeline
from .schedulers import make_scheduler, scheduler_names
from .sweeps import Filmstrip, GridResult, generate, grid, interpolate_prompts, interpolate_seeds, slerp
from .text import encode_prompts
from .trace import Step, Trace, trace, trace_batch
from .verdicts import Verdict
from .verdicts import table as verdict_table

__all__ = [
    "load_pipeline",
    "load_gan",
    "trace",
    "trace_batch",
    "Trace",
    "Step",
    "encode_prompts",
    "make_scheduler",
    "scheduler_names",
    "grid",
    "GridResult",
    "generate",
    "Filmstrip",
    "slerp",
    "sweeps",
    "interpolate_seeds",
    "interpolate_prompts",
    "plots",
    "projections",
    "export",
    "save_png",
    "trace_to_gif",
    "widgets",
    "judge",
    "attention_scores",
    "verdicts",
    "Verdict",
    "verdict_table",
]

def __getattr__(name: str):
    # ipywidgets and the judge load on first use, so `import explainer` stays light for scripts and the CLI.
    if name in ("widgets", "judge", "attention_scores"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'explainer' has no attribute {name!r}")
