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

This module only dispatches: the parser is ``cli_parser``, the commands ``cli_run`` (run, replay), ``cli_commands``
(report, finalize, recipe, stages), ``cli_train`` and ``mix``; exit codes and one-line errors ``cli_exits``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from qurate.pipelines.cli_commands import cmd_finalize, cmd_recipe, cmd_report, cmd_stages
from qurate.pipelines.cli_exits import EXIT_USAGE, INTERRUPTED
from qurate.pipelines.cli_parser import UsageError, build_parser, split_run_args
from qurate.pipelines.cli_run import cmd_replay, cmd_run
from qurate.pipelines.cli_train import cmd_train_domains, cmd_train_quality


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
