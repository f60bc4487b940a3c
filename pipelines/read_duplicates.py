"""Duplicate ids in the input: per id, the first (file, position) it was read at; later copies go to the dead
letter (or, for an id derived from file and position, get a suffix), so ids stay unique."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from qurate.doc import Doc, dead_letter
from qurate.hashing import stable_hash
from qurate.pipelines.decide import DEAD_LETTER
from qurate.pipelines.read_file import ORIGIN, STAGE
from qurate.pipelines.recipe import InputConfig
from qurate.pipelines.records import record_of


class FirstOrigin(beam.CombineFn):
    """Per id: the smallest (id derived?, file, position) it was read at, and how many times it was read."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, acc, origin):
        first, count = acc
        return (origin if first is None or origin < first else first), count + 1

    def merge_accumulators(self, accs):
        first, count = None, 0
        for acc_first, acc_count in accs:
            if acc_first is not None and (first is None or acc_first < first):
                first = acc_first
            count += acc_count
        return first, count

    def extract_output(self, acc):
        return acc


def split_duplicates(doc: Doc, firsts: dict, cfg: InputConfig) -> Iterator[Any]:
    """Keeps a doc unless its id was read earlier in (file, position) order; later copies go to the dead letter.

    Ids the input gives come first: a doc whose id was derived from file and line, but which an input record
    also uses, keeps its place under that id plus a hash of its origin (never dropped as a duplicate)."""
    derived, path, position = origin = tuple(doc[ORIGIN])
    doc = {k: v for k, v in doc.items() if k != ORIGIN}  # a copy: the input is also read by "IdOrigin"
    first = firsts.get(doc["id"])
    if first is None or tuple(first) == origin:
        yield doc
        return
    if derived:
        doc["id"] = f"{doc['id']}#{stable_hash(path, position):016x}"
        yield doc
        return
    yield beam.pvalue.TaggedOutput(
        DEAD_LETTER,
        dead_letter(STAGE, f"duplicate id: '{doc['id']}' was first read at {first[1]}:{first[2]}; this copy "
                           f"was dropped (input.drop_duplicate_ids: false keeps every copy)",
                    file=path, position=position, doc_id=doc["id"], raw=record_of(doc, cfg),
                    source=doc.get("source")),
    )


def strip_origin(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != ORIGIN}
