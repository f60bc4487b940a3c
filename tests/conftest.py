"""Shared fixtures and helpers for qurate's tests.

Fixtures
--------
``sample_corpus``           Path of the bundled sample (``pipelines/data/sample_corpus.jsonl.gz``, 2,481 real docs).
``corpus_slice``            Path of a small real slice of it (``SLICE_DOCS`` docs, every k-th line so that every
                            source and several languages are in it), plain JSONL; session-scoped, read-only.
``tmp_out``                 A fresh output directory (``str``) under pytest's ``tmp_path``.
``portable_job_endpoint``   ``"localhost:PORT"`` of Beam's local job service (started once per session as a
                            subprocess, stopped at the end). Request it only in tests that need the portable runner.
``runner_args``             ``runner_args(kind) -> list[str]``: Beam options for ``kind`` in ``RUNNER_KINDS``
                            (``"inprocess"``, ``"multiprocess"``, ``"portable"``); asking for ``"portable"`` starts
                            the job service on first use.
``all_runner_args``         ``{"inprocess": [...], "multiprocess": [...], "portable": [...]}`` (starts the service).

Plain helpers (import with ``from conftest import ...``; pytest puts ``tests/`` on ``sys.path``)
--------------------------------------------------------------------------------------------------
``RUNNER_KINDS``            The three runner kinds every determinism test should cover.
``runner_args_for(kind, endpoint=None)``  Same as the fixture, endpoint given explicitly.
``run_cli(argv)``           ``qurate.pipelines.cli.main(argv)`` in-process; returns the exit code.
``read_rows(out, subdir)``  Every row of every ``OUT/<subdir>/**/*.parquet`` as dicts (``subdir`` e.g. ``"mixture"``,
                            ``"docs"``, ``"rejected"``, ``"dead_letter"``); ``[]`` when the folder does not exist.
``rows_digest(rows)``       Order-independent sha256 of a list of row dicts (each row JSON-encoded, then sorted).
``write_jsonl(path, records)``  Writes dicts (or raw ``bytes`` lines) as JSONL; returns ``path``.

Example::

    def test_same_rows(corpus_slice, tmp_path, runner_args):
        digests = set()
        for kind in RUNNER_KINDS:
            out = str(tmp_path / kind)
            assert run_cli(["run", "--input", str(corpus_slice), "--output", out, *runner_args(kind)]) == 0
            digests.add(rows_digest(read_rows(out, "mixture")))
        assert len(digests) == 1
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"
SLICE_DOCS = 120
RUNNER_KINDS = ("inprocess", "multiprocess", "portable")
_JOB_SERVICE_START_S = 90


def runner_args_for(kind: str, endpoint: str | None = None) -> list[str]:
    """Beam pipeline options for one runner kind (``portable`` needs the job service's ``endpoint``)."""
    if kind == "inprocess":
        return []
    if kind == "multiprocess":
        return ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    if kind == "portable":
        if not endpoint:
            raise ValueError("the portable runner needs a job endpoint (use the portable_job_endpoint fixture)")
        return ["--runner", "PortableRunner", "--job_endpoint", endpoint, "--environment_type", "LOOPBACK"]
    raise ValueError(f"unknown runner kind {kind!r}; expected one of {RUNNER_KINDS}")


def run_cli(argv: list[str]) -> int:
    """Runs the ``qurate`` command line in this process; returns its exit code."""
    from qurate.pipelines.cli import main

    return main(argv)


def read_rows(out: str | Path, subdir: str) -> list[dict[str, Any]]:
    """All rows of ``OUT/<subdir>/**/*.parquet`` (sorted file order), as Python dicts."""
    import pyarrow.parquet as pq

    folder = Path(out) / subdir
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.rglob("*.parquet")) if folder.exists() else []:
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def rows_digest(rows: Iterable[dict[str, Any]]) -> str:
    """A content hash of rows that does not depend on their order (or on which shard held them)."""
    lines = sorted(json.dumps(r, sort_keys=True, ensure_ascii=False, default=str) for r in rows)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any] | bytes]) -> Path:
    """Writes records as JSON lines (``bytes`` items are written as they are, for malformed lines)."""
    path = Path(path)
    with path.open("wb") as handle:
        for record in records:
            line = record if isinstance(record, bytes) else json.dumps(record, ensure_ascii=False).encode("utf-8")
            handle.write(line.rstrip(b"\n") + b"\n")
    return path


@pytest.fixture(scope="session")
def sample_corpus() -> Path:
    assert SAMPLE_CORPUS.exists(), f"bundled sample corpus missing: {SAMPLE_CORPUS}"
    return SAMPLE_CORPUS


@pytest.fixture(scope="session")
def corpus_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``SLICE_DOCS`` real docs from the sample, every k-th line, as ``corpus_slice.jsonl`` (do not modify)."""
    with gzip.open(SAMPLE_CORPUS, "rb") as handle:
        lines = [line for line in handle if line.strip()]
    step = max(1, len(lines) // SLICE_DOCS)
    path = tmp_path_factory.mktemp("corpus") / "corpus_slice.jsonl"
    path.write_bytes(b"".join(lines[::step][:SLICE_DOCS]))
    return path


@pytest.fixture
def tmp_out(tmp_path: Path) -> str:
    return str(tmp_path / "out")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def portable_job_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """Beam's local job service on a free port, as ``localhost:PORT``; stopped when the session ends."""
    port = _free_port()
    log = tmp_path_factory.mktemp("job_service") / "job_service.log"
    with log.open("wb") as log_handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(port)],
            stdout=log_handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + _JOB_SERVICE_START_S
        while not _accepts(port):
            if proc.poll() is not None:
                pytest.fail(f"local job service exited with {proc.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"local job service did not accept on port {port} in {_JOB_SERVICE_START_S} s")
            time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def runner_args(request: pytest.FixtureRequest) -> Callable[[str], list[str]]:
    """``runner_args(kind)``: Beam options for a runner kind; starts the job service only for ``portable``."""

    def args(kind: str) -> list[str]:
        endpoint = request.getfixturevalue("portable_job_endpoint") if kind == "portable" else None
        return runner_args_for(kind, endpoint)

    return args


@pytest.fixture(scope="session")
def all_runner_args(portable_job_endpoint: str) -> dict[str, list[str]]:
    """``RUNNER_ARGS``: ``{kind: beam options}`` for every kind in ``RUNNER_KINDS`` (starts the job service)."""
    return {kind: runner_args_for(kind, portable_job_endpoint) for kind in RUNNER_KINDS}
