"""The CLI's commands over a finished run or a recipe: ``report``, ``finalize``, ``recipe``, ``stages``."""

from __future__ import annotations

import argparse
import json
import sys

from qurate.pipelines.cli_exits import EXIT_FAILED, EXIT_USAGE, health_exit
from qurate.pipelines.cli_parser import load_recipe_args


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
    return health_exit(args.out_dir, manifest)


def cmd_recipe(args: argparse.Namespace) -> int:
    from qurate.pipelines.recipe import RecipeError
    from qurate.pipelines.recipe_dump import dump_recipe, recipe_schema

    if args.schema:
        print(json.dumps(recipe_schema(), indent=2))
        return 0
    try:
        recipe = load_recipe_args(args)
    except RecipeError as err:
        print(f"qurate: {err}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(dump_recipe(recipe))
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
