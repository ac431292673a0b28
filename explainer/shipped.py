"""The models shipped inside the package, by name, and what a page opens with on each (torch-free: the classroom's
thin student pages read it too)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
SHIPPED_MODEL = ASSETS / "shapes-sd"  # load_pipeline()'s default: the lessons' shapes model
#: the pipelines shipped in the package, by the name load_pipeline accepts
SHIPPED_MODELS = {"scenes-sd": ASSETS / "scenes-sd", "shapes-sd": SHIPPED_MODEL, "shapes-dit": ASSETS / "shapes-dit"}
#: the shapes world's models (the shapes judge, its challenges and ControlNets belong to them only)
SHAPES_MODELS = ("shapes-sd", "shapes-dit")
#: the prompt each shipped model's pages open with: the article's fox on scenes-sd
FIRST_PROMPTS = {"scenes-sd": "a red fox sitting in autumn leaves", "shapes-sd": "a red circle left of a blue square",
                 "shapes-dit": "a red circle left of a blue square"}


def available_models() -> list[str]:
    """Names of the shipped models present in this install, for menus (scenes-sd, shapes-sd, shapes-dit)."""
    return [name for name, path in SHIPPED_MODELS.items() if (Path(path) / "model_index.json").exists()]


def first_model() -> str:
    """The model a user sees first (playground, classroom): scenes-sd when this install has it, else shapes-sd."""
    return "scenes-sd" if "scenes-sd" in available_models() else "shapes-sd"


def first_prompt(key: str) -> str:
    """The prompt a page opens with on model `key` (a shipped model's own; the shapes prompt for any other)."""
    return FIRST_PROMPTS.get(key, FIRST_PROMPTS["shapes-sd"])
