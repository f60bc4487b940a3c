"""``qurate run`` and ``qurate replay``: plan the run, run it on Beam, print the summary; errors as one line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from qurate.pipelines.cli_exits import (
    EXIT_FAILED,
    EXIT_USAGE,
    INTERRUPTED,
    check_output_dir,
    health_exit,
    missing_extra,
)
from qurate.pipelines.cli_parser import load_recipe_args
from qurate.pipelines.cli_progress import Progress
from qurate.pipelines.cli_summary import run_summary


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
    from qurate.pipelines.input_files import InputError
    from qurate.pipelines.manifest import ConservationError
    from qurate.pipelines.recipe import RecipeError
    from qurate.pipelines.run import plan_run, run_plan
    from qurate.pipelines.runners import GraphOnly

    overrides: dict[str, Any] = {}
    if args.input:
        overrides["input.paths"] = args.input
    if args.output:
        overrides["output.dir"] = args.output
    try:
        recipe = load_recipe_args(args, overrides)
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
        resume = getattr(args, "resume", False)  # continues in an earlier run's folder: no --overwrite needed
        check_output_owner(plan.out_dir, overwrite=getattr(args, "overwrite", False) or resume)
    except OutputDirError as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    stage_list = ", ".join(["read", *plan.stage_names, "write"])
    print(f"qurate: {len(plan.files)} input file(s) -> {plan.out_dir}/  stages: {stage_list}", file=sys.stderr)
    started = time.monotonic()
    progress = Progress(plan.stage_names)
    try:
        manifest = run_plan(plan, _quiet_local_workers(beam_args, args.debug), on_phase=progress.set,
                            resume=resume)
    except RecipeError as err:  # --resume without checkpoints: nothing was changed
        progress.stop()
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ConservationError as err:
        progress.stop()
        print(f"qurate: records were lost or duplicated: {err}", file=sys.stderr)
        return EXIT_FAILED
    except GraphOnly as built:  # a Dataflow template or dry run: the job was built, nothing ran
        progress.stop()
        print(f"qurate: {built}", file=sys.stderr)
        return 0
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
    print(run_summary(manifest, plan.out_dir, time.monotonic() - started))
    return health_exit(plan.out_dir, manifest)


def cmd_replay(args: argparse.Namespace, beam_args: list[str]) -> int:
    """``qurate replay OUT --output NEW``: OUT's dead-lettered records as a new run into NEW."""
    from qurate.pipelines.input_files import InputError
    from qurate.pipelines.manifest import ConservationError
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
    print(run_summary(manifest, plan.out_dir, time.monotonic() - started))
    return 0
