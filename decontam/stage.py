"""The ``decontam`` stage: its per-document decider, its stats and report section, and its ``StageSpec``.

The decider pickles as its config only; ``setup()`` (in the worker) loads the tokenizer and the index, both cached
per process, so every DoFn instance of a worker shares one index. The index is a pure function of the benchmark
files, the recipe and the tokenizer, which every worker already has: this is the side-input pattern without
shipping ~100 MB of arrays through the runner. For benchmark sets too large for a worker's memory the sharded-join
path is: emit ``(n-gram hash, (doc id, position))`` from documents and ``(n-gram hash, item)`` from benchmarks,
group on the hash, group the candidate pairs by doc id and run the same LCS verification (``Detector._verify``)
on each doc with its candidate items.
"""

from __future__ import annotations

import glob
from typing import Any

from qurate.decontam.config import DecontamConfig
from qurate.decontam.detect import Detector, Hit, reason
from qurate.decontam.index import TokenEncoder, get_index
from qurate.doc import Doc
from qurate.hashing import stable_hash
from qurate.spec import ReportSection, StageContext, StageSpec
from qurate.stats import EXAMPLE, StatKey, StatPairs, Stats, select
from qurate.verdicts import DocDecider, Keep, Reject, Verdict

EXAMPLE_CANDIDATE = "_example"  # the wiring's prefix of report-example candidates (smallest rank per group wins)
EXAMPLE_GROUP = "contaminated"
EXAMPLE_CHARS = 300

CHECKED, CONTAMINATED, EXCISED, EXCISE_FAILED, HITS = "checked", "contaminated", "excised", "excise_failed", "hits"


def checked_key() -> StatKey:
    """Every doc checked: docs, tokens (normalized)."""
    return (CHECKED,)


def contaminated_key() -> StatKey:
    """Docs with at least one verified hit: docs."""
    return (CONTAMINATED,)


def excised_key() -> StatKey:
    """Docs kept after cutting their contaminated spans: docs, spans, chars."""
    return (EXCISED,)


def excise_failed_key(why: str) -> StatKey:
    """Docs excision could not save (then dropped): docs."""
    return (EXCISE_FAILED, why)


def hits_key(benchmark: str) -> StatKey:
    """Per benchmark, once per doc (its best hit): docs, summed LCS length and ratio."""
    return (HITS, benchmark)


def example_key(doc_id: str, why: str, window: str, item: str) -> StatKey:
    """A report-example candidate; the report gets it back as ``("example", group, "000", *fields)``."""
    return (EXAMPLE_CANDIDATE, EXAMPLE_GROUP, doc_id, why, window, item)


def hit_stats(hits: list[Hit]) -> StatPairs:
    """Per benchmark (once per document, its best hit): docs, summed LCS length and ratio."""
    stats: StatPairs = {}
    for hit in hits:  # best first: the first hit of a benchmark is its best
        key = hits_key(hit.benchmark)
        if key not in stats:
            stats[key] = {"docs": 1, "lcs": hit.lcs, "ratio": hit.ratio}
    return stats


def make_detector(config: DecontamConfig, tokenizer_name: str) -> Detector:
    from qurate.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    return Detector(get_index(config, tokenizer), TokenEncoder(tokenizer), config)


class DecontamDecider(DocDecider):
    """Drops (or excises) documents that contain a benchmark item by Qwen2.5's rule."""

    stage_name = "decontam"

    def __init__(self, config: DecontamConfig, tokenizer_name: str, seed: int = 0, examples: bool = True):
        self.config = config
        self.tokenizer_name = tokenizer_name
        self.seed = seed
        self.examples = examples
        self._detector: Detector | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_detector"] = None  # the index is rebuilt (or loaded) in the worker, never shipped
        return state

    def setup(self) -> None:
        if self._detector is None:
            self._detector = make_detector(self.config, self.tokenizer_name)

    @property
    def detector(self) -> Detector:
        self.setup()
        assert self._detector is not None
        return self._detector

    def decide(self, doc: Doc) -> Verdict:
        verdict = self.decide_batch([doc])[0]
        if isinstance(verdict, BaseException):
            raise verdict
        return verdict

    def decide_batch(self, docs: list[Doc]) -> list[Verdict | BaseException]:
        detector = self.detector
        all_tokens = detector.tokens([doc["text"] for doc in docs])
        out: list[Verdict | BaseException] = []
        for doc, tokens in zip(docs, all_tokens):
            try:
                out.append(self._verdict(doc, tokens, detector))
            except Exception as err:  # one bad doc goes to the dead-letter output, not the whole batch
                out.append(err)
        return out

    def _verdict(self, doc: Doc, tokens, detector: Detector) -> Verdict:
        stats: StatPairs = {checked_key(): {"docs": 1, "tokens": len(tokens)}}
        hits = detector.find(tokens)
        if not hits:
            return Keep(doc, stats)
        stats[contaminated_key()] = {"docs": 1}
        stats.update(hit_stats(hits))
        if self.examples:
            stats[self._example_key(doc, hits, tokens, detector)] = {"rank": stable_hash(doc["id"], self.seed)}
        if self.config.action == "excise":
            kept = self._excise(doc, tokens, hits, detector, stats)
            if kept is not None:
                return kept
        return Reject(reason(hits), stats)

    def _excise(self, doc: Doc, tokens, hits: list[Hit], detector: Detector, stats: StatPairs) -> Keep | None:
        """The doc with its contaminated spans cut out, if what is left is non-empty and passes the rule."""
        result = detector.excise(doc["text"], tokens, hits)
        if result is None:
            stats[excise_failed_key("unmappable")] = {"docs": 1}
            return None
        text, spans = result
        if not text.strip():
            stats[excise_failed_key("nothing left")] = {"docs": 1}
            return None
        if detector.find(detector.tokens([text])[0]):  # a second copy or a fragment still passes the rule
            stats[excise_failed_key("still contaminated")] = {"docs": 1}
            return None
        stats[excised_key()] = {"docs": 1, "spans": spans, "chars": len(doc["text"]) - len(text)}
        return Keep({**doc, "text": text}, stats)

    def _example_key(self, doc: Doc, hits: list[Hit], tokens, detector: Detector) -> StatKey:
        best = hits[0]
        decode = detector.encoder.tokenizer.decode
        window = decode(tokens[best.start:best.end].tolist())[:EXAMPLE_CHARS]
        item = decode(detector.index.item_tokens(best.item_index).tolist())[:EXAMPLE_CHARS]
        return example_key(str(doc["id"]), reason(hits), window.strip(), item.strip())


