"""The ``dedup`` recipe section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from qurate.pipelines.section import Section

# Languages written without spaces between words: shingles are character n-grams.
CHAR_LANGS = frozenset({"zh", "ja", "th", "km", "lo", "my", "bo", "dz", "yue", "wuu"})


class DedupConfig(Section):
    # Exact duplicates: a hash of the text after this normalization.
    exact: bool = True
    exact_normalization: Literal["none", "whitespace", "lower", "aggressive"] = "whitespace"
    # Near duplicates: MinHash over word n-grams (character n-grams for scripts without spaces) + LSH.
    near: bool = True
    threshold: float = Field(0.8, gt=0, lt=1)  # Jaccard similarity above which two docs are near duplicates
    num_perm: int = Field(256, ge=2, le=1024)  # 256: Jaccard estimate +-0.025 at 0.8 (112: +-0.04)
    minhash_seed: int = 1  # datasketch's seed for the permutations (its default)
    word_ngram: int = Field(5, ge=1, le=32)
    char_ngram: int = Field(5, ge=1, le=32)
    char_langs: list[str] = Field(default_factory=lambda: sorted(CHAR_LANGS))
    # LSH (bands, rows): by default datasketch's optimizer for `lsh_threshold` (the verification below removes
    # the extra candidates a lower LSH threshold lets in); give both to override.
    lsh_threshold: float | None = Field(0.7, gt=0, lt=1)  # None: same as `threshold`
    fp_weight: float = Field(0.5, ge=0)
    fn_weight: float = Field(0.5, ge=0)
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    # Candidate pairs from a band bucket are kept as edges only if their signature Jaccard is high enough.
    verify: bool = True
    verify_threshold: float | None = Field(None, ge=0, le=1)  # None: same as `threshold`
    verify_anchors: int = Field(8, ge=1, le=256)  # bucket members are checked against its k smallest
    # Connected components: large-star/small-star rounds unrolled in the pipeline graph.
    max_rounds: int = Field(8, ge=1, le=64)
    # Which copy survives: the best by these fields, in order (higher wins; docs lacking a field rank below
    # docs having it); "length" is the text length. Ties go to the smallest id.
    survivor_key: list[str] = Field(default_factory=lambda: ["quality_score", "length"])
    batch_size: int = Field(128, ge=1)  # docs per signature batch

    @model_validator(mode="after")
    def _bands_and_rows(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    def lsh(self) -> tuple[int, int]:
        """(bands, rows) in effect."""
        from qurate.dedup.minhash import lsh_params  # datasketch (and scipy) load only when dedup runs

        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return lsh_params(self.lsh_threshold or self.threshold, self.num_perm, self.fp_weight, self.fn_weight)

    def shingle_spec(self):
        from qurate.dedup.minhash import ShingleSpec

        return ShingleSpec(self.word_ngram, self.char_ngram, frozenset(self.char_langs))

    def edge_threshold(self) -> float:
        return self.threshold if self.verify_threshold is None else self.verify_threshold
