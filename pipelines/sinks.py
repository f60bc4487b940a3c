"""The run's outputs: token mixture, kept docs, rejected docs per stage, and the dead-letter entries."""

from __future__ import annotations

import array
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from qurate.doc import to_json
from qurate.pipelines.batching import BatchingDoFn
from qurate.pipelines.recipe import OutputConfig, TokenizerConfig
from qurate.pipelines.schema import DEAD_LETTER_SCHEMA, DOCS_SCHEMA, MIXTURE_SCHEMA, REJECTED_SCHEMA, to_row
from qurate.pipelines.shards import WriteShardedParquet, safe_component
from qurate.pipelines.stats import flatten_stats
from qurate.tokenizer import load_tokenizer

DEFAULT_SHARD_CHARS = 200_000_000  # docs/rejected/dead-letter shards: about this much text each


class _TokenizeFn(BatchingDoFn):
    """Adds ``_tokens`` (ids, with EOS when asked) or only ``n_tokens`` to each doc, a batch at a time."""

    def __init__(self, cfg: TokenizerConfig, count_only: bool = False):
        super().__init__(cfg.batch_size)
        self._cfg = cfg
        self._count_only = count_only

    def setup(self) -> None:
        self._tokenizer = load_tokenizer(self._cfg.name)

    def handle_batch(self, docs: list[dict[str, Any]]):
        ids = self._tokenizer.encode_batch([d.get("text") or "" for d in docs])
        eos = self._tokenizer.eos_id if self._cfg.append_eos else None
        for doc, tokens in zip(docs, ids):
            doc = dict(doc)  # a copy: other transforms read the same input doc (Beam inputs are immutable)
            if self._count_only:
                doc["n_tokens"] = len(tokens)
            else:
                if eos is not None:
                    tokens.append(eos)
                doc["_tokens"] = tokens
            yield doc


def _mixture_rows(doc: dict[str, Any], component_key: str):
    # 4 bytes a token in memory and when shuffled (a list of Python ints takes ~36): a shard is held whole
    # while it is sorted and written.
    tokens = array.array("I", doc["_tokens"])
    row = {
        "tokens": tokens, "n_tokens": len(tokens), "id": doc["id"], "lang": doc.get("lang"),
        "domain": doc.get("domain"), "source": doc.get("source"), "quality_score": doc.get("quality_score"),
        "synthetic": to_json(doc.get("synthetic")),
    }
    component = safe_component(doc.get(component_key))
    for repeat in range(max(1, int(doc.get("repeats") or 1))):
        yield component, {**row, "repeat": repeat}


def _mixture_stats(row: dict[str, Any]) -> dict[str, float]:
    first = row["repeat"] == 0
    return {"tokens": row["n_tokens"], "docs": int(first), "repeat_rows": int(not first),
            "repeat_tokens": 0 if first else row["n_tokens"]}


def _lang_stats(kv):
    row = kv[1]
    first = int(row["repeat"] == 0)
    return ("final", "lang", str(row["lang"])), {"docs": first, "rows": 1, "tokens": row["n_tokens"]}


def mixture_schema(tokenizer: TokenizerConfig):
    """The mixture's Arrow schema, its metadata naming the tokenizer, vocabulary size and EOS id (a trainer reading
    a shard needs no other file to check that the ids fit its embedding)."""
    tok = load_tokenizer(tokenizer.name)
    return MIXTURE_SCHEMA.with_metadata({
        "qurate.tokenizer": tok.name, "qurate.tokenizer_fingerprint": tok.fingerprint,
        "qurate.vocab_size": str(tok.vocab_size), "qurate.eos_id": str(tok.eos_id),
        "qurate.append_eos": str(tokenizer.append_eos).lower()})


class WriteMixture(beam.PTransform):
    """Kept docs -> ``OUT/mixture/<component>/part-*.parquet`` token shards; yields write stats."""

    def __init__(self, out_dir: str, output: OutputConfig, tokenizer: TokenizerConfig):
        super().__init__()
        self.out_dir, self.output, self.tokenizer = out_dir, output, tokenizer

    def expand(self, docs):
        key = self.output.component_key
        rows = (
            docs
            | "Tokenize" >> beam.ParDo(_TokenizeFn(self.tokenizer))
            | "Rows" >> beam.FlatMap(_mixture_rows, key)
        )
        by_lang = rows | "LangStats" >> beam.Map(_lang_stats)
        written = (
            rows
            | "Write" >> WriteShardedParquet(
                "mixture", FileSystems.join(self.out_dir, "mixture"), mixture_schema(self.tokenizer),
                target_size=self.output.shard_tokens, size_of=lambda r: r["n_tokens"],
                id_of=lambda r: (r["id"], r["repeat"]), sort_key=lambda r: (r["id"], r["repeat"]),
                stats_of=_mixture_stats)
        )
        return flatten_stats((by_lang, written), "Stats")


