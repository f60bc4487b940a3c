"""The report's per-stage sections, each from its stage spec's pure ``report(stats, config)`` (no PTransform is
built), and the trainer exports' section after them."""

from __future__ import annotations

import logging
from typing import Any

from qurate.spec import report_section
from qurate.stats import Stats, select

LOG = logging.getLogger(__name__)


class _SectionsOnly:
    """``recipe.section(name)`` for a recipe that no longer validates as a whole: the stage's own section if it
    validates, else the stage's defaults."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def section(self, name: str) -> Any:
        from qurate.pipelines import registry

        config = registry.get(name).config
        try:
            return config.model_validate(self.data.get(name) or {})
        except Exception:
            return config()


def stage_sections(manifest: dict[str, Any], stats: Stats) -> dict[str, Any]:
    """Each stage's section from its spec's pure ``report(stats, config)``: no PTransform is built here."""
    from qurate.pipelines import registry
    from qurate.pipelines.recipe import RecipeError, parse_recipe

    sections: dict[str, Any] = {}
    try:
        recipe = parse_recipe(manifest["recipe"])
    except RecipeError as err:  # a run by another qurate version: each section from its stage's own key
        LOG.warning("the run's recipe does not validate here (%s); stage sections use each section alone", err)
        recipe = _SectionsOnly(manifest["recipe"])
    specs = registry.by_name()
    for row in manifest["stages"]:
        name = row["stage"]
        spec = specs.get(name)
        if spec is None:
            sections[name] = {"notes": [f"stage {name!r} is not installed here; its section cannot be built"]}
            continue
        try:
            section = report_section(spec, select(stats, "stage", name), recipe.section(name))
        except Exception as err:  # a report must still come out if one section cannot be built
            LOG.warning("report section for %s failed: %s", name, err)
            section = {"notes": [f"section could not be built: {err}"]}
        if section:
            sections[name] = section
    return sections


def export_section(manifest: dict[str, Any]) -> dict[str, Any]:
    """The trainer exports' section (packing waste, split docs, weights, blend lines), listed after the stages."""
    from qurate.pipelines.export_report import report_section

    section = report_section(manifest.get("export") or {})
    return {"export": section} if section else {}
