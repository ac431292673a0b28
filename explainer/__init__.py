"""explainer: open up a text-to-image diffusion model and watch every part of it work.

    import explainer as ex
    pipe = ex.load_pipeline()                 # the shipped shapes model (or a path / hub id)
    tr = ex.trace(pipe, "a red circle left of a blue square", seed=0)
"""

from .models import load_pipeline
from .schedulers import make_scheduler, scheduler_names
from .trace import Step, Trace, encode_prompts, trace, trace_batch

__all__ = [
    "load_pipeline",
    "trace",
    "trace_batch",
    "Trace",
    "Step",
    "encode_prompts",
    "make_scheduler",
    "scheduler_names",
]
__version__ = "0.1.0"