def _text_size(row: dict[str, Any]) -> int:
    return len(row.get("text") or row.get("raw") or "") + 100


class WriteDocs(beam.PTransform):
    """Kept docs with text and every annotation -> ``OUT/docs/part-*.parquet``."""

    def __init__(self, out_dir: str, shard_chars: int = DEFAULT_SHARD_CHARS):
        super().__init__()
        self.out_dir, self.shard_chars = out_dir, shard_chars

    def expand(self, docs):
        return (
            docs
            | "Row" >> beam.Map(lambda d: ("", to_row(d, DOCS_SCHEMA)))
            | "Write" >> WriteShardedParquet(
                "docs", FileSystems.join(self.out_dir, "docs"), DOCS_SCHEMA, target_size=self.shard_chars,
                size_of=_text_size, id_of=lambda r: r["id"], sort_key=lambda r: r["id"],
                stats_of=lambda r: {"chars": len(r["text"] or "")})
        )


def _rule(reason: str) -> str:
    """The rule part of a reason (``"gopher_short_doc: 12 words < 50"`` -> ``"gopher_short_doc"``)."""
    return reason.split(":", 1)[0].strip()[:120]


class WriteRejected(beam.PTransform):
    """Rejected docs (with stage and reason) -> ``OUT/rejected/<stage>/part-*.parquet``; counts their tokens."""

    def __init__(self, out_dir: str, output: OutputConfig, tokenizer: TokenizerConfig):
        super().__init__()
        self.out_dir, self.output, self.tokenizer = out_dir, output, tokenizer

    def expand(self, rejected):
        keep_text = self.output.write_rejected_text

        def row(doc):
            r = to_row(doc, REJECTED_SCHEMA)
            if not keep_text:
                r["text"] = None
            return safe_component(doc["stage"]), r

        if self.output.count_rejected_tokens:
            rejected = rejected | "CountTokens" >> beam.ParDo(_TokenizeFn(self.tokenizer, count_only=True))
        return (
            rejected
            | "Row" >> beam.Map(row)
            | "Write" >> WriteShardedParquet(
                "rejected", FileSystems.join(self.out_dir, "rejected"), REJECTED_SCHEMA,
                target_size=self.output.shard_chars, size_of=_text_size, id_of=lambda r: r["id"],
                sort_key=lambda r: r["id"], stats_of=lambda r: {"tokens": r["n_tokens"] or 0})
        )


def rejection_stats(doc: dict[str, Any]):
    """Per (stage, rule) and per (stage, lang) counts of rejected docs, for the report."""
    stage, rule = doc["stage"], _rule(doc["reason"])
    chars = len(doc.get("text") or "")
    beam.metrics.Metrics.counter("qurate.rejected", stage).inc()  # the CLI's live progress
    yield ("rejected", stage, "rule", rule), {"docs": 1, "chars": chars}
    yield ("rejected", stage, "lang", str(doc.get("lang"))), {"docs": 1, "chars": chars}


def _utf8(value: Any) -> str | None:
    """A string Arrow can write: an unpaired surrogate (from a stage's error message, say) is escaped."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def dead_letter_row(entry: dict[str, Any]) -> dict[str, Any]:
    """A dead-letter entry as a row of ``DEAD_LETTER_SCHEMA``, whatever a stage put in it: the entry that says
    why a record failed must never fail to be written itself."""
    row: dict[str, Any] = {}
    for field in DEAD_LETTER_SCHEMA:
        value = entry.get(field.name)
        if field.type == "int64":
            row[field.name] = value if isinstance(value, int) and not isinstance(value, bool) else None
        else:
            row[field.name] = _utf8(value)
    row["stage"] = row["stage"] or "unknown"
    row["error"] = (row["error"] or "unknown error")[:20_000]
    return row


class WriteDeadLetter(beam.PTransform):
    """Dead-letter entries -> ``OUT/dead_letter/part-*.parquet`` (raw record preview, error, where from)."""

    def __init__(self, out_dir: str, shard_chars: int = DEFAULT_SHARD_CHARS):
        super().__init__()
        self.out_dir, self.shard_chars = out_dir, shard_chars

    def expand(self, entries):
        def sort_key(r):
            return (r["stage"], r["file"] or "", r["position"] if r["position"] is not None else -1,
                    r["id"] or "", r["error"])

        def stats_of(r):
            return {f"stage={r['stage']}": 1}

        return (
            entries
            | "Row" >> beam.Map(lambda e: ("", dead_letter_row(e)))
            | "Write" >> WriteShardedParquet(
                "dead_letter", FileSystems.join(self.out_dir, "dead_letter"), DEAD_LETTER_SCHEMA,
                target_size=self.shard_chars, size_of=_text_size, id_of=sort_key, sort_key=sort_key,
                stats_of=stats_of)
        )
