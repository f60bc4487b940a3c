"""Finishing a run: run health (when a finished run counts as failed), the mixture's dataset card, and
``qurate finalize OUT`` for runs whose launcher exited before the pipeline finished (a detached Dataflow job).

Everything here works from what the pipeline's workers wrote (``OUT/_stats``, the shards), never from the
launcher's memory, so a dead launcher loses nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.stats import read_launch, read_stats, select

CARD_FILE = "mixture/README.md"


def dead_letter_reasons(out_dir: str, top: int = 5) -> list[tuple[str, int]]:
    """The most frequent dead-letter errors (stage: first line of the error), read from OUT/dead_letter."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = FileSystems.match([FileSystems.join(out_dir, "dead_letter", "**.parquet")])[0].metadata_list
    counts: Counter[str] = Counter()
    for meta in found:
        with FileSystems.open(meta.path) as handle:
            # whole file in memory, no reader threads: pyarrow threads still alive at exit abort the process
            table = pq.read_table(pa.BufferReader(handle.read()), columns=["stage", "error"], use_threads=False)
        for stage, error in zip(table.column("stage").to_pylist(), table.column("error").to_pylist()):
            first = (error or "").strip().splitlines()[0] if (error or "").strip() else "(no error text)"
            counts[f"{stage}: {first[:200]}"] += 1
    return counts.most_common(top)


def rejection_reasons(out_dir: str, top: int = 5) -> list[tuple[str, int]]:
    """The most frequent rejection rules over all stages (stage: rule), from the run's stats."""
    rows = [(f"{k[0]}: {k[2]}", int(v.get("docs", 0)))
            for k, v in select(read_stats(out_dir), "rejected").items() if len(k) > 2 and k[1] == "rule"]
    return sorted(rows, key=lambda r: (-r[1], r[0]))[:top]


def health_problems(manifest: dict[str, Any]) -> list[str]:
    """Why a finished run counts as failed (empty: healthy), by the recipe's ``health`` section."""
    health = manifest["recipe"].get("health") or {}
    cap = float(health.get("max_dead_letter_share", 0.01))
    records = manifest["conservation"]["records_read"] + manifest["conservation"]["added_by_stages"]
    dead = manifest["totals"]["dead_letter"]
    problems = []
    if health.get("fail_on_empty_mixture", True) and manifest["totals"]["docs"] == 0:
        problems.append("the mixture is empty (0 documents kept)")
    if records and dead / records > cap:
        problems.append(f"{dead:,} of {records:,} records ({dead / records:.1%}) went to the dead letter, more "
                        f"than health.max_dead_letter_share ({cap:.1%})")
    return problems


def health_report(out_dir: str, manifest: dict[str, Any]) -> str:
    """The run-health lines printed on stderr after every run: problems, then the top dead-letter and rejection
    reasons (the dead-letter ones always, when there are any)."""
    problems = health_problems(manifest)
    lines = [f"qurate: RUN FAILED: {p}" for p in problems]
    if manifest["totals"]["dead_letter"]:
        lines.append(f"  top dead-letter reasons ({manifest['totals']['dead_letter']:,} records in "
                     f"{out_dir}/dead_letter/):")
        lines += [f"    {n:>8,}  {reason}" for reason, n in dead_letter_reasons(out_dir)]
    if problems:
        reasons = rejection_reasons(out_dir)
        if reasons:
            lines.append("  top rejection reasons:")
            lines += [f"    {n:>8,}  {reason}" for reason, n in reasons]
        lines.append(f"  the outputs are in {out_dir}/ for inspection (report.html, dead_letter/, rejected/); "
                     "health.* in the recipe sets these limits")
    return "\n".join(lines)


