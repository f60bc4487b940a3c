"""The stages qurate can run: the list of stage specs, in canonical order.

Each stage declares itself once, in its library, as a ``StageSpec`` (``qurate/spec.py``); this list is the only
place that names the built-in ones. A user's package adds a whole stage through the entry-point group
``qurate.stages`` (an entry point naming a ``StageSpec``). No Beam here: the recipe is validated from these specs
before Beam is imported.
"""

from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from importlib.metadata import entry_points

from qurate.spec import ENTRY_POINT_GROUP, StageSpec

LOG = logging.getLogger(__name__)

# One line per built-in stage: "module:attribute" of its StageSpec.
BUILTIN: list[str] = [
    "qurate.filters.langid:STAGE",
    "qurate.filters.heuristics:STAGE",
    "qurate.dedup.stage:STAGE",
    "qurate.classifiers.quality_stage:STAGE",
    "qurate.classifiers.domains:STAGE",
    "qurate.synth.stage:STAGE",
    "qurate.decontam.stage:STAGE",
]


class StageError(ValueError):
    """A stage list or a stage plug-in that cannot run; the message says why in one line."""


def _load(ref: str) -> StageSpec:
    module, _, attr = ref.partition(":")
    spec = getattr(importlib.import_module(module), attr)
    if not isinstance(spec, StageSpec):
        raise StageError(f"{ref} is not a qurate StageSpec")
    return spec


@lru_cache(maxsize=1)
def specs() -> tuple[StageSpec, ...]:
    """Every stage this install can run (built-in and plug-ins), in canonical order."""
    found = {spec.name: spec for spec in (_load(ref) for ref in BUILTIN)}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
        except Exception as err:  # a broken plug-in must not take the built-in stages down
            LOG.warning("stage plug-in %s could not be loaded: %s", ep.value, err)
            continue
        if not isinstance(spec, StageSpec):
            LOG.warning("stage plug-in %s is not a qurate StageSpec; ignored", ep.value)
            continue
        if spec.name in found or spec.name in RESERVED:
            LOG.warning("stage plug-in %s: the name %r is taken; ignored", ep.value, spec.name)
            continue
        found[spec.name] = spec
    return tuple(sorted(found.values(), key=lambda s: (s.order, s.name)))


# Names a stage plug-in may not take: they are recipe sections or the always-on ends of the pipeline.
RESERVED = frozenset({"read", "write", "seed", "stages", "input", "output", "tokenizer", "run", "pack", "export"})


def by_name() -> dict[str, StageSpec]:
    return {spec.name: spec for spec in specs()}


def get(name: str) -> StageSpec:
    return by_name()[name]


def available() -> list[str]:
    return [spec.name for spec in specs()]


def canonical_order() -> list[str]:
    return available()


def resolve(names: list[str] | None) -> list[StageSpec]:
    """The selected stages, in canonical order; an unknown name, a repeat or a wrong order is a ``StageError``."""
    table = by_name()
    if names is None:
        return [spec for spec in specs() if spec.default_on]
    for name in names:
        if name not in table:
            valid = ", ".join(table) or "(none)"
            raise StageError(f"unknown stage '{name}' in stages (valid: {valid})")
    if len(set(names)) != len(names):
        raise StageError(f"a stage is named twice in stages: {', '.join(names)}")
    ordered = [spec for spec in specs() if spec.name in names]
    if [spec.name for spec in ordered] != list(names):
        raise StageError(f"stages must be in the canonical order: {', '.join(s.name for s in ordered)} "
                         f"(the order is {', '.join(table)})")
    return ordered
