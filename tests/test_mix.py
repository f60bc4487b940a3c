"""``qurate mix``: re-weighting a finished mixture to new token shares, on every runner, without re-running a
stage."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from conftest import RUNNER_KINDS, run_cli
from mixture_fixture import make_mixture, mixture_rows, sample_docs
from qurate.pipelines.export_files import verify_files
from qurate.pipelines.mix_plan import BUCKETS, MixError, bucket_of, parse_weights, plan_mix
from qurate.pipelines.mix_select import SelectMix
from qurate.pipelines.pack_config import PackConfig

WEIGHTS = {"web--trafilatura-tests": 0.4, "debian--copyright": 0.25, "debian--gettext-mo": 0.15,
           "redpajama-sample--stackexchange": 0.1, "debian--manpages-dev": 0.1}


def _weights_arg(weights: dict[str, float]) -> str:
    return ",".join(f"{k}={v}" for k, v in weights.items())


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mix") / "run"
    docs = sample_docs(step=2)  # every other doc of the bundled sample (1,241 docs, every source)
    # an earlier up-sampling in the source: mix counts first copies only
    make_mixture(out, docs, repeats={str(d["id"]): 2 for d in docs[::10]},
                 pack={"seq_lens": [4096], "validation_share": 0.01})
    return out


def test_parse_weights():
    assert parse_weights("a=0.5, b=1.5") == {"a": 0.5, "b": 1.5}
    assert parse_weights('{"a": 2, "b": 0}') == {"a": 2.0, "b": 0.0}
    for bad in ("a", "a=x", "a=-1", "a=1,a=2", "a=0", "a=nan", "{bad json"):
        with pytest.raises(MixError):
            parse_weights(bad)


def _hists(sizes: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    out = {}
    for name, lengths in sizes.items():
        h = np.zeros(BUCKETS, dtype=np.int64)
        for i, n in enumerate(lengths):
            h[bucket_of(f"{name}-{i}", seed)] += n
        out[name] = h
    return out


def test_plan_hits_token_shares_and_reports_shortfalls():
    rng = np.random.default_rng(0)
    hists = _hists({"web": list(rng.integers(50, 3000, 4000)), "code": list(rng.integers(50, 3000, 1000)),
                    "math": list(rng.integers(50, 3000, 400))})
    supply = {k: int(h.sum()) for k, h in hists.items()}
    plan = plan_mix(hists, {"web": 5, "code": 3, "math": 2})
    assert plan["weights_are"] == "token shares" and not plan["shortfalls"]
    for name, share in {"web": 0.5, "code": 0.3, "math": 0.2}.items():
        c = plan["components"][name]
        assert abs(c["share"] - share) < 0.001
        assert c["tokens"] == c["epochs"] * supply[name] + int(hists[name][:c["cut"]].sum())
    assert plan["components"]["math"]["epochs"] >= 2  # up-sampled
    assert abs(plan["total"] - sum(supply.values())) / sum(supply.values()) < 0.001
    # math cannot reach 60 % within 2 epochs: the total shrinks, shares still hold, and that is reported
    capped = plan_mix(hists, {"web": 0.2, "code": 0.2, "math": 0.6}, max_repeats=2)
    assert capped["total"] < 0.7 * sum(supply.values())
    assert abs(capped["components"]["math"]["share"] - 0.6) < 0.001
    assert capped["components"]["math"]["epochs"] == 2 and "math" in capped["shortfalls"][0]
    # --keep-total: the total holds, math falls short, reported
    kept = plan_mix(hists, {"web": 0.2, "code": 0.2, "math": 0.6}, max_repeats=2, keep_total=True)
    assert kept["components"]["math"]["capped"] and kept["components"]["math"]["share"] < 0.6
    assert kept["shortfalls"] and kept["shortfalls"][0].startswith("math")
    # unnamed components get 0; unknown names are an error
    only = plan_mix(hists, {"web": 1}, total=100_000)
    assert only["components"]["code"]["tokens"] == 0 and abs(only["total"] - 100_000) < 3000
    with pytest.raises(MixError, match="unknown component"):
        plan_mix(hists, {"prose": 1})


def test_select_mix_in_a_test_pipeline(tmp_path):
    rows = [{"id": f"{name}-{i}", "repeat": r, "n_tokens": 100, "tokens": np.arange(100, dtype=np.int32),
             "source": name, "lang": None, "domain": None, "parquet_component": name}
            for name, n in (("a", 300), ("b", 100)) for i in range(n) for r in range(2 if i % 5 == 0 else 1)]
    cfg = PackConfig()
    with TestPipeline() as p:
        out = (p | beam.Create(rows)
               | SelectMix(str(tmp_path), cfg, {"a": 0.5, "b": 0.5}, 0, total=None, max_repeats=4,
                           keep_total=False))

        def check(selected):
            tokens = Counter()
            copies = defaultdict(list)
            for r in selected:
                tokens[r["source"]] += r["n_tokens"]
                copies[r["id"]].append(r["repeat"])
            assert abs(tokens["a"] / sum(tokens.values()) - 0.5) < 0.005
            assert tokens["a"] + tokens["b"] == 40_000  # the source's unique tokens
            assert all(sorted(v) == list(range(len(v))) for v in copies.values())
            assert max(len(v) for v in copies.values()) <= 2  # b: 10,000 unique -> 20,000 tokens = 2 epochs

        assert_that(out, check)
    plan = json.loads((tmp_path / "_stats" / "mix_plan.json").read_text())
    assert plan["components"]["b"]["epochs"] == 2


def _shares(rows: list[dict]) -> dict[str, float]:
    tokens = Counter()
    for r in rows:
        tokens[r["source"]] += r["n_tokens"]
    total = sum(tokens.values())
    return {k: v / total for k, v in tokens.items()}


def test_mix_on_every_runner(source, tmp_path, runner_args):
    src_rows = {(r["id"]): r for r in mixture_rows(source) if r["repeat"] == 0}
    digests = set()
    for kind in RUNNER_KINDS:
        new = tmp_path / kind
        code = run_cli(["mix", str(source), "--weights", _weights_arg(WEIGHTS), "--output", str(new),
                        *runner_args(kind)])
        assert code == 0, kind
        manifest = json.loads((new / "manifest.json").read_text())
        rows = mixture_rows(new)
        # shares measured on the written rows, against the request
        shares = _shares(rows)
        total_weight = sum(WEIGHTS.values())
        from qurate.pipelines.shards import safe_component

        measured = {safe_component(k): v for k, v in shares.items()}
        assert set(measured) == set(WEIGHTS)
        for name, weight in WEIGHTS.items():
            assert abs(measured[name] - weight / total_weight) < 0.005, (kind, name, measured[name])
            assert abs(manifest["mix"]["components"][name]["share"] - measured[name]) < 1e-9
        copies = defaultdict(list)
        for r in rows:
            copies[r["id"]].append(r["repeat"])
            assert r["tokens"] == src_rows[r["id"]]["tokens"]  # the source's tokens, untouched
        assert all(sorted(v) == list(range(len(v))) for v in copies.values())
        assert max(len(v) for v in copies.values()) <= 4
        assert not manifest["mix"]["shortfalls"]
        assert verify_files(str(new), manifest["export"]) == []
        assert (new / "report.json").exists()
        blend = json.loads((new / "megatron" / "blend.json").read_text())
        assert all(Path(p + ".bin").exists() for p in blend["train"][1::2])
        # the same bytes on every runner (blend.json names its own folder, so it differs by design)
        digests.add(json.dumps([(f["path"], f["sha256"]) for f in manifest["export"]["files"]
                                if f["kind"] != "megatron_blend"]))
    assert len(digests) == 1


def test_mix_shortfall_and_errors(source, tmp_path, capsys):
    new = tmp_path / "short"
    code = run_cli(["mix", str(source), "--weights", "redpajama-sample--arxiv=0.5,web--trafilatura-tests=0.5",
                    "--output", str(new), "--max-repeats", "2"])
    assert code == 0
    manifest = json.loads((new / "manifest.json").read_text())
    arxiv = manifest["mix"]["components"]["redpajama-sample--arxiv"]
    rows = mixture_rows(new)
    # a small total (2 epochs of arxiv's few docs): the cut is off by at most about one document
    one_doc = max(r["n_tokens"] for r in rows) / sum(r["n_tokens"] for r in rows)
    assert arxiv["epochs"] == 2 and abs(arxiv["share"] - 0.5) < one_doc
    assert manifest["mix"]["total"] < 0.1 * sum(r["n_tokens"] for r in mixture_rows(source) if r["repeat"] == 0)
    assert manifest["mix"]["shortfalls"] and "total shrinks" in manifest["mix"]["shortfalls"][0]
    assert "shortfall" in capsys.readouterr().out
    assert run_cli(["mix", str(source), "--weights", "prose=1", "--output", str(tmp_path / "x")]) == 2
    assert "unknown component" in capsys.readouterr().err
    assert run_cli(["mix", str(tmp_path / "nothing"), "--weights", "a=1", "--output", str(tmp_path / "y")]) == 2
    assert "no finished run" in capsys.readouterr().err
