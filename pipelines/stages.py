"""The stages qurate knows, in canonical order, and how each is built from a recipe.

A stage is listed here once it is built; ``--stages`` and ``recipe.stages`` accept exactly these names and run
them in this order (read and write always run). Imports are lazy so a stage's heavy dependencies load only when
the stage is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from qurate.pipelines.recipe import Recipe, RecipeError
from qurate.pipelines.stage import Stage

# name -> "module:function" returning the stage's PTransform for a recipe
REGISTRY: dict[str, str] = {
    "langid": "qurate.pipelines.stage_langid:build",
    "heuristics": "qurate.pipelines.stage_heuristics:build",
    "dedup": "qurate.pipelines.stage_dedup:build",
    "quality": "qurate.pipelines.stage_quality:build",
    "decontam": "qurate.pipelines.stage_decontam:build",
}

# The canonical order, including stages that later issues add; only registered ones can be selected.
CANONICAL_ORDER = ["langid", "heuristics", "dedup", "quality", "domains", "synth", "rebalance", "decontam"]


def available() -> list[str]:
    return [name for name in CANONICAL_ORDER if name in REGISTRY]


def resolve(names: list[str] | None) -> list[str]:
    """The selected stage names in canonical order; an unknown name is a ``RecipeError`` naming it."""
    if names is None:
        return available()
    for name in names:
        if name not in REGISTRY:
            valid = ", ".join(available()) or "(none)"
            raise RecipeError(f"unknown stage '{name}' in stages (valid: {valid})")
    return [name for name in CANONICAL_ORDER if name in names]


def build(name: str, recipe: Recipe) -> Stage:
    module, func = REGISTRY[name].split(":")
    factory: Callable[[Recipe], Stage] = getattr(importlib.import_module(module), func)
    return factory(recipe)
