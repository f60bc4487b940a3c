"""Raw input records -> docs, purely (no Beam): a JSON line's bytes or a Parquet row in, a doc or the reason it
cannot be one out. The reader (``read.py``) feeds it one record at a time; whatever goes wrong with one record is
that record's reason, never an exception that costs the rest of its file.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from qurate.doc import Doc
from qurate.pipelines.recipe import InputConfig
from qurate.textlines import BOM, LongLine
from qurate.verdicts import error_text

MAX_DEPTH = 100  # nesting of a record's fields: deeper records are dead-lettered (they break encoders and coders)
_COMPRESSED = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".zst", ".zstd")


def file_format(path: str, declared: str) -> str:
    """``parquet`` or ``jsonl``: as declared, else by the name (``x.parquet`` and ``x.parquet.gz`` are Parquet)."""
    if declared != "auto":
        return declared
    name = path.lower()
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return "parquet" if name.endswith(".parquet") else "jsonl"


def max_line_bytes(cfg: InputConfig) -> int:
    """The longest JSONL line read whole: room for the largest text allowed, escaped (``\\uXXXX`` is 6 bytes a
    char), plus 1 MiB of other fields; a longer line is dead-lettered without being held in memory."""
    return 6 * cfg.max_text_chars + (1 << 20)


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def _json_type(value: Any) -> str:
    """What a value is, in JSON's words (``42`` -> ``a number``), for messages a user reads."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _has_lone_surrogate(record: Any) -> bool:
    try:
        json.dumps(record, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def depth_over(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists/dicts more than ``limit`` deep (an explicit stack: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return False


class Invalid(NamedTuple):
    """Why a record cannot become a doc (``rule: detail``), and its id when it has a usable one."""

    reason: str
    doc_id: str | None = None


class RecordParser:
    """Turns one raw record (a JSON line's bytes or a Parquet row) into a doc, or says why it cannot.

    A reason reads ``rule: detail`` and tells the user what to fix (the rule is what the report tabulates).
    No exception escapes ``from_json_line`` or ``from_record``: a record is the unit of failure.
    """

    def __init__(self, cfg: InputConfig):
        self.cfg = cfg
        self.max_line_bytes = max_line_bytes(cfg)
        # Finds `"id": "..."` in a line that is not valid JSON, so its dead-letter entry can name it.
        self._id_in_line = re.compile(rf'"{re.escape(cfg.id_field)}"\s*:\s*"((?:[^"\\]|\\.){{1,200}})"'
                                      ) if cfg.id_field else None

    def _id_in_broken_line(self, text: str) -> str | None:
        match = self._id_in_line.search(text[:10_000]) if self._id_in_line else None
        return match.group(1) if match else None

    def from_json_line(self, line: bytes | LongLine) -> Doc | Invalid:
        try:
            return self._from_json_line(line)
        except Exception as err:  # anything unforeseen is this record's problem, not its file's
            return Invalid(f"unreadable record: {error_text(err)}")

    def _from_json_line(self, line: bytes | LongLine) -> Doc | Invalid:
        if isinstance(line, LongLine):
            head = line.head[:10_000].decode("utf-8", errors="replace")
            return Invalid(f"line too long: {line.size:,} bytes > {self.max_line_bytes:,} (6 bytes a char of "
                           f"input.max_text_chars plus 1 MiB; raise input.max_text_chars to read it)",
                           self._id_in_broken_line(head))
        if line.startswith(BOM):  # a BOM inside a file: files concatenated with `cat`
            line = line[len(BOM):]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return Invalid(f"invalid UTF-8: byte {err.start} of the line is {line[err.start:err.start + 1]!r} "
                           f"(input files must be UTF-8)")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            return Invalid(f"not valid JSON: {err.msg} (column {err.colno}); JSONL holds one JSON object per "
                           f"line", self._id_in_broken_line(text))
        except RecursionError:
            return Invalid(f"nested too deeply: more than {MAX_DEPTH} levels of arrays/objects",
                           self._id_in_broken_line(text))
        except ValueError as err:  # valid JSON Python will not read, e.g. an integer of 5,000 digits
            return Invalid(f"number too large: {str(err).splitlines()[0][:200]}", self._id_in_broken_line(text))
        # JSON can spell an unpaired UTF-16 surrogate (\ud800); such a string cannot be written as UTF-8.
        # Only lines with a \uD8xx-\uDFxx escape can hold one, so the full check runs on those alone.
        if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(record):
            return Invalid("lone surrogate: a \\udXXX escape without its pair is not valid Unicode "
                           "(fix the producer)", self._usable_id(record))
        return self.from_record(record)

    def from_record(self, record: Any) -> Doc | Invalid:
        try:
            doc = self._to_doc(record)
            return Invalid(doc, self._usable_id(record)) if isinstance(doc, str) else doc
        except Exception as err:  # anything unforeseen is this record's problem, not its file's
            return Invalid(f"unreadable record: {error_text(err)}", self._safe_id(record))

    def _safe_id(self, record: Any) -> str | None:
        try:
            return self._usable_id(record)
        except Exception:  # the id is a convenience for the dead-letter entry; never a second failure
            return None

    def _usable_id(self, record: Any) -> str | None:
        raw_id = record.get(self.cfg.id_field) if isinstance(record, dict) and self.cfg.id_field else None
        if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and not _has_lone_surrogate(raw_id):
            return str(raw_id)[:1000]
        return None

    def _to_doc(self, record: Any) -> Doc | str:
        cfg = self.cfg
        if not isinstance(record, dict):
            return f"not an object: the record is {_json_type(record)}, expected a JSON object with a text field"
        if cfg.text_field not in record:
            keys = ", ".join(sorted(map(str, record))[:8]) or "none"
            return (f"missing text field: no '{cfg.text_field}' in the record (its keys: {keys[:300]}); "
                    f"set input.text_field to the field that holds the text")
        text = record[cfg.text_field]
        if not isinstance(text, str):
            return f"text not a string: '{cfg.text_field}' is {_json_type(text)}"
        if not text.strip():
            return "empty text: the text field is empty or whitespace only"
        if len(text) > cfg.max_text_chars:
            return (f"text too large: {len(text):,} chars > input.max_text_chars {cfg.max_text_chars:,} "
                    f"(raise it in the recipe to keep such documents)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"lone surrogate: text char {err.start} is an unpaired UTF-16 surrogate, not valid Unicode"
        if depth_over(record, MAX_DEPTH):
            return f"nested too deeply: more than {MAX_DEPTH} levels of arrays/objects"
        if any(not isinstance(key, str) for key in record):
            return "bad field name: every field name must be a string"
        doc: Doc = {"text": text}
        raw_id = record.get(cfg.id_field) if cfg.id_field else None
        if raw_id is not None and (not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool)):
            return f"bad id: '{cfg.id_field}' is {_json_type(raw_id)}, expected a string or an integer"
        if raw_id is not None and str(raw_id) != "":
            doc["id"] = str(raw_id)
        used = {cfg.text_field, cfg.id_field}
        source = record.get(cfg.source_field) if cfg.source_field else None
        if (isinstance(source, str) and source) or source is None:
            if source:
                doc["source"] = source
            used.add(cfg.source_field)
        elif isinstance(source, (int, float)) and not isinstance(source, bool):
            doc["source"] = str(source)  # a numbered source is still a source; the original stays in meta
        # Any other source value (an object, a list, null, "") is kept in meta; the file's stem names the source.
        meta = {k: v for k, v in record.items() if k not in used}
        if meta:
            doc["meta"] = meta
        return doc


def record_of(doc: Doc, cfg: InputConfig) -> dict[str, Any]:
    """The input record a doc stands for, under the recipe's field names: its meta fields, text, id and source
    (what ``qurate replay`` feeds to a new run, so a replayed doc is read back as the same doc)."""
    record = dict(doc.get("meta") or {})
    record[cfg.text_field] = doc.get("text")
    if cfg.id_field and doc.get("id") is not None:
        record[cfg.id_field] = doc["id"]
    if cfg.source_field and doc.get("source") is not None and cfg.source_field not in record:
        record[cfg.source_field] = doc["source"]
    return record
