"""Stage checkpoints under ``OUT/_stages/<NN>-<stage>/``: the record format, the manifests, and resume checks.

A checkpointed run is a chain of segment pipelines (``segments.py``), one per stage. Each segment writes its
stage's kept docs, rejected docs and dead-letter entries as Parquet ``part-*.parquet`` files, its summed stats
(``_stats/stats.jsonl``) and, last and atomically, ``manifest.json``: the hashes that decide whether it can be
reused (recipe section + run context, code, upstream manifest) and every file with its size and sha256.

``qurate run --resume`` walks the stages in order and reuses every checkpoint up to the first one that is
missing, incomplete, or whose section, code or upstream changed; that stage and every later one run again.

Records are stored losslessly: ``id`` and ``text`` as columns (readable with any Parquet tool) and the rest of
the dict as tagged JSON that keeps key order, tuples, bytes, non-string keys and NaN; a value JSON cannot hold
(a numpy scalar, a datetime from a Parquet input) is pickled (the folder is the user's own output).
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

STAGES_DIR = "_stages"
MANIFEST = "manifest.json"
FORMAT = 1
KINDS = ("kept", "rejected", "dead_letter")
SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("text", pa.string()), pa.field("body", pa.string())])
_TAG = "\x00t"  # marks an encoded value; an input dict that has this key is itself encoded
_IN_TEXT_COLUMN = {_TAG: "text"}  # where ``text`` stood in the record: its value is in the text column


# ---- records -------------------------------------------------------------------------------------------------
def _enc(value: Any) -> Any:
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is list:
        return [_enc(v) for v in value]
    if kind is dict:
        if _TAG not in value and all(type(k) is str for k in value):
            return {k: _enc(v) for k, v in value.items()}
        return {_TAG: "dict", "v": [[_enc(k), _enc(v)] for k, v in value.items()]}
    if kind is tuple:
        return {_TAG: "tuple", "v": [_enc(v) for v in value]}
    if kind is bytes:
        return {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    return {_TAG: "pickle", "v": base64.b64encode(pickle.dumps(value, protocol=4)).decode("ascii")}


def _dec(value: Any) -> Any:
    if isinstance(value, list):
        return [_dec(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _dec(v) for k, v in value.items()}
    if tag == "dict":
        return {_dec(k): _dec(v) for k, v in value["v"]}
    if tag == "tuple":
        return tuple(_dec(v) for v in value["v"])
    if tag == "bytes":
        return base64.b64decode(value["v"])
    if tag == "pickle":
        return pickle.loads(base64.b64decode(value["v"]))  # noqa: S301  (qurate's own checkpoint)
    raise ValueError(f"unknown tag {tag!r} in a checkpoint record")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: Arrow cannot hold it, JSON's \\u escape can
        return False
    return True


def encode_record(record: dict[str, Any]) -> dict[str, str | None]:
    """A doc, rejected doc or dead-letter entry as one checkpoint row (``SCHEMA``)."""
    text = record.get("text")
    column_text = text if isinstance(text, str) and _utf8(text) else None
    rest = {k: (_IN_TEXT_COLUMN if k == "text" and column_text is not None else _enc(v)) for k, v in record.items()}
    body = json.dumps(rest, ensure_ascii=False)
    if not _utf8(body):
        body = json.dumps(rest, ensure_ascii=True)
    rid = record.get("id")
    return {"id": rid if isinstance(rid, str) and _utf8(rid) else None, "text": column_text, "body": body}


def decode_record(row: dict[str, str | None]) -> dict[str, Any]:
    """The record ``encode_record`` stored, equal to the original (key order included)."""
    rest = json.loads(row["body"])
    return {k: (row["text"] if v == _IN_TEXT_COLUMN else _dec(v)) for k, v in rest.items()}


# ---- hashes --------------------------------------------------------------------------------------------------
def digest(data: Any) -> str:
    blob = data if isinstance(data, bytes) else json.dumps(data, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def section_hash(name: str, section: Any, context: Any, extra: Any = None) -> str:
    """The stage's recipe section plus the run-wide settings a stage sees (seed, tokenizer, report examples)."""
    ctx = {k: getattr(context, k) for k in sorted(vars(context))}
    return digest({"stage": name, "section": section.model_dump(mode="json"), "context": ctx, "extra": extra})


def input_hash(files: list[str]) -> str:
    """The first segment's upstream: the input files with their sizes and modification times."""
    found = []
    for meta in FileSystems.match(files):
        found += [(m.path, m.size_in_bytes, getattr(m, "last_updated_in_seconds", None)) for m in meta.metadata_list]
    return digest(sorted(found))


