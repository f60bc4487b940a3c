"""The live per-stage counts ``qurate run`` prints while the pipeline runs."""

from __future__ import annotations

import shutil
import sys
import threading
import time


class Progress:
    """Live per-stage counts while the pipeline runs (stderr, with tqdm), from the Beam counters the stages
    increment (``qurate.kept``, ``qurate.rejected``); only on a terminal. Elsewhere (CI logs, files) it prints
    the phase changes only."""

    def __init__(self, stages: list[str], live: bool | None = None):
        self.stages, self.started = ["read", *stages], time.monotonic()
        self.live = sys.stderr.isatty() if live is None else live
        self.kept: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self._lock = threading.Lock()
        self._bar = None
        self._unwatch = None
        self._stop = threading.Event()

    def set(self, phase: str) -> None:
        if phase == "running the pipeline" and self.live:
            from qurate.pipelines.runners import watch_counters
            from tqdm import tqdm

            size = shutil.get_terminal_size((120, 20))  # a pty without a size reports 0 x 0: tqdm hides the bar
            self._bar = tqdm(total=0, bar_format="{desc}", file=sys.stderr, leave=False,
                             ncols=size.columns or 120, nrows=size.lines or 20)
            self._unwatch = watch_counters(self._add)
            threading.Thread(target=self._tick, daemon=True).start()  # docs/s and seconds move between bundles
            return
        self._close()
        print(f"  ... {phase} ({time.monotonic() - self.started:.0f} s)", file=sys.stderr, flush=True)

    def _add(self, counters: dict[tuple[str, str], int]) -> None:
        with self._lock:
            for (namespace, name), value in counters.items():
                if namespace == "qurate.kept":
                    self.kept[name] = self.kept.get(name, 0) + value
                elif namespace == "qurate.rejected":
                    self.rejected[name] = self.rejected.get(name, 0) + value

    def line(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-9)
        with self._lock:
            parts = [f"read {self.kept.get('read', 0):,}"]
            for name in self.stages[1:]:
                parts.append(f"{name} {self.kept.get(name, 0):,} kept/{self.rejected.get(name, 0):,} rejected")
            rate = self.kept.get("read", 0) / seconds
        return f"  {seconds:5.0f} s  " + " | ".join(parts) + f" | {rate:,.0f} docs/s read"

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            bar = self._bar
            if bar is not None:
                bar.set_description_str(self.line())

    def _close(self) -> None:
        if self._unwatch:
            self._unwatch()
            self._unwatch = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def stop(self) -> None:
        self._stop.set()
        self._close()
