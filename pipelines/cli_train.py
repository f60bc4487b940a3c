"""``qurate train-quality`` and ``qurate train-domains``: distil a stage's classifier from a labelled sample."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from qurate.pipelines.cli_exits import EXIT_USAGE, missing_extra
from qurate.pipelines.cli_parser import load_recipe_args


def _train(args: argparse.Namespace, section: str, train: Callable[..., Any], **options: Any) -> int:
    """Runs a stage's ``run_training`` on the recipe's input files; bad input or options: one line, exit 2."""
    from qurate.pipelines.input_files import InputError, match_input_files
    from qurate.pipelines.recipe import RecipeError

    try:
        recipe = load_recipe_args(args, {"input.paths": args.input} if args.input else None)
        paths = match_input_files(recipe.input.paths)  # with --labels-in: where texts missing from it are
        train(getattr(recipe, section), paths, args.out, text_field=recipe.input.text_field,
              id_field=recipe.input.id_field, sample=args.sample, heldout=args.heldout, seed=recipe.seed,
              labels_in=args.labels_in, labels_out=args.labels_out, **options)
    except (RecipeError, InputError, ValueError, FileNotFoundError) as err:
        print(f"qurate: {str(err).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as err:
        if (hint := missing_extra(err)) and not args.debug:
            print(hint, file=sys.stderr)
            return EXIT_USAGE
        raise
    return 0


def cmd_train_quality(args: argparse.Namespace) -> int:
    from qurate.classifiers.train_quality import run_training

    return _train(args, "quality", run_training)


def cmd_train_domains(args: argparse.Namespace) -> int:
    from qurate.classifiers.train_domains import run_training

    return _train(args, "domains", run_training, quantize=not args.no_quantize, student=args.student,
                  windows=args.windows)
