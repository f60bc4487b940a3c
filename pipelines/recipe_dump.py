"""The recipe written out: its JSON Schema, and the full effective recipe as commented YAML (``qurate recipe``)."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from qurate.pipelines.recipe import Recipe, RecipeBase


def recipe_schema() -> dict[str, Any]:
    """The recipe's JSON Schema (every section, with field descriptions and defaults)."""
    return Recipe.model_json_schema()


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip()


def _comment(text: str | None, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in (text or "").splitlines() if line.strip()]


def _dump_section(model: BaseModel, indent: str) -> list[str]:
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines += _comment(field.description, indent)
            lines.append(f"{indent}{name}:")
            lines += _dump_section(value, indent + "  ") or [f"{indent}  {{}}"]
        else:
            dumped = _yaml_value(value.model_dump(mode="json") if isinstance(value, BaseModel)
                                 else type(model).__pydantic_serializer__.to_python(model, mode="json")[name])
            lines += _comment(field.description, indent)
            lines.append(f"{indent}{name}: {dumped}")
    return lines


def dump_recipe(recipe: RecipeBase) -> str:
    """The full effective recipe as YAML (defaults included), each field's description as a comment above it.

    Loading the text back gives the same recipe."""
    head = ["# qurate recipe: every setting, defaults included (`qurate recipe --schema` gives the JSON Schema)."]
    return "\n".join(head + _dump_section(recipe, "")) + "\n"
