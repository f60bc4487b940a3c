"""The SDK worker process of a local multi-process run: Beam's own harness, then an immediate exit.

The FnApiRunner starts one worker per ``--direct_num_workers`` and, at the end of the job, stops them one after
the other, each time waiting for the process to end. Once Beam's harness has returned (the runner closed the
control channel: every bundle is done and every log record flushed), the worker holds nothing anyone reads, yet a
normal interpreter exit would spend most of a second tearing down models, gRPC threads and modules, and the
runner would wait for that once per worker. ``os._exit`` skips the teardown; a harness failure still exits
non-zero through the normal path.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(argv)  # raises on a harness failure: the normal exit, with its traceback and code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
