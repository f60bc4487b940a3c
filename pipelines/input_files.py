"""The input files a recipe names, matched on the launcher: globs, directories (their data files only, never a
qurate output folder), and the folder they share (ids derived from a file's path are relative to it)."""

from __future__ import annotations

import os
import posixpath

from apache_beam.io.filesystems import FileSystems


class InputError(ValueError):
    """The input cannot be read at all (no files match); the CLI reports it and exits 2."""


_COMPRESSED = ("", ".gz", ".zst", ".zstd", ".bz2", ".xz")
# Not .json: a folder's *.json files are mostly metadata (manifests, configs); name such a file to read it.
_DATA_FILES = tuple(f"{ext}{c}" for ext in (".jsonl", ".ndjson", ".parquet") for c in _COMPRESSED)
_OUTPUT_MARKERS = ("manifest.json", "_stats/stats.jsonl", "_stats/launch.json", ".qurate")


def _is_data_file(path: str) -> bool:
    """A directory input reads JSON-lines (plain or compressed) and Parquet files only."""
    return path.lower().endswith(_DATA_FILES)


def _refuse_qurate_output(pattern: str, paths: list[str]) -> None:
    """A directory that holds a qurate run's output is not input: its shards, reports and dead letter would be
    read as documents."""
    for path in paths:
        posix = path.replace("\\", "/")
        marker = next((m for m in _OUTPUT_MARKERS if posix.endswith("/" + m)), None)
        if marker == "manifest.json":  # other tools write manifest.json files too: only qurate's count
            with FileSystems.open(path) as handle:
                marker = marker if b'"qurate_manifest"' in handle.read(200) else None
        if marker:
            run_dir = posix[: -len(marker) - 1]
            raise InputError(f"input '{pattern.removesuffix('**').rstrip('/')}' holds a qurate output folder "
                             f"({run_dir}: {marker}); point --input at data files, not at a run's output")


def match_input_files(patterns: list[str]) -> list[str]:
    """Every file the input patterns name, sorted; a directory stands for the data files inside it."""
    files: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**")
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as err:  # Beam raises BeamIOError for an unknown scheme or unreachable store
            raise InputError(f"cannot list input '{pattern}': {str(err).splitlines()[0]}") from None
        matched = [m.path for m in results if not m.path.endswith("/")]
        if pattern.endswith("**"):
            _refuse_qurate_output(pattern, matched)
            matched = [p for p in matched if _is_data_file(p)]
        if not matched:
            raise InputError(f"no input files match '{pattern}'")
        files.update(matched)
    return sorted(files)


def common_dir(files: list[str]) -> str:
    if len(files) == 1:
        return posixpath.dirname(files[0])
    return posixpath.commonpath(files) if all(f.startswith("/") for f in files) else os.path.commonpath(files)
