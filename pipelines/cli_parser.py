"""The CLI's argument parsing: the subcommands and their options, one-line usage errors, and the split of
``run`` / ``replay`` / ``mix`` arguments into qurate's and Beam's pipeline options."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qurate.pipelines.recipe import Recipe


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


def load_recipe_args(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Recipe:
    """The recipe a command names (``args.recipe``, default: the bundled one) with its ``--set`` overrides and
    ``extra`` (recipe keys the command's own options set) applied."""
    from qurate.pipelines.recipe import load_recipe, parse_sets

    overrides = parse_sets(getattr(args, "set", None))
    overrides.update(extra or {})
    return load_recipe(args.recipe, overrides)


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
    run.add_argument("--resume", action="store_true", help="continue an earlier run in the same output "
                     "directory after its last finished stage (stage checkpoints in OUT/_stages; a stage whose "
                     "section, code or input changed runs again, with every later one)")
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
                         "judge) and distil a fast domain classifier; prints held-out agreement")
    dom.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled recipe)")
    dom.add_argument("--input", action="append", help="JSONL(.gz) or Parquet file (default: the recipe's)")
    dom.add_argument("--set", **sets)
    dom.add_argument("--out", required=True, help="model metadata (.json; the model files go beside it)")
    dom.add_argument("--sample", type=int, default=3000, help="docs to label (default 3000)")
    dom.add_argument("--heldout", type=float, default=0.2, help="held-out fraction for agreement")
    dom.add_argument("--labels-out", help="also save the teacher's labels (JSONL; reused on a rerun)")
    dom.add_argument("--labels-in", help="train from saved labels instead of running the teacher")
    dom.add_argument("--no-quantize", action="store_true", help="fasttext: skip quantization (faster, larger)")
    dom.add_argument("--student", choices=("static", "fasttext"), default="static",
                     help="static: the encoder's static token vectors + a softmax head (default); fasttext")
    dom.add_argument("--windows", type=int, default=0, help="also label the next N 1,500-character windows of docs")
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
_RUN_SWITCHES = {"--debug", "-h", "--help", "--overwrite", "--keep-total", "--resume"}


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
