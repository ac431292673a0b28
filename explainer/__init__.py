"""explainer: open up a text-to-image diffusion model and watch every part of it work."""

from .models import load_pipeline

__all__ = ["load_pipeline"]
__version__ = "0.1.0"
