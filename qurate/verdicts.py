"""Verdicts and the per-document decider contract.

Measuring and deciding stay apart (NeMo Curator's ``score_document`` / ``keep_document``): a decider measures a
doc, then returns ``Keep`` (the annotated doc) or ``Reject`` whose reason reads ``rule: measured value`` (datatrove's
``(False, reason)``, with the value). An exception means the doc could not be processed: the wiring retries
transient errors and sends the doc to the dead letter with the error.
"""

from __future__ import annotations

import abc
import traceback
from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

from qurate.doc import Doc
from qurate.stats import StatPairs


class Reject:
    """A verdict to drop a doc; ``reason`` reads ``rule: measured value``."""

    __slots__ = ("reason", "stats", "doc")

    def __init__(self, reason: str, stats: StatPairs | None = None, doc: Doc | None = None):
        self.reason = reason
        self.stats = stats
        self.doc = doc  # the annotated doc to record as rejected (None: the doc as it came in)

    def __repr__(self) -> str:
        return f"Reject({self.reason!r})"


class Keep:
    """A verdict to keep a doc (an annotated copy), optionally with stats for the report."""

    __slots__ = ("doc", "stats")

    def __init__(self, doc: Doc, stats: StatPairs | None = None):
        self.doc = doc
        self.stats = stats

    def __repr__(self) -> str:
        return f"Keep({self.doc.get('id')!r})"


Verdict = Keep | Reject


class DocDecider(abc.ABC):
    """Per-document logic of a stage: ``setup`` loads models (in the worker), ``decide`` returns a verdict.

    ``decide_batch`` may be overridden to amortize model calls; an exception there makes the wiring retry the
    batch one document at a time (``isolate_failures``), so one bad doc is reported alone.
    """

    stage_name: ClassVar[str] = "stage"

    def setup(self) -> None:  # noqa: B027 - optional hook; most deciders need no loading
        """Load models and build tables; runs once per worker process, never on the launcher."""

    @abc.abstractmethod
    def decide(self, doc: Doc) -> Verdict:
        """The verdict on one doc."""

    def decide_batch(self, docs: list[Doc]) -> list[Verdict | BaseException]:
        return isolate_failures(self.decide, docs)


T = TypeVar("T")
R = TypeVar("R")

# Errors worth another try: a model server or filesystem that hiccuped, not a bad record.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


def is_transient(err: BaseException) -> bool:
    """True for errors that a retry may cure (connection, timeout, HTTP 429/5xx marked ``transient``)."""
    return isinstance(err, TRANSIENT_ERRORS) or bool(getattr(err, "transient", False))


def isolate_failures(fn: Callable[[T], R], items: Sequence[T], *, retries: int = 2,
                     backoff_s: float = 0.05) -> list[R | BaseException]:
    """``fn`` over each item; an item whose call raises gets its exception in its place, so one bad record never
    costs its neighbours. Transient errors are retried ``retries`` times with exponential backoff first."""
    import time

    out: list[R | BaseException] = []
    for item in items:
        for attempt in range(retries + 1):
            try:
                out.append(fn(item))
                break
            except Exception as err:  # one bad record must not stop the run
                if is_transient(err) and attempt < retries:
                    time.sleep(backoff_s * 2**attempt)
                    continue
                out.append(err)
                break
    return out


def run_batch(batch_fn: Callable[[Sequence[T]], list[R]], one_fn: Callable[[T], R],
              items: Sequence[T]) -> list[R | BaseException]:
    """``batch_fn`` over all items at once; if that raises, ``one_fn`` item by item to isolate the culprit."""
    try:
        results = batch_fn(items)
        if len(results) != len(items):
            raise RuntimeError(f"batch returned {len(results)} results for {len(items)} items")
        return list(results)
    except Exception:
        return isolate_failures(one_fn, items)


def error_text(err: BaseException) -> str:
    """A one-line error plus where it was raised, for the dead-letter output."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    message = str(err).splitlines()[0][:500] if str(err) else ""
    return f"{type(err).__name__}: {message}{where}"
