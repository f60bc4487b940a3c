"""JSONL line splitting on one huge line: qurate's reader (``qurate.textlines.iter_lines``) against the splitter it
replaced (issue 15: a 200 MB line took 675 s, 50 MB 20 s just to split), side by side on the same bytes.

    .venv/bin/python bench/line_split.py [--sizes-mb 4,8,16,32]

The old splitter concatenated the growing line with every 64 KiB chunk (``rest + chunk``), copying the line
again and again: time grows with the square of the line. The new one keeps the pieces and joins them once.
Both also split a normal file (many short lines) to show nothing was lost there.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Iterator

from qurate.textlines import CHUNK_BYTES, iter_lines


def old_iter_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The splitter before issue 15 (pipelines/textfile.py), verbatim."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


def _chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]


def _time(fn, chunks: list[bytes]) -> tuple[float, int]:
    start = time.perf_counter()
    n = sum(1 for _ in fn(iter(chunks)))
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="4,8,16,32")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; chunks of {CHUNK_BYTES:,} bytes")
    print(f"{'input':<28}{'old s':>9}{'new s':>9}{'ratio':>9}")
    for mb in (int(x) for x in args.sizes_mb.split(",")):
        data = b'{"text": "' + b"a" * (mb << 20) + b'"}\n'
        chunks = _chunks(data)
        old, n_old = _time(old_iter_lines, chunks)
        new, n_new = _time(iter_lines, chunks)
        assert n_old == n_new == 1
        print(f"{f'one line of {mb} MB':<28}{old:>9.3f}{new:>9.3f}{old / new:>8.0f}x")
    line = b'{"id": "x", "text": "' + b"word " * 200 + b'"}\n'
    data = line * ((32 << 20) // len(line))
    chunks = _chunks(data)
    old, n_old = _time(old_iter_lines, chunks)
    new, n_new = _time(iter_lines, chunks)
    assert n_old == n_new
    print(f"{f'{n_new:,} lines of 1 KB':<28}{old:>9.3f}{new:>9.3f}{old / new:>8.2f}x")


if __name__ == "__main__":
    main()
