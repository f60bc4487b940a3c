"""Lines of a (possibly compressed) text file on any Beam filesystem, failing loudly on a truncated file.

Beam's own decompressing reader returns a truncated .gz/.zst file's data without an error (the lost tail would
go unnoticed), so the raw bytes are opened here and decoded by ``qurate.textlines`` (the one line reader), whose
decoders check the end of the stream.
"""

from __future__ import annotations

from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from qurate.textlines import (  # noqa: F401  (re-exported: the pipeline's names for them)
    CHUNK_BYTES,
    LongLine,
    TruncatedFileError,
    compression_of,
    count_records,
    decompressed,
    is_record,
    iter_lines,
)


def decompressed_chunks(path: str) -> Iterator[bytes]:
    """The bytes of ``path``, decompressed by its extension (.gz, .bz2, .xz, .zst; others read as they are)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        yield from decompressed(raw, compression_of(path))
