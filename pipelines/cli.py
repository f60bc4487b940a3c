"""``qurate``: the command line.

    qurate run [RECIPE] [--input GLOB ...] [--output DIR] [--stages a,b,...] [Beam pipeline options ...]
    qurate report OUT
    qurate stages

With no arguments, ``qurate run`` runs the bundled sample corpus with the bundled recipe into ``./out``.
Errors a user can fix (bad recipe, no input) print one line and exit 2; a failed run prints one line and
exits 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import Any

EXIT_USAGE = 2
EXIT_FAILED = 1


def _progress(stop: threading.Event, started: float) -> None:
    while not stop.wait(15):
        print(f"  ... running ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)


def _summary(manifest: dict[str, Any], out_dir: str, seconds: float) -> str:
    t, c = manifest["totals"], manifest["conservation"]
    lines = [f"qurate: done in {seconds:.1f} s on {manifest['runner']}",
             f"  read      {manifest['input']['records']:>10,} records from {manifest['input']['files']} file(s)"]
    for s in manifest["stages"]:
        lines.append(f"  {s['stage']:<9} {s['in']:>10,} in  {s['kept']:>10,} kept  {s['rejected']:>8,} rejected"
                     + (f"  {s['dead_letter']:,} dead-letter" if s["dead_letter"] else ""))
    lines += [
        f"  mixture   {t['docs']:>10,} docs  {t['tokens']:>12,} tokens in "
        f"{sum(len(c['shards']) for c in manifest['components'].values())} shard(s), "
        f"{len(manifest['components'])} component(s)",
        f"  dead-letter {t['dead_letter']:,}; rejected {t['rejected']:,}; conservation "
        + ("holds" if c["ok"] else "VIOLATED"),
        f"  outputs in {out_dir}/ (manifest.json, report.html)",
    ]
    return "\n".join(lines)


def _split_csv(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def cmd_run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from qurate.pipelines.manifest import ConservationError
    from qurate.pipelines.read import InputError
    from qurate.pipelines.recipe import RecipeError, load_recipe
    from qurate.pipelines.run import plan_run, run_plan

    overrides: dict[str, Any] = {}
    if args.input:
        overrides["input.paths"] = args.input
    if args.output:
        overrides["output.dir"] = args.output
    try:
        recipe = load_recipe(args.recipe, overrides)
        plan = plan_run(recipe, stage_names=_split_csv(args.stages))
    except (RecipeError, InputError) as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    stage_list = ", ".join(["read", *plan.stage_names, "write"])
    print(f"qurate: {len(plan.files)} input file(s) -> {plan.out_dir}/  stages: {stage_list}", file=sys.stderr)
    started = time.monotonic()
    stop = threading.Event()
    threading.Thread(target=_progress, args=(stop, started), daemon=True).start()
    try:
        manifest = run_plan(plan, beam_args)
    except ConservationError as err:
        print(f"qurate: records were lost or duplicated: {err}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as err:
        if args.debug:
            raise
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"qurate: run failed: {type(err).__name__}: {first[:500]} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        stop.set()
    print(_summary(manifest, plan.out_dir, time.monotonic() - started))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from qurate.pipelines.report import write_report

    try:
        write_report(args.out_dir)
    except FileNotFoundError as err:
        print(f"qurate: {args.out_dir} holds no finished run ({err})", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        if getattr(args, "debug", False):
            raise
        print(f"qurate: cannot build the report: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"qurate: wrote {args.out_dir}/report.html and report.json")
    return 0


def cmd_stages() -> int:
    from qurate.pipelines import stages

    print("read (always), " + ", ".join(stages.available()) + ", write (always)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qurate", description="Curate, decontaminate and tokenize a "
                                     "pretraining mixture on Apache Beam.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and Beam's logs")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a recipe (default: the bundled sample corpus)",
                         description="Unknown options are passed to Beam, e.g. --runner PortableRunner "
                                     "--job_endpoint localhost:8099, or --direct_num_workers 2 "
                                     "--direct_running_mode multi_processing.")
    run.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled recipe)")
    run.add_argument("--input", action="append", help="input file, glob or directory (repeatable)")
    run.add_argument("--output", help="output directory (default: the recipe's, ./out)")
    run.add_argument("--stages", action="append", help="comma-separated stages to run, in canonical order")
    run.add_argument("--debug", action="store_true", help="show tracebacks and Beam's logs")
    report = sub.add_parser("report", help="rebuild OUT/report.html and report.json")
    report.add_argument("out_dir")
    sub.add_parser("stages", help="list the stages this install can run")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # Beam logs import-time noise (optional cloud clients) on the root logger; users see qurate's warnings only.
    logging.basicConfig(level=logging.INFO if args.debug else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qurate").setLevel(logging.INFO if args.debug else logging.WARNING)
    if args.command in (None, "run"):
        if args.command is None:  # bare `qurate`: the sample run
            args, rest = parser.parse_args(["run"]), []
        return cmd_run(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "report":
        return cmd_report(args)
    return cmd_stages()


if __name__ == "__main__":
    sys.exit(main())
