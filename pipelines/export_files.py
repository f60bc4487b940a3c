"""Export files: written under a temporary name and renamed when complete, with their sha256 and size (the stats
pair the manifest lists), and checked against that list later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.megatron import HashingWriter


def create_file(path: str) -> BinaryIO:
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def replace_file(src: str, dst: str) -> None:
    if FileSystems.exists(dst):  # object stores do not overwrite on rename; a rerun replaces the same bytes
        FileSystems.delete([dst])
    FileSystems.rename([src], [dst])


def write_atomic(path: str, write: Callable[[HashingWriter], None]) -> dict[str, Any]:
    """Writes ``path`` through ``write(handle)`` under a temporary name, then renames it; returns sha256 and
    bytes."""
    from qurate.pipelines.megatron import temp_name

    tmp = temp_name(path)
    with create_file(tmp) as handle:
        out = HashingWriter(handle)
        write(out)
        result = out.result()
    replace_file(tmp, path)
    return result


def relative_path(out_dir: str, path: str) -> str:
    return path[len(out_dir):].lstrip("/") if path.startswith(out_dir) else path


def file_stat(out_dir: str, path: str, kind: str, result: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    return ("file", kind, relative_path(out_dir, path), result["sha256"]), {"bytes": result["bytes"], "files": 1}



def verify_files(out_dir: str, export: dict[str, Any]) -> list[str]:
    """The files the manifest lists whose size or sha256 differs from what is on disk (``[]``: all intact)."""
    import hashlib

    bad = []
    for f in export.get("files", []):
        path = FileSystems.join(out_dir, f["path"])
        digest = hashlib.sha256()
        size = 0
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                while chunk := handle.read(1 << 24):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError:
            bad.append(f["path"])
            continue
        if size != f["bytes"] or digest.hexdigest() != f["sha256"]:
            bad.append(f["path"])
    return bad
