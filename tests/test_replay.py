"""Fault injection (issue 15, finding 4 and acceptance 3): a plug-in filter that fails.

- transiently (``ConnectionError``) on the first attempt for 5 % of docs: the output is identical to a clean run,
  on the in-process and the multi-process runner, and nothing is dead-lettered;
- permanently on 5 % of docs: exactly those docs are in the dead letter (stage, error class, the whole doc), and
  ``qurate replay OUT --output NEW`` with the filter fixed puts each of them where a clean run puts it.

The plug-in is a real module on ``PYTHONPATH`` (the multi-process runner's workers import it by its dotted path).
Stage: heuristics, a per-document stage, so a replayed doc's fate does not depend on the other docs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import read_rows, rows_digest, runner_args_for
from qurate.hashing import stable_unit

FAULTY = textwrap.dedent('''
    """A custom filter that fails for 5 % of docs (chosen by a keyed hash of the id)."""
    import os

    from qurate.hashing import stable_unit

    _SEEN = set()


    def chosen(doc_id):
        return stable_unit("fault", doc_id) < 0.05


    def faulty(doc, mode="none"):
        if mode != "none" and chosen(doc["id"]):
            if mode == "permanent":
                raise ValueError(f"cannot handle {doc['id']}")
            if doc["id"] not in _SEEN:  # transient: the first attempt in this process fails
                _SEEN.add(doc["id"])
                with open(os.environ["FAULT_LOG"], "a") as log:
                    log.write(doc["id"] + "\\n")
                raise ConnectionError(f"model server reset the connection ({doc['id']})")
        return True
''')
STAGES = "heuristics"


def _recipe(folder: Path, mode: str) -> Path:
    path = folder / f"recipe-{mode}.yaml"
    path.write_text(f"health:\n  max_dead_letter_share: 1\nheuristics:\n  custom:\n    - name: faulty\n"
                    f"      filter: qurate_faulty_filter.faulty\n      params:\n        mode: {mode}\n")
    return path


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faulty_plugin")
    (folder / "qurate_faulty_filter.py").write_text(FAULTY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
           "FAULT_LOG": str(folder / "fault.log")}
    return folder, env


def _cli(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qurate.pipelines.cli", *argv], capture_output=True, text=True,
                          timeout=600, env=env)


def _outputs(out: Path) -> tuple[str, str, str]:
    return (rows_digest(read_rows(out, "mixture")), rows_digest(read_rows(out, "docs")),
            rows_digest(read_rows(out, "rejected")))


@pytest.fixture(scope="module")
def clean(plugin, corpus_slice, tmp_path_factory):
    folder, env = plugin
    out = tmp_path_factory.mktemp("clean") / "out"
    proc = _cli(["run", str(_recipe(folder, "none")), "--input", str(corpus_slice), "--output", str(out),
                 "--stages", STAGES], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _chosen(corpus_slice: Path) -> set[str]:
    ids = {json.loads(line)["id"] for line in corpus_slice.read_bytes().splitlines() if line.strip()}
    return {doc_id for doc_id in ids if stable_unit("fault", doc_id) < 0.05}


@pytest.mark.parametrize("kind", ["inprocess", "multiprocess"])
def test_transient_failures_are_retried_to_the_clean_output(plugin, clean, corpus_slice, tmp_path, kind):
    folder, env = plugin
    log = Path(env["FAULT_LOG"])
    log.unlink(missing_ok=True)
    out = tmp_path / "out"
    proc = _cli(["run", str(_recipe(folder, "transient")), "--input", str(corpus_slice), "--output", str(out),
                 "--stages", STAGES, *runner_args_for(kind)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = _chosen(corpus_slice)
    failed = set(log.read_text().split()) if log.exists() else set()
    # The fault fired (for every chosen doc that reached the filter) and no doc paid for it.
    assert failed and failed <= chosen
    assert not read_rows(out, "dead_letter")
    assert _outputs(out) == _outputs(clean)


def test_permanent_failures_go_to_the_dead_letter_and_replay_into_a_new_run(plugin, clean, corpus_slice, tmp_path):
    folder, env = plugin
    out, new = tmp_path / "out", tmp_path / "new"
    proc = _cli(["run", str(_recipe(folder, "permanent")), "--input", str(corpus_slice), "--output", str(out),
                 "--stages", STAGES], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Custom filters run after the rule families: the chosen docs that reach the filter are those kept.
    expected = _chosen(corpus_slice) & {r["id"] for r in read_rows(clean, "docs")}
    dead = read_rows(out, "dead_letter")
    assert expected and {r["id"] for r in dead} == expected and len(dead) == len(expected)
    for row in dead:
        assert row["stage"] == "heuristics" and row["error_class"] == "ValueError"
        assert row["error"].startswith("ValueError: cannot handle") and row["source"]
        doc = json.loads(row["raw"])  # the whole doc, as the stage got it
        assert doc["id"] == row["id"] and doc["text"] and row["raw_chars"] == len(row["raw"])

    # The filter is fixed (mode none): replay puts every dead-lettered doc where a clean run puts it.
    proc = _cli(["replay", str(out), str(_recipe(folder, "none")), "--output", str(new)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"replaying {len(expected)} dead-letter record(s)" in proc.stderr
    manifest = json.loads((new / "manifest.json").read_text())
    assert manifest["input"]["records"] == len(expected) and manifest["conservation"]["ok"]
    assert [s["stage"] for s in manifest["stages"]] == STAGES.split(",")
    for sub in ("mixture", "docs", "rejected"):
        replayed = [r for r in read_rows(new, sub)]
        in_clean = [r for r in read_rows(clean, sub) if r["id"] in expected]
        assert rows_digest(replayed) == rows_digest(in_clean), sub
    assert not read_rows(new, "dead_letter")
    # Replaying into a folder qurate does not own is refused, like a run.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    proc = _cli(["replay", str(out), "--output", str(tmp_path / "mine")], env)
    assert proc.returncode == 2 and "not written by qurate" in proc.stderr
