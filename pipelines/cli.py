"""``qurate``: the command line.

    qurate run [RECIPE] [--input GLOB ...] [--output DIR] [--stages a,b,...] [--set KEY=VALUE ...] [Beam options]
    qurate recipe [RECIPE] [--set KEY=VALUE ...] [--schema]
    qurate report OUT
    qurate finalize OUT
    qurate stages
    qurate --version

With no arguments at all, ``qurate`` runs the bundled sample corpus with the bundled recipe into ``./out``.
Errors a user can fix (bad recipe, unknown argument, no input, an output path that cannot be written) print one
line and exit 2; a failed run (an exception, lost records, an empty mixture, too many dead-letter records) prints
why and exits 1 (``--debug`` shows the traceback). A failed run's outputs are still written, for inspection.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Any

EXIT_USAGE = 2
EXIT_FAILED = 1


class _Progress:
    """Live per-stage counts while the pipeline runs (stderr, with tqdm), from the Beam counters the stages
    increment (``qurate.kept``, ``qurate.rejected``); only on a terminal. Elsewhere (CI logs, files) it prints
    the phase changes only."""

    def __init__(self, stages: list[str], live: bool | None = None):
        self.stages, self.started = ["read", *stages], time.monotonic()
        self.live = sys.stderr.isatty() if live is None else live
        self.kept: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self._lock = threading.Lock()
        self._bar = None
        self._unwatch = None
        self._stop = threading.Event()

    def set(self, phase: str) -> None:
        if phase == "running the pipeline" and self.live:
            from qurate.pipelines.runners import watch_counters
            from tqdm import tqdm

            size = shutil.get_terminal_size((120, 20))  # a pty without a size reports 0 x 0: tqdm hides the bar
            self._bar = tqdm(total=0, bar_format="{desc}", file=sys.stderr, leave=False,
                             ncols=size.columns or 120, nrows=size.lines or 20)
            self._unwatch = watch_counters(self._add)
            threading.Thread(target=self._tick, daemon=True).start()  # docs/s and seconds move between bundles
            return
        self._close()
        print(f"  ... {phase} ({time.monotonic() - self.started:.0f} s)", file=sys.stderr, flush=True)

    def _add(self, counters: dict[tuple[str, str], int]) -> None:
        with self._lock:
            for (namespace, name), value in counters.items():
                if namespace == "qurate.kept":
                    self.kept[name] = self.kept.get(name, 0) + value
                elif namespace == "qurate.rejected":
                    self.rejected[name] = self.rejected.get(name, 0) + value

    def line(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-9)
        with self._lock:
            parts = [f"read {self.kept.get('read', 0):,}"]
            for name in self.stages[1:]:
                parts.append(f"{name} {self.kept.get(name, 0):,} kept/{self.rejected.get(name, 0):,} rejected")
            rate = self.kept.get("read", 0) / seconds
        return f"  {seconds:5.0f} s  " + " | ".join(parts) + f" | {rate:,.0f} docs/s read"

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            bar = self._bar
            if bar is not None:
                bar.set_description_str(self.line())

    def _close(self) -> None:
        if self._unwatch:
            self._unwatch()
            self._unwatch = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def stop(self) -> None:
        self._stop.set()
        self._close()


def _summary(manifest: dict[str, Any], out_dir: str, seconds: float) -> str:
    t, c = manifest["totals"], manifest["conservation"]
    w = max([10, *(len(s["stage"]) for s in manifest["stages"])])  # name column width
    read_dead = c["dead_letter"] - sum(s["dead_letter"] for s in manifest["stages"])
    written = [f"{name}/, " for name, present in (
        ("mixture", t["rows"]), ("docs", manifest["recipe"]["output"]["write_docs"] and t["docs"]),
        ("rejected", t["rejected"]), ("dead_letter", t["dead_letter"])) if present]
    export = manifest.get("export") or {}  # trainer exports (pipelines/export.py)
    written += [f"{d}/, " for d in ("megatron", "packed")
                if any(f["path"].startswith(d + "/") for f in export.get("files", []))]
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
        *_export_lines(export),
        f"  records read {c['records_read']:,} = kept {c['kept']:,} + rejected {t['rejected']:,} + dead-letter "
        f"{t['dead_letter']:,}" + (f" - added {c['added_by_stages']:,}" if c["added_by_stages"] else "")
        + ": conservation " + ("holds" if c["ok"] else "VIOLATED"),
        f"  outputs in {out_dir}/ ({''.join(written)}manifest.json, report.html)",
    ]
    return "\n".join(lines)


def _export_lines(export: dict[str, Any]) -> list[str]:
    from qurate.pipelines.export import summary_lines

    return summary_lines(export)


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


# Modules of the optional `llm` extra: a missing one is a one-line install hint, not a traceback.
_EXTRA_MODULES = {"torch": "llm", "transformers": "llm", "accelerate": "llm", "gguf": "llm",
                  "sentencepiece": "llm", "vllm": "llm"}
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


def missing_extra(err: BaseException) -> str | None:
    """The one-line hint for an error caused by a missing optional extra (also when Beam wrapped it)."""
    name = getattr(err, "name", None) if isinstance(err, ModuleNotFoundError) else None
    found = name or (m.group(1) if (m := _NO_MODULE.search(str(err))) else None)
    extra = _EXTRA_MODULES.get((found or "").split(".")[0])
    if extra is None:
        return None
    return (f"qurate: this needs the optional '{extra}' extra (No module named '{found}'): "
            f"pip install 'qurate[{extra}]'")


def check_output_dir(path: str) -> str | None:
    """Why the run cannot write ``path`` (checked before Beam starts), or None. Remote paths (gs://, s3://...)
    are left to Beam's filesystem."""
    if "://" in path:
        return None
    if os.path.exists(path) and not os.path.isdir(path):
        return f"output path {path} is a file, not a directory"
    probe_dir = path
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".qurate-write-test-"):
            pass
    except OSError as err:
        return f"output path {path} is not writable: {err.strerror or err}"
    return None


