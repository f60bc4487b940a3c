"""qurate: curated, decontaminated, tokenized pretraining mixtures on Apache Beam."""

__version__ = "0.1.0"
