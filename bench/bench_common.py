"""What the scale benchmarks share: the N-document corpus built from the real sample, and the peak memory of a
process tree. Imported by bench/e2e.py and bench/scale.py (appended to sys.path after the standard library, since
bench/tokenize.py would shadow the standard library's)."""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "corpus_sample.jsonl"
SAMPLE = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"


def corpus_docs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` docs: the real ones of the shared sample first (the bundled sample when it is absent), then copies
    of random real ones (seeded: one in three exact, the others with one word changed)."""
    return list(iter_corpus_docs(n, seed))


def iter_corpus_docs(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``corpus_docs`` one at a time (a million docs need not be held)."""
    path = SHARED if SHARED.exists() else SAMPLE
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        real = [json.loads(line) for line in handle if line.strip()]
    for d in real[:n]:
        yield {"id": d["id"], "text": d["text"], "source": d.get("source") or ""}
    rng = random.Random(seed)
    for i in range(n - min(n, len(real))):
        src = real[rng.randrange(len(real))]
        text = src["text"]
        if i % 3:
            words = text.split(" ")
            words[rng.randrange(len(words))] = "changed"
            text = " ".join(words)
        yield {"id": f"{src['id']}#copy{i}", "text": text, "source": src.get("source") or ""}


def text_mb(docs: list[dict[str, Any]]) -> float:
    return sum(len(d["text"].encode("utf-8")) for d in docs) / 1e6


class TreePeak:
    """Largest total RSS of a process and all its descendants, polled from /proc every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self.samples: list[tuple[float, int]] = []  # (time.time(), KiB): peaks per phase of a run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> set[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        tree, todo = set(), [self.pid]
        while todo:
            pid = todo.pop()
            tree.add(pid)
            todo.extend(children.get(pid, []))
        return tree

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            self.peak_kib = max(self.peak_kib, total)
            self.samples.append((time.time(), total))
            self._stop.wait(self.interval)

    def stop(self) -> float:
        """Stops polling; the peak in GB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 2**20