# ---- the folder and its manifests ------------------------------------------------------------------------------
def stage_dir(out_dir: str, index: int, name: str) -> str:
    return FileSystems.join(out_dir, STAGES_DIR, f"{index + 1:02d}-{name}")


@dataclass
class StageCheck:
    """What a run expects of stage ``index``'s checkpoint."""

    index: int
    name: str
    section: str
    code: str
    folder: str


@dataclass
class ResumePoint:
    reused: list[dict[str, Any]] = field(default_factory=list)  # manifests of the stages reused, in order
    reused_hashes: list[str] = field(default_factory=list)
    reason: str | None = None  # why the first stage not reused runs again (None: no checkpoint of it)
    found_any: bool = False


def _file_problem(folder: str, entry: dict[str, Any], with_content: bool) -> str | None:
    path = FileSystems.join(folder, entry["path"])
    try:
        found = FileSystems.match([path])[0].metadata_list
    except Exception:  # noqa: BLE001 (a missing file or folder: the same answer)
        found = []
    if not found:
        return f"{entry['path']} is missing"
    if found[0].size_in_bytes != entry["bytes"]:
        return f"{entry['path']} has {found[0].size_in_bytes} bytes, not {entry['bytes']}"
    if with_content:
        with FileSystems.open(path) as handle:
            if hashlib.sha256(handle.read()).hexdigest() != entry["sha256"]:
                return f"{entry['path']} is corrupt (sha256 differs)"
    return None


def check_manifest(check: StageCheck, upstream: str, content_kinds: tuple[str, ...]) -> tuple[dict | None, str]:
    """(manifest, its hash) if stage ``check`` can be reused after ``upstream``, else (None, why not).

    Sizes are checked for every file; contents (sha256) for the files of ``content_kinds``, the ones the resumed
    run will read."""
    path = FileSystems.join(check.folder, MANIFEST)
    try:
        with FileSystems.open(path) as handle:
            blob = handle.read()
        manifest = json.loads(blob.decode("utf-8"))
    except Exception:  # noqa: BLE001 (absent or unreadable: the stage did not finish)
        return None, "it has no finished checkpoint"
    if not isinstance(manifest, dict) or manifest.get("qurate_stage_checkpoint") != FORMAT:
        return None, "its checkpoint is from another qurate version"
    upstream_changed = "the input files changed" if check.index == 0 else "an earlier stage ran again"
    for key, want, what in (("section_hash", check.section, "its recipe section or the run settings changed"),
                            ("code_hash", check.code, "its code changed"), ("upstream", upstream, upstream_changed)):
        if manifest.get(key) != want:
            return None, what
    try:
        for kind in (*KINDS, "stats"):
            for entry in manifest["files"][kind]:
                problem = _file_problem(check.folder, entry, kind in content_kinds)
                if problem:
                    return None, f"its checkpoint file {problem}"
    except (KeyError, TypeError, AttributeError):  # edited by hand, or written by a broken release
        return None, "its checkpoint manifest is malformed"
    return manifest, digest(blob)


def find_resume_point(checks: list[StageCheck], first_upstream: str) -> ResumePoint:
    """The checkpoints a resumed run reuses: the longest valid prefix of ``checks``."""
    point = ResumePoint()
    upstream = first_upstream
    for check in checks:
        point.found_any = point.found_any or FileSystems.exists(check.folder)
        manifest, result = check_manifest(check, upstream, ("rejected", "dead_letter", "stats"))
        if manifest is None:
            point.reason = result if FileSystems.exists(check.folder) else None
            break
        point.reused.append(manifest)
        point.reused_hashes.append(result)
        upstream = result
    while point.reused:  # the last reused stage's kept docs are read again: their content must be whole too
        folder = checks[len(point.reused) - 1].folder
        problem = next(filter(None, (_file_problem(folder, e, True) for e in point.reused[-1]["files"]["kept"])),
                       None)
        if problem is None:
            break
        point.reused.pop()
        point.reused_hashes.pop()
        point.reason = f"its checkpoint file {problem}"
    return point


def write_stage_manifest(folder: str, manifest: dict[str, Any]) -> str:
    """Writes ``manifest.json`` last, whole or not at all; returns its hash (the next stage's upstream)."""
    from qurate.pipelines.shards import write_atomic

    blob = json.dumps(manifest, indent=1).encode("utf-8")
    write_atomic(FileSystems.join(folder, MANIFEST), blob)
    return digest(blob)


def file_entry(folder: str, path: str) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` of a file the launcher lists itself (a segment's stats)."""
    with FileSystems.open(path) as handle:
        data = handle.read()
    rel = path[len(folder):].lstrip("/") if path.startswith(folder) else path
    return {"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
