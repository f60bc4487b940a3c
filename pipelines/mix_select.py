"""The mix's selection in Beam: unique rows counted into per-component hash-bucket histograms, the plan made
from them, and every copy of each document that the plan asks for."""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.export_files import write_atomic
from qurate.pipelines.export_keys import component_of
from qurate.pipelines.mix_plan import BUCKETS, bucket_of, plan_mix
from qurate.pipelines.pack_config import PackConfig

MIX_PLAN = "_stats/mix_plan.json"


class _Histogram(beam.CombineFn):
    """Tokens per hash bucket: a fixed int64 array, so combining is order-free and exact."""

    def create_accumulator(self):
        return np.zeros(BUCKETS, dtype=np.int64)

    def add_input(self, acc, item):
        bucket, tokens = item
        acc[bucket] += tokens
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = accs[0].copy()
        for acc in accs[1:]:
            out += acc
        return out

    def extract_output(self, acc):
        return acc


def _copies(kv, plan: dict[str, Any], seed: int):
    """Every copy of one unique document that the plan asks for, numbered ``repeat`` 0, 1, ..."""
    component, row = kv
    c = plan["components"][component]
    n = c["epochs"] + (1 if bucket_of(row["id"], seed) < c["cut"] else 0)
    for repeat in range(n):
        out = dict(row)
        out["repeat"] = repeat
        out["parquet_component"] = component
        yield out


class SelectMix(beam.PTransform):
    """Unique mixture rows -> the re-weighted rows (with repeats); writes the plan to ``NEW/_stats``."""

    def __init__(self, new_dir: str, cfg: PackConfig, weights: dict[str, float], seed: int, *,
                 total: float | None, max_repeats: float, keep_total: bool):
        super().__init__()
        self.new_dir, self.cfg, self.weights, self.seed = new_dir, cfg, weights, seed
        self.total, self.max_repeats, self.keep_total = total, max_repeats, keep_total

    def expand(self, rows):
        seed, by = self.seed, self.cfg.component_by
        weights, total, max_repeats, keep_total = self.weights, self.total, self.max_repeats, self.keep_total
        keyed = (rows
                 | "FirstCopies" >> beam.Filter(lambda r: r["repeat"] == 0)
                 | "Component" >> beam.Map(lambda r: (component_of(r, by), r)))
        hists = (keyed
                 | "Bucket" >> beam.Map(lambda kv: (kv[0], (bucket_of(kv[1]["id"], seed), int(kv[1]["n_tokens"]))))
                 | "Histogram" >> beam.CombinePerKey(_Histogram()))
        plan = (hists
                | "AllHistograms" >> beam.combiners.ToDict()
                | "Plan" >> beam.Map(lambda h: plan_mix(h, weights, total=total, max_repeats=max_repeats,
                                                        keep_total=keep_total)))
        path = FileSystems.join(self.new_dir, MIX_PLAN)
        _ = plan | "WritePlan" >> beam.Map(
            lambda p: write_atomic(path, lambda h: h.write(json.dumps(p, indent=1).encode("utf-8"))))
        return keyed | "Copies" >> beam.FlatMap(_copies, plan=beam.pvalue.AsSingleton(plan), seed=seed)