RULE_NOTE = ("Qwen2.5 rule: a document is contaminated by a benchmark item when, in a window of the document "
             "around the item's shared {n}-grams (widened by the part of the item not covered, at most about "
             "twice the item's length), |LCS| >= {min_lcs} tokens and |LCS| >= {min_ratio} x min(|window|, "
             "|item|). Tokens are the pipeline tokenizer's, after NFKC, casefolding, removal of list markers "
             "(A., (b), 3)) and punctuation, and whitespace collapsing.")


def report(stats: Stats, config: DecontamConfig) -> ReportSection:
    """The report section: docs checked and contaminated, hits per benchmark, a few examples."""
    checked = stats.get(checked_key(), {})
    contaminated = stats.get(contaminated_key(), {})
    excised = stats.get(excised_key(), {})
    hits = sorted(((key[0], v) for key, v in select(stats, HITS).items()), key=lambda kv: (-kv[1]["docs"], kv[0]))
    summary: dict[str, Any] = {
        "docs checked": int(checked.get("docs", 0)),
        "tokens checked (normalized)": int(checked.get("tokens", 0)),
        "contaminated docs": int(contaminated.get("docs", 0)),
        "action": config.action,
        "benchmarks": ", ".join(config.bundled() + [f.benchmark or f.path for f in config.files]
                                + [h.benchmark or h.name for h in config.hf]),
    }
    if config.action == "excise":
        summary["docs excised (kept)"] = int(excised.get("docs", 0))
        summary["spans excised"] = int(excised.get("spans", 0))
        summary["chars excised"] = int(excised.get("chars", 0))
        for key, value in sorted(select(stats, EXCISE_FAILED).items()):
            summary[f"dropped: excision {key[0]}"] = int(value["docs"])
    rows = [[name, int(v["docs"]), round(v["lcs"] / v["docs"], 1), round(v["ratio"] / v["docs"], 3)]
            for name, v in hits]
    section: ReportSection = {
        "summary": summary,
        "tables": [{"title": "Contaminated documents per benchmark (a doc counts once per benchmark)",
                    "columns": ["benchmark", "docs", "mean LCS tokens", "mean LCS ratio"], "rows": rows}],
        "notes": [RULE_NOTE.format(n=config.ngram, min_lcs=config.min_lcs, min_ratio=config.min_ratio)],
    }
    if rows:
        section["charts"] = [{"title": "Contaminated documents per benchmark", "kind": "bar",
                              "x": [r[0] for r in rows], "series": {"docs": [r[1] for r in rows]}}]
    examples = sorted(select(stats, EXAMPLE, EXAMPLE_GROUP))  # (rank position, doc id, reason, window, item)
    section["examples"] = [{"title": f"{k[1]}: {k[2]}", "text": f"document (normalized): {k[3]}\n\n"
                            f"benchmark item (normalized): {k[4]}"} for k in examples]
    return section


def _matches(path: str) -> bool:
    if "://" not in path:
        return bool(glob.glob(path))
    # Cloud paths go through Beam's filesystems, as the benchmark reader does (imported here: no Beam at import).
    from apache_beam.io.filesystems import FileSystems

    return any(r.metadata_list for r in FileSystems.match([path]))


def check(config: DecontamConfig, ctx: StageContext) -> None:
    """Start-up check: every benchmark file named in the recipe exists (fail before the run, naming the key)."""
    for i, spec in enumerate(config.files):
        try:
            found = _matches(spec.path)
        except Exception as err:  # an unreachable bucket or a bad URL scheme
            raise ValueError(f"bad value for 'decontam.files.{i}.path': {spec.path}: {err}") from None
        if not found:
            raise ValueError(f"bad value for 'decontam.files.{i}.path': no file matches {spec.path}")


def make_decider(config: DecontamConfig, ctx: StageContext) -> DecontamDecider:
    return DecontamDecider(config, ctx.tokenizer, ctx.seed, ctx.report_examples > 0)


STAGE = StageSpec(
    name="decontam", order=80, config=DecontamConfig, decider=make_decider, report=report, check=check,
    description="benchmark decontamination by Qwen2.5's rule (13-gram candidates, then an LCS check); drops or "
                "excises contaminated documents",
)
