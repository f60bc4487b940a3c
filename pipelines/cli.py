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


class _Progress:
    """Prints what the run is doing: at each phase change, then every ``every`` seconds (stderr)."""

    def __init__(self, every: float = 15.0):
        self.every, self.started, self.phase = every, time.monotonic(), "starting"
        self._last = self.started
        self._stop = threading.Event()
        threading.Thread(target=self._tick, daemon=True).start()

    def _line(self) -> None:
        self._last = time.monotonic()
        print(f"  ... {self.phase} ({self._last - self.started:.0f} s)", file=sys.stderr, flush=True)

    def set(self, phase: str) -> None:
        self.phase = phase
        self._line()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if time.monotonic() - self._last >= self.every:
                self._line()

    def stop(self) -> None:
        self._stop.set()


def _summary(manifest: dict[str, Any], out_dir: str, seconds: float) -> str:
    t, c = manifest["totals"], manifest["conservation"]
    w = max([10, *(len(s["stage"]) for s in manifest["stages"])])  # name column width
    read_dead = c["dead_letter"] - sum(s["dead_letter"] for s in manifest["stages"])
    written = [f"{name}/, " for name, present in (
        ("mixture", t["rows"]), ("docs", manifest["recipe"]["output"]["write_docs"] and t["docs"]),
        ("rejected", t["rejected"]), ("dead_letter", t["dead_letter"])) if present]
    lines = [f"qurate: done in {seconds:.1f} s on {manifest['runner']}",
             f"  {'read':<{w}} {manifest['input']['records']:>10,} records from {manifest['input']['files']} "
             f"file(s)" + (f"  {read_dead:,} dead-letter" if read_dead else "")]
    for s in manifest["stages"]:
        lines.append(f"  {s['stage']:<{w}} {s['in']:>10,} in  {s['kept']:>10,} kept  {s['rejected']:>8,} rejected"
                     + (f"  {s['added']:,} added" if s.get("added") else "")
                     + (f"  {s['dead_letter']:,} dead-letter" if s["dead_letter"] else ""))
    lines += [
        f"  {'mixture':<{w}} {t['docs']:>10,} docs  {t['tokens']:>12,} tokens in "
        f"{sum(len(comp['shards']) for comp in manifest['components'].values())} shard(s), "
        f"{len(manifest['components'])} component(s)",
        f"  records read {c['records_read']:,} = kept {c['kept']:,} + rejected {t['rejected']:,} + dead-letter "
        f"{t['dead_letter']:,}" + (f" - added {c['added_by_stages']:,}" if c["added_by_stages"] else "")
        + ": conservation " + ("holds" if c["ok"] else "VIOLATED"),
        f"  outputs in {out_dir}/ ({''.join(written)}manifest.json, report.html)",
    ]
    return "\n".join(lines)


def _split_csv(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _quiet_local_workers(beam_args: list[str], debug: bool) -> list[str]:
    """Local worker processes (multi_processing) log at INFO to the terminal; keep them to errors.

    Only for the DirectRunner: on a cluster, worker logs go to the cluster's log store, where users want them.
    """
    from qurate.pipelines.runners import pipeline_options, runner_name

    if debug or runner_name(pipeline_options(beam_args)) != "DirectRunner" or any(
            a.split("=", 1)[0] == "--default_sdk_harness_log_level" for a in beam_args):
        return beam_args
    return [*beam_args, "--default_sdk_harness_log_level", "ERROR"]


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
    except Exception as err:  # a stage that cannot be built from this recipe
        if args.debug:
            raise
        first = (str(err).strip().splitlines() or [""])[0][:500]
        print(f"qurate: cannot set up the run: {type(err).__name__}: {first} (rerun with --debug for the "
              f"traceback)", file=sys.stderr)
        return EXIT_FAILED
    stage_list = ", ".join(["read", *plan.stage_names, "write"])
    print(f"qurate: {len(plan.files)} input file(s) -> {plan.out_dir}/  stages: {stage_list}", file=sys.stderr)
    started = time.monotonic()
    progress = _Progress()
    try:
        manifest = run_plan(plan, _quiet_local_workers(beam_args, args.debug), on_phase=progress.set)
    except ConservationError as err:
        print(f"qurate: records were lost or duplicated: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("qurate: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"qurate: run failed: {type(err).__name__}: {first[:500]} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        progress.stop()
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


def cmd_train_quality(args: argparse.Namespace) -> int:
    from qurate.classifiers.train_quality import run_training
    from qurate.pipelines.read import InputError, match_input_files
    from qurate.pipelines.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.recipe, {"input.paths": args.input} if args.input else None)
        paths = match_input_files(recipe.input.paths)  # with --labels-in: where texts missing from it are
        run_training(recipe.quality, paths, args.out, text_field=recipe.input.text_field,
                     id_field=recipe.input.id_field, sample=args.sample, heldout=args.heldout, seed=recipe.seed,
                     labels_in=args.labels_in, labels_out=args.labels_out)
    except (RecipeError, InputError, ValueError, FileNotFoundError) as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
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
    run.add_argument("--stages", action="append", help="comma-separated stages to run, in canonical order "
                     "(--stages '' runs read and write only)")
    run.add_argument("--debug", action="store_true", help="show tracebacks and Beam's logs")
    report = sub.add_parser("report", help="rebuild OUT/report.html and report.json")
    report.add_argument("out_dir")
    sub.add_parser("stages", help="list the stages this install can run")
    train = sub.add_parser("train-quality", help="judge a sample with the LLM (recipe's quality.judge) and train "
                           "the distilled quality classifier; prints held-out agreement")
    train.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled recipe)")
    train.add_argument("--input", action="append", help="JSONL(.gz) or Parquet file (default: the recipe's)")
    train.add_argument("--out", required=True, help="where to save the classifier (.npz)")
    train.add_argument("--sample", type=int, default=500, help="docs to judge (default 500)")
    train.add_argument("--heldout", type=float, default=0.2, help="held-out fraction for agreement")
    train.add_argument("--labels-out", help="also save the judge's labels (JSONL)")
    train.add_argument("--labels-in", help="train from saved labels instead of running the judge")
    return parser


