"""The ``decontam`` stage's per-document logic (plain Python; the Beam wiring is ``pipelines/stage_decontam.py``).

The decider pickles as its config only; ``setup()`` (in the worker) loads the tokenizer and the index, both cached
per process, so every DoFn instance of a worker shares one index.
"""

from __future__ import annotations

from typing import Any

from qurate.decontam.config import DecontamConfig
from qurate.decontam.detect import Detector, Hit, hit_stats, reason
from qurate.decontam.index import TokenEncoder, get_index
from qurate.pipelines.stage import DocDecider, Keep, Reject
from qurate.pipelines.write import stable_hash

EXAMPLE_KEY = "_example"  # stats rows carrying an example; the stage keeps the few with the smallest rank
EXAMPLE_CHARS = 300


def make_detector(config: DecontamConfig, tokenizer_name: str) -> Detector:
    from qurate.pipelines.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    return Detector(get_index(config, tokenizer), TokenEncoder(tokenizer), config)


class DecontamDecider(DocDecider):
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

    def decide(self, doc: dict[str, Any]) -> Keep | Reject:
        return self.decide_batch([doc])[0]  # type: ignore[return-value]

    def decide_batch(self, docs: list[dict[str, Any]]) -> list[Keep | Reject | BaseException]:
        detector = self.detector
        all_tokens = detector.tokens([doc["text"] for doc in docs])
        out: list[Keep | Reject | BaseException] = []
        for doc, tokens in zip(docs, all_tokens):
            try:
                out.append(self._verdict(doc, tokens, detector))
            except Exception as err:  # one bad doc goes to the dead-letter output, not the whole batch
                out.append(err)
        return out

    def _verdict(self, doc: dict[str, Any], tokens, detector: Detector) -> Keep | Reject:
        stats: dict[tuple[str, ...], dict[str, Any]] = {("checked",): {"docs": 1, "tokens": len(tokens)}}
        hits = detector.find(tokens)
        if not hits:
            return Keep(doc, stats)
        stats[("contaminated",)] = {"docs": 1, "items": len(hits)}
        stats.update(hit_stats(hits))
        if self.examples:
            stats[self._example_key(doc, hits, tokens, detector)] = {"rank": stable_hash(doc["id"], self.seed)}
        if self.config.action == "excise":
            kept = self._excise(doc, tokens, hits, detector, stats)
            if kept is not None:
                return kept
        return Reject(reason(hits), stats)

    def _excise(self, doc: dict[str, Any], tokens, hits: list[Hit], detector: Detector,
                stats: dict[tuple[str, ...], dict[str, Any]]) -> Keep | None:
        """The doc with its contaminated spans cut out, if what is left is non-empty and passes the rule."""
        result = detector.excise(doc["text"], tokens, hits)
        if result is None:
            stats[("excise_failed", "unmappable")] = {"docs": 1}
            return None
        text, spans = result
        if not text.strip():
            stats[("excise_failed", "nothing left")] = {"docs": 1}
            return None
        if detector.find(detector.tokens([text])[0]):  # a second copy or a fragment still passes the rule
            stats[("excise_failed", "still contaminated")] = {"docs": 1}
            return None
        stats[("excised",)] = {"docs": 1, "spans": spans, "chars": len(doc["text"]) - len(text)}
        return Keep({**doc, "text": text}, stats)

    def _example_key(self, doc: dict[str, Any], hits: list[Hit], tokens, detector: Detector) -> tuple[str, ...]:
        best = hits[0]
        decode = detector.encoder.tokenizer.decode
        window = decode(tokens[best.start:best.end].tolist())[:EXAMPLE_CHARS]
        item = decode(detector.index.item_tokens(best.item_index).tolist())[:EXAMPLE_CHARS]
        return (EXAMPLE_KEY, str(doc["id"]), reason(hits), window.strip(), item.strip())
