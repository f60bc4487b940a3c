"""The one JSONL line reader: decompression by file name, linear-time line splitting, a byte-order mark dropped,
over-long lines cut, and an independent count of the records a file holds.

No Beam here (stage libraries read their side files with it too); the pipeline opens files through Beam's
filesystems (the wiring's ``textfile`` module) and hands the raw stream to ``decompressed``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

CHUNK_BYTES = 1 << 16  # small enough that a truncated stream still yields most of what precedes the cut
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark, which some Windows tools write at the start of a file
_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bzip2", ".xz": "xz", ".lzma": "xz", ".zst": "zstd",
             ".zstd": "zstd"}


class TruncatedFileError(EOFError):
    """A compressed file ends inside a compressed frame: its tail is missing."""


class LongLine(NamedTuple):
    """A line longer than the reader's limit: its first bytes and its full size (the rest was not kept)."""

    head: bytes
    size: int


def compression_of(name: str) -> str | None:
    """``gzip``, ``bzip2``, ``xz`` or ``zstd`` by the file name's last suffix; None for an uncompressed name."""
    lower = name.lower()
    dot = lower.rfind(".")
    return _SUFFIXES.get(lower[dot:]) if dot >= 0 else None


def _read_chunks(handle: BinaryIO, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while True:
        chunk = handle.read(size)
        if not chunk:
            return
        yield chunk


def _zstd_chunks(raw: BinaryIO) -> Iterator[bytes]:
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
    "gzip": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    "bzip2": lambda raw: bz2.BZ2File(raw, mode="rb"),
    "xz": lambda raw: lzma.LZMAFile(raw, mode="rb"),
}


def decompressed(raw: BinaryIO, compression: str | None) -> Iterator[bytes]:
    """The bytes of the stream ``raw`` in chunks, decompressed (every frame / member, end of stream checked)."""
    if compression == "zstd":
        yield from _zstd_chunks(raw)
    elif compression in _STREAMS:
        with _STREAMS[compression](raw) as stream:
            yield from _read_chunks(stream)
    elif compression is None:
        yield from _read_chunks(raw)
    else:
        raise ValueError(f"unknown compression {compression!r}")


def decompressed_bytes(data: bytes, name: str) -> bytes:
    """A whole (small) file's bytes, decompressed by its name."""
    return b"".join(decompressed(io.BytesIO(data), compression_of(name)))


def _without_bom(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks, less a byte-order mark that opens the stream (however the first bytes are split)."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= len(BOM) or not BOM.startswith(head):
            break
    if head.startswith(BOM):
        head = head[len(BOM):]
    if head:
        yield head
    yield from it


def iter_lines(chunks: Iterable[bytes], max_line_bytes: int | None = None,
               strip_bom: bool = True) -> Iterator[bytes | LongLine]:
    """Lines (each with its ``\\n``, the last one maybe without) from a stream of byte chunks, in time linear in
    the bytes however long a line is. A line over ``max_line_bytes`` comes out as a ``LongLine`` (its head only),
    so one huge line cannot exhaust memory. A byte-order mark opening the stream is dropped."""
    parts: list[bytes] = []  # the line in progress, as pieces: joined once when its newline arrives
    size = 0
    limit = max_line_bytes
    for chunk in _without_bom(chunks) if strip_bom else chunks:
        pieces = chunk.split(b"\n")
        if len(pieces) == 1:  # no newline in this chunk: the line goes on
            if limit is None or size <= limit:
                parts.append(chunk)
            size += len(chunk)
            continue
        head = pieces[0] + b"\n"
        if size:
            yield _finish(parts, head, size + len(head), limit)
            parts, size = [], 0
        elif limit is not None and len(head) > limit:
            yield LongLine(head[:limit], len(head))
        else:
            yield head
        for piece in pieces[1:-1]:
            if limit is not None and len(piece) >= limit:
                yield LongLine(piece[:limit], len(piece) + 1)
            else:
                yield piece + b"\n"
        tail = pieces[-1]
        if tail:
            parts.append(tail if limit is None else tail[:limit + 1])
            size = len(tail)
    if size:
        yield _finish(parts, b"", size, limit)


def _finish(parts: list[bytes], end: bytes, size: int, limit: int | None) -> bytes | LongLine:
    if limit is not None and size > limit:
        return LongLine((b"".join(parts) + end[:limit])[:limit], size)
    return b"".join(parts) + end


def is_record(line: bytes | LongLine) -> bool:
    """A line that is a record: any over-long line, or one holding more than ASCII whitespace."""
    return isinstance(line, LongLine) or bool(line.strip())


def count_records(chunks: Iterable[bytes], max_line_bytes: int | None = None) -> tuple[int, BaseException | None]:
    """(records, the error that ended the stream or None): the physical records of a JSONL stream counted
    without parsing, by its own scan (a check on the reader): lines over ``max_line_bytes`` and lines holding
    more than ASCII whitespace, after a byte-order mark that opens the stream."""
    count = 0
    content = False  # the line in progress holds a non-whitespace byte
    size = 0  # ... and has this many bytes so far
    limit = max_line_bytes if max_line_bytes is not None else float("inf")
    try:
        for chunk in _without_bom(chunks):
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    size += len(chunk) - start
                    content = content or bool(chunk[start:].strip())
                    break
                size += end + 1 - start
                if content or size > limit or chunk[start:end].strip():
                    count += 1
                content, size = False, 0
                start = end + 1
    except (OSError, EOFError, ValueError) as err:  # a truncated or corrupt stream: its tail is one record
        return count + 1, err
    return count + int(content or size > limit), None


def iter_json_lines(data: bytes, name: str) -> Iterator[bytes]:
    """The non-blank lines of a whole (small) JSONL file's bytes, decompressed by ``name``."""
    for line in iter_lines(decompressed(io.BytesIO(data), compression_of(name))):
        if isinstance(line, bytes) and line.strip():
            yield line