_RUN_VALUE_OPTIONS = {"--input", "--output", "--stages"}
_RUN_SWITCHES = {"--debug", "-h", "--help"}


def _beam_options() -> tuple[set[str], set[str]]:
    """Beam's option strings: (all of them, those that take no value), from Beam's own option classes."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}  # as Beam does: skip repeats
    for cls in classes.values():
        cls._add_argparse_args(parser)
    names = {opt for action in parser._actions for opt in action.option_strings}
    switches = {opt for action in parser._actions if action.nargs == 0 for opt in action.option_strings}
    return names, switches


def split_run_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Splits ``qurate run``'s arguments into qurate's and Beam's.

    argparse alone cannot: in ``--direct_num_workers 2`` it would take ``2`` for the recipe. A Beam option
    takes the next token as its value unless Beam declares it a switch or the value is given with ``=``.
    An option that neither qurate nor Beam knows is a ``ValueError`` naming it (a typo is never ignored).
    """
    beam_names, beam_switches = _beam_options()
    ours: list[str] = []
    beam: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        name = token.split("=", 1)[0]
        takes_value = "=" not in token and i + 1 < len(argv)
        if not token.startswith("-") or name in _RUN_SWITCHES:
            ours.append(token)
        elif name in _RUN_VALUE_OPTIONS:
            ours.extend(argv[i:i + 2] if takes_value else [token])
            i += 1 if takes_value else 0
        elif name in beam_names:
            if takes_value and name not in beam_switches and not argv[i + 1].startswith("--"):
                beam.extend(argv[i:i + 2])
                i += 1
            else:
                beam.append(token)
        else:
            raise ValueError(f"unknown option '{name}' (not a qurate run option nor a Beam pipeline option)")
        i += 1
    return ours, beam


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # Before Beam is imported: its import logs optional-client warnings on the root logger, which a user should
    # not see; --debug shows everything.
    logging.basicConfig(level=logging.INFO if debug else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qurate").setLevel(logging.INFO if debug else logging.WARNING)
    command_at = next((i for i, token in enumerate(argv) if not token.startswith("-")), None)
    if command_at is not None and argv[command_at] == "run":
        try:
            ours, rest = split_run_args(argv[command_at + 1:])
        except ValueError as err:
            print(f"qurate: {err}", file=sys.stderr)
            return EXIT_USAGE
        args = parser.parse_args(argv[:command_at + 1] + ours)
    else:
        args, rest = parser.parse_known_args(argv)
    args.debug = debug
    if args.command in (None, "run"):
        if args.command is None:  # bare `qurate`: the sample run
            args, rest = parser.parse_args(["run"]), []
        return cmd_run(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "report":
        return cmd_report(args)
    if args.command == "train-quality":
        return cmd_train_quality(args)
    return cmd_stages()


if __name__ == "__main__":
    sys.exit(main())
