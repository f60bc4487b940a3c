"""Lines of a (possibly compressed) text file on any Beam filesystem, failing loudly on a truncated file.

Beam's own decompressing reader returns a truncated .gz/.zst file's data without an error (the lost tail would
go unnoticed), so compressed files are decoded here with decoders that check the end of the stream.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

CHUNK_BYTES = 1 << 16  # small enough that a truncated stream still yields most of what precedes the cut


class TruncatedFileError(EOFError):
    """A compressed file ends inside a compressed frame: its tail is missing."""


def _read_chunks(handle, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while True:
        chunk = handle.read(size)
        if not chunk:
            return
        yield chunk


def _zstd_chunks(raw) -> Iterator[bytes]:
    """Decompresses every zstd frame in ``raw``; raises ``TruncatedFileError`` if the last frame is cut off."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    in_frame = False
    for data in _read_chunks(raw):
        while data:
            out = obj.decompress(data)
            if out:
                yield out
            if obj.eof:  # a frame ended; the rest of this chunk starts the next one
                data, obj, in_frame = obj.unused_data, dctx.decompressobj(), False
            else:
                data, in_frame = b"", True
    if in_frame:
        raise TruncatedFileError("zstd data ends inside a frame (the file is truncated)")


_STREAMS = {  # file object over the raw bytes; each raises EOFError when the stream is cut off
    CompressionTypes.GZIP: lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    CompressionTypes.BZIP2: lambda raw: bz2.BZ2File(raw, mode="rb"),
    CompressionTypes.LZMA: lambda raw: lzma.LZMAFile(raw, mode="rb"),
}


def decompressed_chunks(path: str) -> Iterator[bytes]:
    """The bytes of ``path``, decompressed by its extension (.gz, .bz2, .xz, .zst; others as Beam detects)."""
    kind = CompressionTypes.detect_compression_type(path)
    if kind == CompressionTypes.ZSTD or kind in _STREAMS:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            if kind == CompressionTypes.ZSTD:
                yield from _zstd_chunks(raw)
            else:
                with _STREAMS[kind](raw) as stream:
                    yield from _read_chunks(stream)
        return
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        yield from _read_chunks(handle)


def iter_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines (each with its ``\\n``, the last one maybe without) from a stream of byte chunks."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest
