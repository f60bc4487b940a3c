"""A DoFn base that hands its subclass lists of elements, so model and tokenizer calls are batched."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue


def in_global_window(value: Any) -> WindowedValue:
    return WindowedValue(value, 0, [GlobalWindow()])


class BatchingDoFn(beam.DoFn, metaclass=abc.ABCMeta):
    """Collects up to ``batch_size`` elements of a bundle and calls ``handle_batch`` on them.

    ``handle_batch`` yields outputs (main values or ``TaggedOutput``) exactly as ``process`` would. Documents
    live in the global window (batch pipeline), which is where outputs flushed at bundle end are placed.
    """

    def __init__(self, batch_size: int):
        self._batch_size = batch_size
        self._batch: list[Any] = []

    @abc.abstractmethod
    def handle_batch(self, items: list[Any]) -> Iterable[Any]:
        """Outputs for a list of elements, as ``process`` would yield them."""

    def start_bundle(self) -> None:
        self._batch = []

    def process(self, element: Any):
        self._batch.append(element)
        if len(self._batch) >= self._batch_size:
            batch, self._batch = self._batch, []
            yield from self.handle_batch(batch)

    def finish_bundle(self):
        batch, self._batch = self._batch, []
        if not batch:
            return
        for out in self.handle_batch(batch):
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, in_global_window(out.value))
            else:
                yield in_global_window(out)
