"""The ``read`` stage: JSONL (plain, .gz, .zst, ...) and Parquet from any Beam filesystem, into docs.

Files are matched on the launcher (an empty glob is a start-up error), then read one file per task: this gives
every record a stable position (line or row number), from which ids are derived when the input has none.
Anything that cannot become a doc goes to the dead-letter output with the reason; nothing is dropped silently.

The pieces: ``input_files`` (matching), ``read_file`` (one file; ``parquet_rows`` and ``records`` beneath it) and
``read_duplicates`` (unique ids); this module wires them into one transform.
"""

from __future__ import annotations

import apache_beam as beam
from qurate.pipelines.decide import DEAD_LETTER, KEPT, STATS
from qurate.pipelines.input_files import common_dir, match_input_files
from qurate.pipelines.read_duplicates import FirstOrigin, split_duplicates, strip_origin
from qurate.pipelines.read_file import ORIGIN, ReadFileFn
from qurate.pipelines.recipe import InputConfig


class ReadDocs(beam.PTransform):
    """``PBegin -> {kept: docs, dead_letter: entries, stats: counts}`` for the input files of a recipe."""

    def __init__(self, cfg: InputConfig, files: list[str] | None = None):
        """``files``: the launcher's listing of ``cfg.paths`` when the caller has it already."""
        super().__init__()
        self.cfg = cfg
        # Listed on the launcher: an empty pattern fails before the job starts, and ids need the common folder.
        self.files = files if files is not None else match_input_files(cfg.paths)

    def expand(self, pbegin):
        read = self._read(pbegin)
        docs, dead = read[KEPT], [read[DEAD_LETTER]]
        if self.cfg.drop_duplicate_ids:
            docs, dropped = self._drop_repeats(docs, self._repeated(docs))
            dead.append(dropped)
        else:
            docs = docs | "StripOrigin" >> beam.Map(strip_origin)
        dead_all = dead | "AllDeadLetter" >> beam.Flatten()
        return {KEPT: docs, DEAD_LETTER: dead_all, STATS: read[STATS]}

    # ---- two passes in a checkpoint chain (two_pass.py): the files are read twice, the docs held by no one ----
    def plan(self, pbegin):
        """Pass 1: the ids read more than once, with their first origin (no plan when duplicates are kept)."""
        if not self.cfg.drop_duplicate_ids:
            return {"plan": pbegin | "NoPlan" >> beam.Create([])}
        return {"plan": self._repeated(self._read(pbegin)[KEPT])}

    def apply(self, pbegin, plan):
        """Pass 2: the files read again; the plan drops the later copies. Same outputs as ``expand``."""
        if not self.cfg.drop_duplicate_ids:
            return self.expand(pbegin)
        read = self._read(pbegin)
        docs, dropped = self._drop_repeats(read[KEPT], plan)
        dead_all = [read[DEAD_LETTER], dropped] | "AllDeadLetter" >> beam.Flatten()
        return {KEPT: docs, DEAD_LETTER: dead_all, STATS: read[STATS]}

    def _read(self, pbegin):
        base_dir = common_dir(self.files)
        return (
            pbegin
            # The graph carries the patterns, not the file list: a corpus of 10^5-10^6 files would make the
            # job graph too large to submit. Workers list them again (same files, same filter).
            | "Patterns" >> beam.Create(sorted(set(self.cfg.paths)))
            | "Match" >> beam.FlatMap(lambda pattern: match_input_files([pattern]))
            | "Files" >> beam.Distinct()  # two patterns may name the same file; it is read once
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.ParDo(ReadFileFn(self.cfg, base_dir)).with_outputs(DEAD_LETTER, STATS, main=KEPT)
        )

    @staticmethod
    def _repeated(docs):
        # Only (id, origin) pairs are shuffled, combined per id; the texts never move. Ids read more than
        # once (usually few) reach every worker as a side input that names each one's first copy.
        return (
            docs
            | "IdOrigin" >> beam.Map(lambda d: (d["id"], d[ORIGIN]))
            | "FirstOrigin" >> beam.CombinePerKey(FirstOrigin())
            | "Repeated" >> beam.Filter(lambda kv: kv[1][1] > 1)
            | "RepeatedFirst" >> beam.Map(lambda kv: (kv[0], kv[1][0]))
        )

    def _drop_repeats(self, docs, repeated):
        unique = docs | "DropRepeats" >> beam.FlatMap(
            split_duplicates, beam.pvalue.AsDict(repeated), self.cfg).with_outputs(DEAD_LETTER, main=KEPT)
        return unique[KEPT], unique[DEAD_LETTER]