def _load(args: argparse.Namespace, extra: dict[str, Any] | None = None):
    from qurate.pipelines.recipe import load_recipe, parse_sets

    overrides = parse_sets(getattr(args, "set", None))
    overrides.update(extra or {})
    return load_recipe(args.recipe, overrides)


def cmd_run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from qurate.pipelines.manifest import ConservationError
    from qurate.pipelines.read import InputError
    from qurate.pipelines.recipe import RecipeError
    from qurate.pipelines.run import plan_run, run_plan

    overrides: dict[str, Any] = {}
    if args.input:
        overrides["input.paths"] = args.input
    if args.output:
        overrides["output.dir"] = args.output
    try:
        recipe = _load(args, overrides)
        plan = plan_run(recipe, stage_names=_split_csv(args.stages))
    except (RecipeError, InputError) as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a stage that cannot be built from this recipe
        if args.debug:
            raise
        if hint := missing_extra(err):
            print(hint, file=sys.stderr)
            return EXIT_USAGE
        first = (str(err).strip().splitlines() or [""])[0][:500]
        print(f"qurate: cannot set up the run: {type(err).__name__}: {first} (rerun with --debug for the "
              f"traceback)", file=sys.stderr)
        return EXIT_FAILED
    if problem := check_output_dir(plan.out_dir):
        print(f"qurate: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from qurate.pipelines.run import OutputDirError, check_output_owner

    try:  # qurate deletes only what it wrote: a folder without its marker is refused
        check_output_owner(plan.out_dir, overwrite=getattr(args, "overwrite", False))
    except OutputDirError as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    stage_list = ", ".join(["read", *plan.stage_names, "write"])
    print(f"qurate: {len(plan.files)} input file(s) -> {plan.out_dir}/  stages: {stage_list}", file=sys.stderr)
    started = time.monotonic()
    progress = _Progress(plan.stage_names)
    try:
        manifest = run_plan(plan, _quiet_local_workers(beam_args, args.debug), on_phase=progress.set)
    except ConservationError as err:
        progress.stop()
        print(f"qurate: records were lost or duplicated: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.stop()
        print("qurate: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        progress.stop()
        if INTERRUPTED.is_set():  # Beam wraps the KeyboardInterrupt raised inside a bundle
            raise KeyboardInterrupt from None
        if args.debug:
            raise
        if hint := missing_extra(err):
            print(hint, file=sys.stderr)
            return EXIT_FAILED
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"qurate: run failed: {type(err).__name__}: {first[:500]} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        progress.stop()
    print(_summary(manifest, plan.out_dir, time.monotonic() - started))
    return _health(plan.out_dir, manifest)


def _health(out_dir: str, manifest: dict[str, Any]) -> int:
    """Prints the run-health lines (stderr); 1 when the recipe's health section says the run failed."""
    from qurate.pipelines.finalize import health_problems, health_report

    text = health_report(out_dir, manifest)
    if text:
        print(text, file=sys.stderr)
    return EXIT_FAILED if health_problems(manifest) else 0


def cmd_finalize(args: argparse.Namespace) -> int:
    from qurate.pipelines.finalize import finalize
    from qurate.pipelines.manifest import ConservationError

    try:
        manifest = finalize(args.out_dir)
    except FileNotFoundError as err:
        print(f"qurate: {args.out_dir} holds no finished pipeline to finalize ({err})", file=sys.stderr)
        return EXIT_USAGE
    except ConservationError as err:
        print(f"qurate: records were lost or duplicated: {err}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as err:
        if args.debug:
            raise
        print(f"qurate: cannot finalize {args.out_dir}: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"qurate: finalized {args.out_dir}: manifest.json, mixture/README.md, report.html and report.json; "
          f"{manifest['totals']['docs']:,} docs, {manifest['totals']['tokens']:,} tokens; conservation holds")
    return _health(args.out_dir, manifest)


def cmd_recipe(args: argparse.Namespace) -> int:
    from qurate.pipelines.recipe import RecipeError, dump_recipe, recipe_schema

    if args.schema:
        print(json.dumps(recipe_schema(), indent=2))
        return 0
    try:
        recipe = _load(args)
    except RecipeError as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(dump_recipe(recipe))
    return 0


def cmd_replay(args: argparse.Namespace, beam_args: list[str]) -> int:
    """``qurate replay OUT --output NEW``: OUT's dead-lettered records as a new run into NEW."""
    from qurate.pipelines.manifest import ConservationError
    from qurate.pipelines.read import InputError
    from qurate.pipelines.recipe import RecipeError
    from qurate.pipelines.replay import ReplayError, prepare_replay
    from qurate.pipelines.run import OutputDirError, check_output_owner, clear_outputs, plan_run, run_plan

    try:
        if check_output_dir(args.output):
            raise OutputDirError(check_output_dir(args.output))
        check_output_owner(args.output, overwrite=args.overwrite)
        clear_outputs(args.output)
        recipe, stages, replay = prepare_replay(args.out_dir, args.output, args.recipe)
        plan = plan_run(recipe, stage_names=stages)
    except (ReplayError, RecipeError, InputError, OutputDirError) as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    skipped = sum(replay.skipped.values())
    print(f"qurate: replaying {len(replay.lines):,} dead-letter record(s) of {args.out_dir} into {args.output}/"
          + (f"; {skipped:,} cannot be replayed: " + ", ".join(f"{n:,} {why}" for why, n in replay.skipped.items())
             if skipped else ""), file=sys.stderr)
    started = time.monotonic()
    try:
        manifest = run_plan(plan, _quiet_local_workers(beam_args, args.debug))
    except ConservationError as err:
        print(f"qurate: records were lost or duplicated: {err}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as err:
        if INTERRUPTED.is_set():  # Beam wraps the KeyboardInterrupt raised inside a bundle
            raise KeyboardInterrupt from None
        if args.debug:
            raise
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"qurate: replay failed: {type(err).__name__}: {first[:500]} (rerun with --debug for the "
              f"traceback)", file=sys.stderr)
        return EXIT_FAILED
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
    from qurate.pipelines import registry

    print("read (always), " + ", ".join(registry.available()) + ", write (always)")
    return 0


def cmd_train_quality(args: argparse.Namespace) -> int:
    from qurate.classifiers.train_quality import run_training
    from qurate.pipelines.read import InputError, match_input_files
    from qurate.pipelines.recipe import RecipeError

    try:
        recipe = _load(args, {"input.paths": args.input} if args.input else None)
        paths = match_input_files(recipe.input.paths)  # with --labels-in: where texts missing from it are
        run_training(recipe.quality, paths, args.out, text_field=recipe.input.text_field,
                     id_field=recipe.input.id_field, sample=args.sample, heldout=args.heldout, seed=recipe.seed,
                     labels_in=args.labels_in, labels_out=args.labels_out)
    except (RecipeError, InputError, ValueError, FileNotFoundError) as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as err:
        if (hint := missing_extra(err)) and not args.debug:
            print(hint, file=sys.stderr)
            return EXIT_USAGE
        raise
    return 0


def cmd_train_domains(args: argparse.Namespace) -> int:
    from qurate.classifiers.train_domains import run_training
    from qurate.pipelines.read import InputError, match_input_files
    from qurate.pipelines.recipe import RecipeError

    try:
        recipe = _load(args, {"input.paths": args.input} if args.input else None)
        paths = match_input_files(recipe.input.paths)  # with --labels-in: where texts missing from it are
        run_training(recipe.domains, paths, args.out, text_field=recipe.input.text_field,
                     id_field=recipe.input.id_field, sample=args.sample, heldout=args.heldout, seed=recipe.seed,
                     labels_in=args.labels_in, labels_out=args.labels_out, quantize=not args.no_quantize)
    except (RecipeError, InputError, ValueError, FileNotFoundError) as err:
        print(f"qurate: {str(err).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as err:
        if (hint := missing_extra(err)) and not args.debug:
            print(hint, file=sys.stderr)
            return EXIT_USAGE
        raise
    return 0


class UsageError(Exception):
    """A command line argparse rejects: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message; main() prints it
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qurate")
    except PackageNotFoundError:  # running from a source tree
        import qurate

        return qurate.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qurate", description="Curate, decontaminate and tokenize a pretraining mixture on "
                     "Apache Beam. With no arguments: run the bundled sample into ./out.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and Beam's logs")
    parser.add_argument("--version", action="version", version=f"qurate {_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sets = {"action": "append", "metavar": "KEY=VALUE", "help": "override one recipe value (repeatable), e.g. "
            "--set dedup.threshold=0.7; the value is YAML"}
    run = sub.add_parser("run", help="run a recipe (default: the bundled sample corpus)",
                         description="Unknown options are passed to Beam, e.g. --runner PortableRunner "
                                     "--job_endpoint localhost:8099, or --direct_num_workers 2 "
                                     "--direct_running_mode multi_processing.")
    run.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled recipe)")
    run.add_argument("--input", action="append", help="input file, glob or directory (repeatable)")
    run.add_argument("--output", help="output directory (default: the recipe's, ./out)")
    run.add_argument("--overwrite", action="store_true", help="replace an earlier qurate run in the output "
                     "directory (only qurate's own outputs there; a folder qurate did not write is never used)")
    run.add_argument("--stages", action="append", help="comma-separated stages to run, in canonical order "
                     "(--stages '' runs read and write only)")
    run.add_argument("--set", **sets)
    run.add_argument("--debug", action="store_true", help="show tracebacks and Beam's logs")
    recipe = sub.add_parser("recipe", help="print the full effective recipe (defaults included, descriptions as "
                            "comments), or its JSON Schema")
    recipe.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled recipe)")
    recipe.add_argument("--set", **sets)
    recipe.add_argument("--schema", action="store_true", help="print the recipe's JSON Schema instead")
    replay = sub.add_parser("replay", help="run the records a run dead-lettered again, into a new output "
                            "folder (after the fault is fixed); Beam options as for run")
    replay.add_argument("out_dir", help="the earlier run's output folder")
    replay.add_argument("recipe", nargs="?", help="recipe YAML (default: the one the earlier run used)")
    replay.add_argument("--output", required=True, help="the new run's output folder")
    replay.add_argument("--overwrite", action="store_true", help="replace an earlier qurate run in --output")
    replay.add_argument("--debug", action="store_true", help="show tracebacks and Beam's logs")
    report = sub.add_parser("report", help="rebuild OUT/report.html and report.json")
    report.add_argument("out_dir")
    finalize = sub.add_parser("finalize", help="finish a run whose launcher exited (e.g. a detached Dataflow "
                              "job): rebuild manifest, conservation check, dataset card and report from OUT/_stats")
    finalize.add_argument("out_dir")
    sub.add_parser("stages", help="list the stages this install can run")
    train = sub.add_parser("train-quality", help="judge a sample with the LLM (recipe's quality.judge) and train "
                           "the distilled quality classifier; prints held-out agreement")
    train.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled recipe)")
    train.add_argument("--input", action="append", help="JSONL(.gz) or Parquet file (default: the recipe's)")
    train.add_argument("--set", **sets)
    train.add_argument("--out", required=True, help="where to save the classifier (.npz)")
    train.add_argument("--sample", type=int, default=500, help="docs to judge (default 500)")
    train.add_argument("--heldout", type=float, default=0.2, help="held-out fraction for agreement")
    train.add_argument("--labels-out", help="also save the judge's labels (JSONL)")
    train.add_argument("--labels-in", help="train from saved labels instead of running the judge")
    dom = sub.add_parser("train-domains", help="label a sample with the recipe's domains.classifier (embedding or "
                         "judge) and distil the fastText domain classifier; prints held-out agreement")
    dom.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled recipe)")
    dom.add_argument("--input", action="append", help="JSONL(.gz) or Parquet file (default: the recipe's)")
    dom.add_argument("--set", **sets)
    dom.add_argument("--out", required=True, help="model metadata (.json; the .ftz files go beside it)")
    dom.add_argument("--sample", type=int, default=3000, help="docs to label (default 3000)")
    dom.add_argument("--heldout", type=float, default=0.2, help="held-out fraction for agreement")
    dom.add_argument("--labels-out", help="also save the teacher's labels (JSONL; reused on a rerun)")
    dom.add_argument("--labels-in", help="train from saved labels instead of running the teacher")
    dom.add_argument("--no-quantize", action="store_true", help="skip quantization (faster, larger model)")
    # ---- qurate mix (pipelines/mix.py, issue 12) ----
    mix = sub.add_parser("mix", help="re-weight a finished run's components to new token shares and write new "
                         "packed shards, without re-running any stage",
                         description="Weights are token shares. Unknown options are passed to Beam.")
    mix.add_argument("out_dir", help="a finished run's output folder")
    mix.add_argument("--weights", required=True, help="NAME=WEIGHT,... or a JSON object; names are components "
                     "(pack.component_by); unnamed components get 0; weights are normalized")
    mix.add_argument("--output", required=True, help="new output folder for the re-weighted mixture")
    mix.add_argument("--tokens", type=float, help="total tokens (default: the source's unique tokens)")
    mix.add_argument("--max-repeats", type=float, default=4.0, help="most epochs of any component (default 4)")
    mix.add_argument("--keep-total", action="store_true", help="when a component hits --max-repeats, keep the "
                     "total and let its share fall short (default: shrink the total so every share holds)")
    mix.add_argument("--seed", type=int, help="sampling seed (default: the run's)")
    mix.add_argument("--overwrite", action="store_true", help="replace an earlier qurate output in --output")
    return parser


_RUN_VALUE_OPTIONS = {"--input", "--output", "--stages", "--set",
                      "--weights", "--tokens", "--max-repeats", "--seed"}  # the last four: `qurate mix`
_RUN_SWITCHES = {"--debug", "-h", "--help", "--overwrite", "--keep-total"}


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


INTERRUPTED = threading.Event()  # set by Ctrl-C: an error that follows it is the interrupt, not a failure


def _on_sigint(signum: int, frame: Any) -> None:
    INTERRUPTED.set()
    threading.excepthook = lambda args: None  # Beam's threads die of the interrupt too; one line says it all
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    INTERRUPTED.clear()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_sigint) if main_thread else None
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C anywhere: one line, the shell's code for SIGINT
        print("qurate: interrupted", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        threading.excepthook = threading.__excepthook__


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # Before Beam is imported: its import logs optional-client warnings on the root logger, which a user should
    # not see; --debug shows everything.
    logging.basicConfig(level=logging.INFO if debug else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qurate").setLevel(logging.INFO if debug else logging.WARNING)
    if not debug:  # a failed bundle is logged with its traceback; the CLI reports the failure in one line
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    try:
        command_at = next((i for i, token in enumerate(argv) if not token.startswith("-")), None)
        if command_at is not None and argv[command_at] in ("run", "replay", "mix"):
            try:
                ours, rest = split_run_args(argv[command_at + 1:])
            except ValueError as err:
                raise UsageError(str(err)) from None
            args = parser.parse_args(argv[:command_at + 1] + ours)
        else:
            # Every other command, and no command: argparse rejects any argument it does not know (a bare
            # `qurate --output=/x` must not run the sample into ./out).
            args, rest = parser.parse_args(argv), []
    except UsageError as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    args.debug = debug
    if args.command in (None, "run"):
        if args.command is None:  # bare `qurate` (or `qurate --debug`): the sample run
            args, rest = parser.parse_args(["run"]), []
            args.debug = debug
        return cmd_run(args, rest)
    if args.command == "mix":
        from qurate.pipelines.mix import cmd_mix

        return cmd_mix(args, rest)
    if args.command == "replay":
        return cmd_replay(args, rest)
    commands = {"report": cmd_report, "finalize": cmd_finalize, "recipe": cmd_recipe,
                "train-quality": cmd_train_quality, "train-domains": cmd_train_domains}
    if args.command in commands:
        return commands[args.command](args)
    return cmd_stages()


if __name__ == "__main__":
    sys.exit(main())
