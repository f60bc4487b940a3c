"""The stage spec: everything qurate needs to know about a stage, declared once in the stage's library.

```
STAGE = StageSpec(name="langid", order=10, config=LangIdConfig, decider=make_decider, report=report)
```

- ``name`` is the stage's name in recipes (its section key), ``--stages``, ``OUT/rejected/<name>`` and the report;
- ``order`` places it in the canonical order (read and write always run first and last);
- ``config`` is its recipe section (a ``Section``); the recipe gets the section from the spec;
- how it runs, one of:
  - ``decider(config, ctx) -> DocDecider``: a per-document stage; the wiring's generic Decide transform runs it;
  - ``model(config, ctx) -> BatchModel``: a per-document stage behind a model; the wiring runs it through Beam's
    RunInference (one model per worker process, batching and the dead-letter path in one place);
  - ``build = "package.module:function"``: ``function(config, ctx) -> PTransform`` for stages that need a global
    view (imported lazily, so a stage's heavy dependencies load only when it runs). Built-in global stages name
    a wiring graph in ``graph`` instead, resolved by the wiring;
- ``report(stats, config) -> section | None`` builds its report section from the summed stats, purely (the report
  never builds a PTransform).

A user's package adds a whole stage with an entry point in group ``qurate.stages`` naming its ``StageSpec``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qurate.doc import Doc
from qurate.section import Section
from qurate.stats import Stats
from qurate.verdicts import DocDecider, Verdict

ENTRY_POINT_GROUP = "qurate.stages"

ReportSection = dict[str, Any]


@dataclass(frozen=True)
class StageContext:
    """Run-wide settings a stage may need besides its own section."""

    seed: int = 0
    report_examples: int = 3  # escaped examples per group in the report
    tokenizer: str = "qwen2.5"  # the mixture's tokenizer (name or tokenizer.json path)
    append_eos: bool = True


class BatchModel(Protocol):
    """A model-backed per-document stage (the RunInference boundary).

    ``load()`` runs once per worker process; ``predict(model, docs)`` returns one prediction per doc (raising for
    the whole batch makes the wiring retry doc by doc); ``decide(doc, prediction)`` turns a prediction into a
    verdict, purely.
    """

    batch_size: int

    def load(self) -> Any: ...

    def predict(self, model: Any, docs: Sequence[Doc]) -> list[Any]: ...

    def decide(self, doc: Doc, prediction: Any) -> Verdict: ...


@dataclass(frozen=True)
class StageSpec:
    name: str
    order: int
    config: type[Section]
    description: str = ""
    decider: Callable[[Any, StageContext], DocDecider] | None = None
    model: Callable[[Any, StageContext], BatchModel] | None = None
    build: str | None = None  # "package.module:function" -> function(config, ctx) -> PTransform
    graph: str | None = None  # a built-in wiring graph (qurate's own global stages)
    report: Callable[[Stats, Any], ReportSection | None] | None = None
    check: Callable[[Any, StageContext], None] | None = None  # start-up checks (paths, models): raise ValueError
    adds_docs: bool = False  # the stage may add docs (synthetic); conservation counts them as added
    default_on: bool = True  # runs when the recipe names no stage list
    extras: tuple[str, ...] = field(default_factory=tuple)  # pip extras it needs, for the error message

    def __post_init__(self) -> None:
        ways = [w for w in (self.decider, self.model, self.build, self.graph) if w is not None]
        if len(ways) != 1:
            raise ValueError(f"stage {self.name!r}: give exactly one of decider, model, build or graph")


def report_section(spec: StageSpec, stats: Stats, config: Any) -> ReportSection | None:
    """``spec.report(stats, config)``; a stage without a report function has no section."""
    return None if spec.report is None else spec.report(stats, config)
