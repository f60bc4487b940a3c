"""The request cache: model answers (and reward scores) on disk, keyed by everything that determines them.

The key is a SHA-256 of the canonical JSON of (kind, model, prompt, parameters, seed), so a re-run, or a run
resumed after a crash, replays every answer it already has instead of asking the model again. One small JSON
file per answer, written to a temporary name and renamed into place: concurrent workers never see half a file,
and a crash loses at most the answers in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

VERSION = 1  # bump when what a key means changes


def cache_key(kind: str, **parts: Any) -> str:
    blob = json.dumps({"v": VERSION, "kind": kind, **parts}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


class RequestCache:
    """``get(key) -> value | None`` and ``put(key, value)`` on a local folder; ``path=None`` is a cache that never
    hits (the cache is off)."""

    def __init__(self, path: str | os.PathLike[str] | None):
        self.path = Path(path).expanduser() if path else None

    def _file(self, key: str) -> Path:
        assert self.path is not None
        return self.path / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        if self.path is None:
            return None
        try:
            with open(self._file(key), encoding="utf-8") as handle:
                return json.load(handle)["value"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError):  # a torn or foreign file: ask the model again
            return None

    def put(self, key: str, value: Any) -> None:
        if self.path is None:
            return
        target = self._file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"key": key, "value": value}, handle, ensure_ascii=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return 0 if self.path is None or not self.path.exists() else sum(1 for _ in self.path.glob("*/*.json"))
