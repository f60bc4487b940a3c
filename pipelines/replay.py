"""``qurate replay OUT --output NEW``: the records an earlier run dead-lettered, run again as a new run.

Each dead-letter entry carries the record it stands for: the raw input record for the read stage (a JSON line as
read, a Parquet row as JSON), the whole doc for a later stage. Replay turns every entry back into an input record
under the recipe's field names (a doc's id, text, source and meta fields, so it is read back as the same doc),
writes them to ``NEW/_replay/dead_letter.jsonl`` and runs the recipe on that file into ``NEW``, after the fault is
fixed (a model server back up, a plug-in repaired, a limit raised). Entries whose record was cut (larger than the
dead-letter cap) or never read (an unreadable file's lost tail) cannot be replayed; they are counted and named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.recipe import InputConfig, Recipe, RecipeError, load_recipe, parse_recipe
from qurate.pipelines.records import record_of

REPLAY_FILE = "_replay/dead_letter.jsonl"


class ReplayError(ValueError):
    """OUT holds nothing that can be replayed (no run, no recipe); the CLI exits 2."""


@dataclass
class ReplayInput:
    lines: list[bytes] = field(default_factory=list)  # one input record per line, in dead-letter order
    skipped: dict[str, int] = field(default_factory=dict)  # why an entry cannot be replayed -> how many


def _read_json(path: str) -> dict[str, Any] | None:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def source_run(out_dir: str, recipe_path: str | None = None) -> tuple[Recipe, list[str] | None]:
    """The recipe (``recipe_path``, else the one OUT's run used) and the stages OUT's run ran."""
    manifest = _read_json(FileSystems.join(out_dir, "manifest.json"))
    launch = _read_json(FileSystems.join(out_dir, "_stats", "launch.json"))
    stages = None
    if manifest is not None:
        stages = [row["stage"] for row in manifest.get("stages", [])]
    elif launch is not None:
        stages = list(launch.get("stages") or [])
    if recipe_path:
        return load_recipe(recipe_path), stages
    saved = (manifest or launch or {}).get("recipe")
    if saved is None:
        raise ReplayError(f"{out_dir} holds no qurate run (no manifest.json or _stats/launch.json); give the "
                          f"recipe to replay with")
    try:
        return parse_recipe(saved), stages
    except RecipeError as err:  # saved by another qurate version, say
        raise ReplayError(f"the recipe saved in {out_dir} does not validate here ({err}); give the recipe to "
                          f"replay with: qurate replay {out_dir} RECIPE --output NEW") from None


def dead_letter_rows(out_dir: str) -> list[dict[str, Any]]:
    """Every dead-letter entry of a run, in file order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pattern = FileSystems.join(out_dir, "dead_letter", "*.parquet")
    paths = sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)
    rows: list[dict[str, Any]] = []
    for path in paths:
        with FileSystems.open(path) as handle:
            rows.extend(pq.read_table(pa.BufferReader(handle.read()), use_threads=False).to_pylist())
    return rows


def replay_records(rows: list[dict[str, Any]], cfg: InputConfig) -> ReplayInput:
    """Input lines for the dead-letter entries ``rows`` under input config ``cfg``."""
    out = ReplayInput()

    def skip(why: str) -> None:
        out.skipped[why] = out.skipped.get(why, 0) + 1

    for row in rows:
        raw = row.get("raw")
        if raw is None:
            skip("no record (an unreadable file's lost part)")
            continue
        if row.get("raw_chars") is not None and row["raw_chars"] > len(raw):
            skip("record cut at the dead-letter size cap")
            continue
        if row.get("stage") == "read":  # the raw input record: a JSON line as read, or a Parquet row as JSON
            out.lines.append(raw.replace("\n", " ").encode("utf-8", "surrogatepass"))
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            skip("record not JSON")
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            skip("record holds no doc")
            continue
        record = record_of(doc, cfg)
        out.lines.append(json.dumps(record, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
    return out


def prepare_replay(out_dir: str, new_dir: str, recipe_path: str | None = None
                   ) -> tuple[Recipe, list[str] | None, ReplayInput]:
    """Writes ``NEW/_replay/dead_letter.jsonl`` from OUT's dead letter; returns the recipe to run on it (input:
    that file, output: NEW), the stages to run and what was written/skipped. NEW must already be qurate's
    (``clear_outputs``)."""
    from qurate.pipelines.shards import write_atomic

    recipe, stages = source_run(out_dir, recipe_path)
    rows = dead_letter_rows(out_dir)
    if not rows:
        raise ReplayError(f"{out_dir} has no dead-letter entries to replay")
    replay = replay_records(rows, recipe.input)
    if not replay.lines:
        why = ", ".join(f"{n} {reason}" for reason, n in replay.skipped.items())
        raise ReplayError(f"none of the {len(rows)} dead-letter entries in {out_dir} can be replayed ({why})")
    path = FileSystems.join(new_dir, REPLAY_FILE)
    write_atomic(path, b"".join(line + b"\n" for line in replay.lines))
    data = recipe.model_dump(mode="json")
    data["input"].update(paths=[path], format="jsonl", drop_duplicate_ids=recipe.input.drop_duplicate_ids)
    data["output"]["dir"] = new_dir
    try:
        return parse_recipe(data), stages, replay
    except RecipeError as err:
        raise ReplayError(f"the recipe of {out_dir} no longer validates: {err}") from None
