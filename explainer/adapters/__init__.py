"""Pipeline families: what differs between them, and nothing else (one small file per family).

    adapter = get_adapter(pipe)   # SDAdapter, SDXLAdapter, PixArtAdapter, SD3Adapter, FluxAdapter

A new family subclasses `Adapter` (explainer/adapters/base.py) in its own file and adds one line to FAMILIES below
(more specific classes first); `capture`, the recorder and `trace` use only the adapter. See /work/notes/seam.md.
"""

from __future__ import annotations

from typing import Any

from .base import Adapter
from .controlnet import ControlNetAdapter
from .flux import FluxAdapter
from .pixart import PixArtAdapter
from .sd import SDAdapter
from .sd3 import SD3Adapter
from .sdxl import SDXLAdapter

# (diffusers pipeline class name, adapter): matched with isinstance, first match wins (subclasses first)
FAMILIES: list[tuple[str, type[Adapter]]] = [
    ("StableDiffusionControlNetPipeline", ControlNetAdapter),
    ("StableDiffusionXLPipeline", SDXLAdapter),
    ("StableDiffusionPipeline", SDAdapter),
    ("PixArtSigmaPipeline", PixArtAdapter),
    ("PixArtAlphaPipeline", PixArtAdapter),
    ("StableDiffusion3Pipeline", SD3Adapter),
    ("FluxPipeline", FluxAdapter),
]

SUPPORTED = "StableDiffusionPipeline (SD 1.x/2.x), StableDiffusionControlNetPipeline, " \
            "StableDiffusionXLPipeline, PixArtAlphaPipeline, " \
            "PixArtSigmaPipeline, StableDiffusion3Pipeline and FluxPipeline"


def register(pipeline_class_name: str, adapter: type[Adapter], first: bool = True) -> None:
    """Add a family (e.g. a ControlNet pipeline) without editing this file; `first` puts it before the others."""
    entry = (pipeline_class_name, adapter)
    if entry not in FAMILIES:
        FAMILIES.insert(0, entry) if first else FAMILIES.append(entry)


def get_adapter(pipe: Any) -> Adapter:
    """The adapter for a pipeline; other pipelines fail clearly (NotImplementedError naming what is supported)."""
    import diffusers

    for cls_name, adapter in FAMILIES:
        cls = getattr(diffusers, cls_name, None)
        if cls is not None and isinstance(pipe, cls):
            return adapter(pipe)
    raise NotImplementedError(f"tracing {type(pipe).__name__} is not supported yet: explainer traces {SUPPORTED}.")


__all__ = ["FAMILIES", "SUPPORTED", "Adapter", "ControlNetAdapter",
           "FluxAdapter", "PixArtAdapter", "SD3Adapter", "SDAdapter",
           "SDXLAdapter", "get_adapter", "register"]
