"""Megatron-LM indexed datasets (``PREFIX.bin`` + ``PREFIX.idx``), written without Megatron.

The layout is megatron-core's ``megatron/core/datasets/indexed_dataset.py`` (``_IndexWriter``), which datatrove and
NeMo Curator also write:

``.bin``: every sequence's tokens, back to back, in the index's dtype.
``.idx``: ``b"MMIDIDX\\x00\\x00"``, version ``<Q`` = 1, dtype code ``<B`` (uint8 1, int8 2, int16 3, int32 4,
int64 5, float64 6, float32 7, uint16 8), sequence count ``<Q``, document count ``<Q`` (= sequences + 1: the
document indices start with 0), then ``int32`` sequence lengths, ``int64`` byte pointers, ``int64`` document
indices (the sequence index that ends each document).

qurate writes one document per sequence. The dtype is ``uint16`` only when every id fits (vocabulary <= 65,536,
as megatron-core's ``DType.optimal_dtype`` decides); Qwen's 151,665-token vocabulary needs ``int32``.

Both files are written to temporary names and renamed into place only when complete (``.bin`` first, then
``.idx``, which readers open first), each with its sha256, so a crashed writer never leaves a file under its
final name that could be mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

import numpy as np

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
               np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}

Create = Callable[[str], BinaryIO]
Rename = Callable[[str, str], None]


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id fits (megatron-core's rule, cardinality < 65,500), else ``int32``."""
    return np.dtype(np.uint16) if vocab_size < 65_500 else np.dtype(np.int32)


class HashingWriter:
    """A binary handle that counts and hashes (sha256) what goes through it."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self.bytes += view.nbytes
        self.handle.write(view)
        return view.nbytes

    def result(self) -> dict[str, Any]:
        return {"sha256": self.sha256.hexdigest(), "bytes": self.bytes}


def index_bytes(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    """The ``.idx`` file for one-document-per-sequence data with these sequence lengths."""
    lengths = np.asarray(lengths, dtype=np.int32)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    documents = np.arange(len(lengths) + 1, dtype=np.int64)
    return b"".join([
        INDEX_HEADER, struct.pack("<Q", INDEX_VERSION), struct.pack("<B", DTYPE_CODES[np.dtype(dtype)]),
        struct.pack("<Q", len(lengths)), struct.pack("<Q", len(documents)),
        lengths.tobytes(order="C"), pointers.tobytes(order="C"), documents.tobytes(order="C"),
    ])


def _local_create(path: str) -> BinaryIO:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return open(path, "wb")


def temp_name(path: str) -> str:
    """A unique temporary name beside ``path`` (two attempts at the same file never share one)."""
    return f"{path}.tmp-{uuid.uuid4().hex[:12]}"


def write_indexed_dataset(prefix: str, docs: Iterable[np.ndarray], dtype: np.dtype, *,
                          create: Create = _local_create, rename: Rename = os.replace) -> dict[str, Any]:
    """Writes ``prefix.bin`` and ``prefix.idx``, one document per sequence; returns their sha256 and sizes.

    ``docs`` is streamed (only the lengths are kept), so memory does not grow with the data. ``create`` and
    ``rename`` default to the local filesystem; the Beam wiring passes its ``FileSystems`` equivalents.
    """
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    bin_path, idx_path = f"{prefix}.bin", f"{prefix}.idx"
    bin_tmp, idx_tmp = temp_name(bin_path), temp_name(idx_path)
    lengths: list[int] = []
    tokens = 0
    with create(bin_tmp) as handle:
        out = HashingWriter(handle)
        for doc in docs:
            array = np.asarray(doc)
            if array.size and (int(array.min()) < info.min or int(array.max()) > info.max):
                raise ValueError(f"token id out of range for {dtype.name} in {prefix}")
            out.write(np.ascontiguousarray(array, dtype=dtype))
            lengths.append(int(array.size))
            tokens += int(array.size)
        bin_result = out.result()
    index = index_bytes(np.asarray(lengths, dtype=np.int32), dtype)
    with create(idx_tmp) as handle:
        out = HashingWriter(handle)
        out.write(index)
        idx_result = out.result()
    rename(bin_tmp, bin_path)
    rename(idx_tmp, idx_path)
    return {"bin": {"path": bin_path, **bin_result}, "idx": {"path": idx_path, **idx_result},
            "docs": len(lengths), "tokens": tokens, "dtype": dtype.name}


def read_index(idx: bytes) -> dict[str, Any]:
    """Parses an ``.idx`` file's bytes (used to check what was written; training uses megatron-core)."""
    if idx[:9] != INDEX_HEADER:
        raise ValueError("not a Megatron index: bad header")
    version, = struct.unpack_from("<Q", idx, 9)
    if version != INDEX_VERSION:
        raise ValueError(f"unsupported Megatron index version {version}")
    code, = struct.unpack_from("<B", idx, 17)
    n_seq, n_doc = struct.unpack_from("<QQ", idx, 18)
    at = 34
    lengths = np.frombuffer(idx, dtype=np.int32, count=n_seq, offset=at)
    at += lengths.nbytes
    pointers = np.frombuffer(idx, dtype=np.int64, count=n_seq, offset=at)
    at += pointers.nbytes
    documents = np.frombuffer(idx, dtype=np.int64, count=n_doc, offset=at)
    return {"dtype": CODE_DTYPES[code], "lengths": lengths, "pointers": pointers, "document_indices": documents}
