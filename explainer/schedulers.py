"""Samplers by short name: "dpm++2m" -> a diffusers scheduler built from the pipeline's own scheduler config.

`make_scheduler(name, config)` is exactly what `trace(..., scheduler=name)` installs for the run, so the untraced
equivalent of a trace is `pipe.scheduler = make_scheduler(name, pipe.scheduler.config); pipe(...)`.
The overrides are the settings Stable Diffusion's own configs use for each sampler (latent diffusion never clips x0).
"""

from __future__ import annotations

from typing import Any

# name -> (diffusers class name, config overrides, one-line description)
SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ddim": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}, "DDIM, deterministic (eta=0)"),
    "ddpm": ("DDPMScheduler", {"clip_sample": False}, "DDPM, ancestral: fresh noise every step"),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": False},
             "PNDM / PLMS (SD 1.x's original default); its first step evaluates the U-Net twice"),
    "euler": ("EulerDiscreteScheduler", {}, "Euler (k-diffusion), deterministic"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler ancestral: adds fresh noise every step"),
    "dpm++2m": ("DPMSolverMultistepScheduler",
                {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
                "DPM-Solver++ 2M, second-order multistep"),
    "dpm++2m_karras": ("DPMSolverMultistepScheduler",
                       {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
                       "DPM-Solver++ 2M with Karras sigmas"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun, second order: two U-Net calls per step (the last step has one)"),
    "lcm": ("LCMScheduler", {}, "Latent Consistency Model sampler (meant for LCM-distilled models)"),
}

# Flow-matching samplers (SD3, Flux): kept apart because they only fit flow-matching models (see each adapter's
# `samplers()`); `make_scheduler` builds them from the pipeline's config, keeping its `shift`.
FLOW_SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}, "Flow-matching Euler (SD3/Flux default), config shift"),
    "flow_heun": ("FlowMatchHeunDiscreteScheduler", {}, "Flow-matching Heun, second order: two calls per step"),
}
_ALL = {**SCHEDULERS, **FLOW_SCHEDULERS}


def scheduler_names() -> list[str]:
    """The short names `trace(scheduler=...)` accepts for U-Net pipelines (flow-matching ones: FLOW_SCHEDULERS)."""
    return list(SCHEDULERS)


def check_scheduler_name(name: str | None) -> str | None:
    """None keeps the pipeline's own scheduler; anything else must be a known short name."""
    if name is None:
        return None
    if not isinstance(name, str) or name.lower() not in _ALL:
        raise ValueError(f"scheduler must be None (keep the pipeline's own) or one of {scheduler_names()}, "
                         f"got {name!r}")
    return name.lower()


def make_scheduler(name: str, config: Any):
    """A fresh scheduler of the named kind, from `config` (the pipeline's scheduler config) plus the overrides."""
    import diffusers

    name = check_scheduler_name(name)
    cls_name, overrides, _ = _ALL[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(config, **overrides)


def scheduler_name_of(scheduler: Any) -> str:
    """The short name matching a scheduler object, or its class name when none matches."""
    cls = type(scheduler).__name__
    for name, (cls_name, overrides, _) in _ALL.items():
        if cls_name == cls and all(scheduler.config.get(k) == v for k, v in overrides.items()):
            return name
    return cls
