"""explainer: open up a text-to-image diffusion model and watch every part of it work.

    import explainer as ex
    pipe = ex.load_pipeline()                 # the shipped shapes model (or a path / hub id)
    tr = ex.trace(pipe, "a red circle left of a blue square", seed=0)
    ex.plots.plot_filmstrip(tr)               # figures: ex.plots; explorers: ex.widgets; grids: ex.grid
"""

import importlib
import sys
import types

from ._version import __version__ as __version__

# The public face, loaded on first use: `import explainer` stays light (no torch until a name needs it), so a
# classroom student's page (explainer.widgets.worker_page) runs without a model. name -> (module, attribute or None
# for the module itself).
_FACE = {
    "export": ("export", None), "plots": ("plots", None), "projections": ("projections", None),
    "sweeps": ("sweeps", None), "verdicts": ("verdicts", None), "widgets": ("widgets", None),
    "judge": ("judge", None), "attention_scores": ("attention_scores", None),
    "save_png": ("export", "save_png"), "trace_to_gif": ("export", "trace_to_gif"), "load_gan": ("gan", "load_gan"),
    "load_pipeline": ("models", "load_pipeline"), "make_scheduler": ("schedulers", "make_scheduler"),
    "scheduler_names": ("schedulers", "scheduler_names"), "Filmstrip": ("sweeps", "Filmstrip"),
    "GridResult": ("sweeps", "GridResult"), "generate": ("sweeps", "generate"), "grid": ("sweeps", "grid"),
    "interpolate_prompts": ("sweeps", "interpolate_prompts"), "interpolate_seeds": ("sweeps", "interpolate_seeds"),
    "slerp": ("sweeps", "slerp"), "encode_prompts": ("text", "encode_prompts"), "Step": ("trace", "Step"),
    "Trace": ("trace", "Trace"), "trace": ("trace", "trace"), "trace_batch": ("trace", "trace_batch"),
    "Verdict": ("verdicts", "Verdict"), "verdict_table": ("verdicts", "table"),
}

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
    if name not in _FACE:
        raise AttributeError(f"module 'explainer' has no attribute {name!r}")
    module, attr = _FACE[name]
    value = importlib.import_module(f".{module}", __name__)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FACE))


class _Face(types.ModuleType):
    """Importing a submodule binds it on its package under its own name; where the face gives that name to a function
    (`explainer.trace`, the function, lives in explainer/trace.py) the function keeps it."""

    def __setattr__(self, name: str, value: object) -> None:
        face = _FACE.get(name)
        if face is not None and face[1] is not None and isinstance(value, types.ModuleType):
            value = getattr(value, face[1])
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face