def dataset_card(manifest: dict[str, Any]) -> str:
    """``OUT/mixture/README.md``: a Hugging Face dataset card whose ``configs`` make ``load_dataset(OUT/mixture)``
    read every row (config ``all``, the default) or one component (one config each), always as split ``train``.

    Without it, ``datasets`` guesses splits from folder names (a component ``x-dev`` became a ``validation``
    split) and returns a fraction of the rows.
    """
    import yaml

    tok = manifest["tokenizer"]
    configs: list[dict[str, Any]] = [
        {"config_name": "all", "default": True, "data_files": [{"split": "train", "path": "*/*.parquet"}]}]
    names = sorted(manifest["components"])
    configs += [{"config_name": name, "data_files": [{"split": "train", "path": f"{name}/*.parquet"}]}
                for name in names if name != "all"]
    head = yaml.safe_dump({"configs": configs}, sort_keys=False, allow_unicode=True)
    totals = manifest["totals"]
    rows = "\n".join(f"| {name} | {str(c.get('value', '')).replace('|', '&#124;')} | {c['docs']:,} | "
                     f"{c['rows']:,} | {c['tokens']:,} |" for name, c in sorted(manifest["components"].items()))
    return (
        f"---\n{head}---\n\n# qurate mixture\n\n"
        f"Tokenized with `{tok['name']}` (EOS id {tok['eos_id']}, appended: {tok['append_eos']}). "
        f"{totals['docs']:,} documents, {totals['rows']:,} rows, {totals['tokens']:,} tokens; recipe fingerprint "
        f"`{manifest['recipe_fingerprint']}`, built {manifest['created']} on {manifest['runner']}.\n\n"
        "```python\nimport datasets\nall_rows = datasets.load_dataset(\"OUT/mixture\", split=\"train\")\n"
        f"one_component = datasets.load_dataset(\"OUT/mixture\", \"{names[0] if names else 'NAME'}\", "
        "split=\"train\")\n```\n\n"
        "Columns: `tokens` (token ids), `n_tokens`, `id`, `lang`, `domain`, `source`, `quality_score`, "
        "`synthetic`, `repeat` (0 for a document's first copy; up-sampling adds 1, 2, ...). The run's "
        "`manifest.json` and `report.html` are one folder up.\n\n"
        "| config (folder) | component value | docs | rows | tokens |\n|---|---|---:|---:|---:|\n" + rows + "\n"
    )


def write_dataset_card(out_dir: str, manifest: dict[str, Any]) -> None:
    if not manifest["components"]:
        return  # no mixture folder to describe
    with FileSystems.create(FileSystems.join(out_dir, CARD_FILE)) as handle:
        handle.write(dataset_card(manifest).encode("utf-8"))


def finalize(out_dir: str) -> dict[str, Any]:
    """Rebuilds manifest, dataset card and report of a run whose pipeline finished without its launcher.

    Raises ``FileNotFoundError`` when the workers' stats are not there (the pipeline has not finished, or
    ``out_dir`` holds no run) and ``ConservationError`` when records were lost; returns the manifest.
    """
    from qurate.pipelines import registry
    from qurate.pipelines.manifest import build_manifest, check_conservation, write_manifest
    from qurate.pipelines.recipe import parse_recipe
    from qurate.pipelines.report import write_report
    from qurate.pipelines.run import RunPlan
    from qurate.pipelines.runners import pipeline_options

    for name in ("_stats/launch.json", "_stats/stats.jsonl"):
        if not FileSystems.exists(FileSystems.join(out_dir, name)):
            raise FileNotFoundError(f"{FileSystems.join(out_dir, name)} is missing"
                                    + (" (the pipeline has not finished writing)" if "stats." in name else ""))
    launch = read_launch(out_dir)
    written_to = launch.get("out_dir", out_dir)
    if written_to.rstrip("/") != out_dir.rstrip("/"):  # the stats name every shard by its path
        raise ValueError(f"this run was written to {written_to}; finalize it there (shard paths in _stats "
                         "point to it)")
    recipe = parse_recipe(launch["recipe"])
    table = registry.by_name()
    missing = [name for name in launch["stages"] if name not in table]
    if missing:
        raise ValueError(f"the run used stage(s) not installed here: {', '.join(missing)}")
    plan = RunPlan(recipe, out_dir, launch["files"], [table[name] for name in launch["stages"]])
    runner = launch.get("runner") or "DirectRunner"
    manifest = build_manifest(plan, pipeline_options(["--runner", runner]))
    manifest["recipe_fingerprint"] = launch.get("fingerprint") or manifest["recipe_fingerprint"]
    # As run_plan does after the pipeline: trainer exports, card, report, and the manifest last.
    from qurate.pipelines.export import export_for_run

    manifest["export"] = export_for_run(out_dir, recipe, [], manifest)
    write_dataset_card(out_dir, manifest)
    write_report(out_dir, manifest)
    write_manifest(out_dir, manifest)  # last, whole or not at all: a manifest means the run finished
    check_conservation(manifest)
    return manifest
