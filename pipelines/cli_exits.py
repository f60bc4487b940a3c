"""The CLI's exit codes and the errors it turns into one line: a missing optional extra, an output folder that
cannot be written, a Ctrl-C that Beam wrapped, the run-health verdict."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from typing import Any

EXIT_USAGE = 2
EXIT_FAILED = 1

INTERRUPTED = threading.Event()  # set by Ctrl-C: an error that follows it is the interrupt, not a failure

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


def health_exit(out_dir: str, manifest: dict[str, Any]) -> int:
    """Prints the run-health lines (stderr); 1 when the recipe's health section says the run failed."""
    from qurate.pipelines.finalize import health_problems, health_report

    text = health_report(out_dir, manifest)
    if text:
        print(text, file=sys.stderr)
    return EXIT_FAILED if health_problems(manifest) else 0
