"""Custom filters: user code named in the recipe, by entry point (group ``qurate.filters``) or dotted path.

A filter is a function ``f(doc, **params)`` or a class ``C(**params)`` whose instances are called as
``obj(doc)`` (or ``obj.filter(doc)``), with an optional ``setup()`` that runs once per worker. It returns
``True`` (keep), ``False`` (drop) or ``(keep, reason)``. The doc it gets is a copy: it may annotate it (for
example ``doc["meta"]["my_score"] = 0.7``; ``meta`` is written with the kept doc). If it raises, that doc goes to
the dead-letter output with the error and the run goes on.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any

from pydantic import Field, field_validator
from qurate.doc import Doc
from qurate.section import Section

ENTRY_POINT_GROUP = "qurate.filters"


class CustomFilterSpec(Section):
    name: str = Field(description="names the rule in reasons and the report: '<name>: <reason>'")
    filter: str = Field(description="entry-point name in group qurate.filters, or 'package.module:object' / "
                                    "'package.module.object'")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="keyword arguments for the class or function")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or ":" in value or value != value.strip():
            raise ValueError("must be non-empty, without ':' or surrounding spaces")
        return value


class FilterNotFound(LookupError):
    pass


def resolve(ref: str) -> Any:
    """The object an entry point (group ``qurate.filters``) or a dotted path names."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == ref:
            return ep.load()
    module, sep, attr = ref.partition(":")
    if not sep:
        module, _, attr = ref.rpartition(".")
    if not module or not attr:
        raise FilterNotFound(f"no entry point '{ref}' in group {ENTRY_POINT_GROUP}, and not a dotted path")
    try:
        obj = importlib.import_module(module)
    except ImportError as err:
        raise FilterNotFound(f"cannot import '{module}' for filter '{ref}': {err}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise FilterNotFound(f"'{module}' has no attribute '{attr}' (filter '{ref}')")
        obj = getattr(obj, part)
    return obj


def _copy(doc: Doc) -> Doc:
    out = dict(doc)
    out["meta"] = dict(doc.get("meta") or {})
    return out


class LoadedFilter:
    """One custom filter, ready to run: ``apply(doc) -> (doc, None | (rule, reason text))``."""

    def __init__(self, spec: CustomFilterSpec, obj: Any):
        self.spec = spec
        if inspect.isclass(obj):
            obj = obj(**spec.params)
            self._call = obj.filter if hasattr(obj, "filter") else obj
            self._setup = getattr(obj, "setup", None)
        elif callable(obj):
            params = spec.params
            self._call = (lambda doc: obj(doc, **params)) if params else obj
            self._setup = None
        else:
            raise TypeError(f"custom filter '{spec.name}': {spec.filter} is neither a class nor a function")

    def setup(self) -> None:
        if self._setup is not None:
            self._setup()

    def apply(self, doc: Doc) -> tuple[Doc, tuple[str, str] | None]:
        work = _copy(doc)
        result = self._call(work)
        reason = None
        if isinstance(result, tuple) and len(result) == 2:
            result, reason = result
        if not isinstance(result, (bool, int)) or isinstance(result, float):
            raise TypeError(f"custom filter '{self.spec.name}' returned {type(result).__name__}; "
                            "expected True, False or (bool, reason)")
        if result:
            return work, None
        reason = str(reason) if reason else "dropped"
        # A reason "rule: value" becomes "<name>.rule: value"; a bare reason is the value of rule "<name>".
        rule, sep, value = reason.partition(":")
        if sep:
            return doc, (f"{self.spec.name}.{rule.strip()}", value.strip())
        return doc, (self.spec.name, reason)


def load_filter(spec: CustomFilterSpec) -> LoadedFilter:
    return LoadedFilter(spec, resolve(spec.filter))
