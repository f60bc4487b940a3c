"""The ``dedup`` recipe section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from qurate.dedup.lsh import lsh_params
from qurate.dedup.shingles import CHAR_LANGS, ShingleSpec
from qurate.section import Section


class DedupConfig(Section):
    """Exact and near-duplicate removal (MinHash-LSH with verified candidates and connected components)."""

    exact: bool = Field(True, description="remove exact duplicates (same text after `exact_normalization`)")
    exact_normalization: Literal["none", "whitespace", "lower", "aggressive"] = Field(
        "whitespace", description="text normalization before the exact hash: none, whitespace (NFC, collapsed "
        "spaces), lower (whitespace + lowercase), aggressive (NFKC, lowercase, punctuation dropped)")
    near: bool = Field(True, description="remove near duplicates (MinHash over word or character n-grams + LSH)")
    # 0.6 (was 0.8): on real near-duplicate families (bench/dedup_quality.py, bench/RESULTS.md) 0.8 found 77 % of
    # the duplicate pairs, 0.6 finds 97 % at precision 0.998; 0.55 and below start merging hard negatives.
    threshold: float = Field(0.6, gt=0, lt=1, description="Jaccard similarity of shingle sets above which two "
                             "docs are near duplicates")
    num_perm: int = Field(256, ge=2, le=1024, description="MinHash permutations (256: Jaccard estimate +-0.025 "
                          "at 0.8; 112: +-0.04)")
    minhash_seed: int = Field(1, description="datasketch's seed for the permutations (its default)")
    word_ngram: int = Field(5, ge=1, le=32, description="words per shingle (spaced scripts)")
    char_ngram: int = Field(5, ge=1, le=32, description="characters per shingle (scripts without spaces)")
    char_langs: list[str] = Field(default_factory=lambda: sorted(CHAR_LANGS), description="languages shingled "
                                  "by characters (docs without a language: by script detection)")
    lsh_threshold: float | None = Field(0.5, gt=0, lt=1, description="threshold datasketch's optimizer picks "
                                        "(bands, rows) for (0.5: 42 x 6 of 256); 0.1 below `threshold` because "
                                        "verification removes the extra candidates, while LSH at `threshold` itself "
                                        "misses pairs just above it (null: same as `threshold`)")
    fp_weight: float = Field(0.5, ge=0, description="weight of false positives in the (bands, rows) optimizer")
    fn_weight: float = Field(0.5, ge=0, description="weight of false negatives in the (bands, rows) optimizer")
    bands: int | None = Field(None, ge=1, description="LSH bands (give with `rows` to override the optimizer)")
    rows: int | None = Field(None, ge=1, description="LSH rows per band (give with `bands`)")
    verify: bool = Field(True, description="keep a candidate pair as an edge only if its estimated Jaccard "
                         "reaches `verify_threshold`")
    verify_threshold: float | None = Field(None, ge=0, le=1, description="Jaccard an edge needs "
                                           "(null: same as `threshold`)")
    verify_anchors: int = Field(8, ge=1, le=256, description="each LSH bucket member is checked against the "
                                "bucket's k smallest vertices (linear in bucket size, never all pairs)")
    max_rounds: int = Field(8, ge=1, le=64, description="large-star/small-star rounds of connected components "
                            "(unrolled in the pipeline graph; unconverged clusters are reported, never over-removed)")
    components: Literal["auto", "rounds", "union_find"] = Field(
        "auto", description="how connected components are found: rounds (large-star/small-star, unrolled "
        "`max_rounds` times: any runner, any graph size, a few runner stages per round); union_find (one pass "
        "over the edges in one worker's memory, about 200 bytes per graph vertex, same labels, two runner "
        "stages); auto: union_find on the local DirectRunner (in-process or multi-process, where all data is on "
        "one machine anyway), rounds on every other runner")
    survivor_key: list[str] = Field(default_factory=lambda: ["quality_score", "length"], description="which copy "
                                    "of a cluster survives: best by these fields in order (higher wins, a missing "
                                    "field ranks below any value; `length` is the text length); ties: smallest id")
    batch_size: int = Field(128, ge=1, description="docs per MinHash signing batch")

    @model_validator(mode="after")
    def _bands_and_rows(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    def lsh(self) -> tuple[int, int]:
        """(bands, rows) in effect (datasketch's optimizer runs here: call once per run, not per batch)."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return lsh_params(self.lsh_threshold or self.threshold, self.num_perm, self.fp_weight, self.fn_weight)

    def shingle_spec(self) -> ShingleSpec:
        return ShingleSpec(self.word_ngram, self.char_ngram, frozenset(self.char_langs))

    def edge_threshold(self) -> float:
        return self.threshold if self.verify_threshold is None else self.verify_threshold
