"""The recipe's ``pack`` section: which trainer-ready exports a run writes beside its Parquet mixture."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from qurate.section import Section


class PackConfig(Section):
    """Recipe section ``pack``: trainer-ready outputs written beside the Parquet mixture."""

    enabled: bool = Field(True, description="write the trainer exports (Megatron and/or packed sequences) after "
                          "the mixture; false: the Parquet mixture only")
    seq_lens: list[int] = Field(default_factory=lambda: [4096], description="packed sequence lengths, one "
                                "export per length (Qwen2.5: 4096, then 32768 for the long-context stage)")
    policy: Literal["greedy", "best_fit"] = Field("best_fit", description="greedy: Megatron-style concatenation "
                                                  "(documents split at sequence ends); best_fit: best-fit "
                                                  "decreasing bin packing (a document is split only when longer "
                                                  "than seq_len)")
    long_context_share: float = Field(0.4, ge=0.0, le=1.0, description="for every seq_len after the first: the "
                                      "least share of sequences holding one document piece longer than half the "
                                      "sequence (Qwen2.5-Turbo: 0.4); short-only sequences beyond it are left out "
                                      "of that stage and counted. 0 turns it off")
    megatron: bool = Field(True, description="write OUT/megatron/<split>/<component>/part-*.bin|.idx (Megatron "
                           "indexed dataset, one document per sequence, int32 tokens for vocabularies over 65,536)")
    numpy: bool = Field(True, description="write OUT/packed/seq<L>/<split>/part-*.tokens.npy (int32 "
                        "[sequences, L] memmap) with its span index (.spans.npy) and document ids (.docs.parquet)")
    validation_share: float = Field(0.01, ge=0.0, lt=1.0, description="share of documents (by keyed hash of the "
                                    "id, so every repeat of a document lands in the same split) held out as the "
                                    "validation split")
    shuffle: bool = Field(True, description="order documents and sequences by a keyed hash of (id, repeat, "
                          "seed); false: by id")
    component_by: Literal["source", "domain", "lang"] = Field("source", description="mixture column that names a "
                                                               "component for Megatron files, weights and blend "
                                                               "lines (and `qurate mix --weights`)")

    @field_validator("seq_lens")
    @classmethod
    def _valid_lengths(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one sequence length")
        if any(n < 16 or n > 1 << 20 for n in value):
            raise ValueError("every sequence length must be in [16, 1048576]")
        if len(set(value)) != len(value):
            raise ValueError("sequence lengths must be distinct")
        return value
