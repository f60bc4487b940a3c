"""Generation tasks: built-in prompt templates, which docs seed a task, and the requests a seed doc makes.

A request is a plain dict (cheap to pickle and shuffle): the chat messages, the sampling parameters and the
sample's own seed, derived from (seed doc id, task, sample index, recipe seed, task seed) so that the same sample
is asked for with the same seed on every runner, whatever the batch it lands in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qurate.doc import Doc
from qurate.hashing import stable_hash, stable_unit

if TYPE_CHECKING:
    from qurate.synth.config import TaskConfig

Request = dict[str, Any]

SYSTEM = "You are a knowledgeable, careful writer of educational material."


@dataclass(frozen=True)
class Template:
    prompt: str
    system: str = SYSTEM
    doc_format: str = "{completion}"


# After Nemotron-CC's rephrasing / diverse-QA prompts, Cosmopedia's textbook prompts and OpenMathInstruct-2's
# solution prompts, shortened for small models.
TEMPLATES: dict[str, Template] = {
    "rephrase_wiki": Template(
        "Rewrite the following text in the style of a Wikipedia article: neutral, factual, clear and well "
        "organized. Keep every fact and add none. Write only the article.\n\nText:\n{text}"),
    "qa_pairs": Template(
        "Read the text below, then write several question-and-answer pairs that test understanding of it. "
        "Use the form\nQuestion: ...\nAnswer: ...\nAnswers must follow from the text.\n\nText:\n{text}"),
    "textbook": Template(
        "Write a section of a textbook for college students about: {topic}\nExplain the ideas step by step, "
        "with a worked example. Use the following extract only as inspiration:\n{text}"),
    "math": Template(
        "Solve the following problem. Reason step by step, then give the final answer as \\boxed{{answer}}."
        "\n\nProblem: {text}",
        system="You are a careful mathematician.",
        doc_format="Problem: {text}\n\nSolution: {completion}"),
    "math_problem": Template(
        "Here is a math problem:\n{text}\n\nWrite one new problem of the same kind with different numbers, "
        "then solve it step by step and give the final answer as \\boxed{{answer}}. Start with 'Problem:'.",
        system="You are a careful mathematician."),
    "code": Template(
        "Using the text below as inspiration, write a self-contained Python programming exercise, a solution, "
        "and pytest unit tests for it. Use the headings Exercise, Solution and Tests.\n\nText:\n{text}",
        system="You are an expert Python programmer and teacher."),
    "custom": Template("{text}"),
}

_GSM8K_ANSWER = re.compile(r"^####\s*(.+?)\s*$", re.MULTILINE)


def topic_of(doc: Doc) -> str:
    meta = doc.get("meta") or {}
    topic = meta.get("topic") if isinstance(meta, dict) else None
    if isinstance(topic, str) and topic.strip():
        return topic.strip()
    first = (doc.get("text") or "").strip().split("\n", 1)[0]
    return first[:200]


def reference_answer(task: TaskConfig, doc: Doc) -> str | None:
    """The seed's reference answer: ``meta[answer_field]``, else a GSM8K-style ``#### N`` line in the text."""
    meta = doc.get("meta") or {}
    value = meta.get(task.answer_field) if isinstance(meta, dict) else None
    if value is not None and str(value).strip():
        return str(value).strip()
    found = _GSM8K_ANSWER.findall(doc.get("text") or "")
    return found[-1] if found else None


def seed_text(task: TaskConfig, doc: Doc) -> str:
    """The seed text the prompt shows: cut to ``max_seed_chars``; for math, without its '#### N' answer line."""
    text = doc.get("text") or ""
    if task.uses_math():
        text = _GSM8K_ANSWER.sub("", text).strip()
    return text[: task.max_seed_chars]


def eligible(task: TaskConfig, doc: Doc, seed: int) -> bool:
    """Whether a stream doc seeds ``task`` (quality, domain, source, language, length, then the sampling rate)."""
    if task.min_quality is not None:
        score = doc.get("quality_score")
        if score is None or score < task.min_quality:
            return False
    if task.domains and doc.get("domain") not in task.domains:
        return False
    if task.sources and doc.get("source") not in task.sources:
        return False
    if task.langs and doc.get("lang") not in task.langs:
        return False
    if len(doc.get("text") or "") < task.min_chars:
        return False
    return task.rate >= 1 or stable_unit(doc.get("id"), task.name, seed, "rate") < task.rate


def seed_rank(task: TaskConfig, doc_id: str, seed: int) -> int:
    """The seed's rank for ``max_seeds`` (smallest first): a keyed hash, never arrival order."""
    return stable_hash(doc_id, task.name, task.seed, seed, "seed_rank")


def sample_seed(doc_id: str, task: TaskConfig, sample: int, seed: int) -> int:
    """The sampling seed of one sample (fits every engine's seed type)."""
    return stable_hash(doc_id, task.name, sample, seed, task.seed) % 2**31


def synthetic_id(doc_id: str, task: str, sample: int, seed: int) -> str:
    """The synthetic doc's id: deterministic in (seed doc id, task, sample index, recipe seed)."""
    return f"synth-{task}-{stable_hash(doc_id, task, sample, seed):016x}"


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with ``{name}`` replaced by ``values[name]`` and ``{{``/``}}`` by one brace, in one pass
    (``str.format`` would choke on braces in the seed text, and a seed holding ``{text}`` stays as it is)."""
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values.get(match.group(1), token)

    return _PLACEHOLDER.sub(one, template)


def requests_for(task: TaskConfig, doc: Doc, seed: int) -> list[Request]:
    """The ``task.n`` generation requests one seed doc makes."""
    doc_id = str(doc.get("id"))
    text = seed_text(task, doc)
    answer = reference_answer(task, doc)
    topic = topic_of(doc)
    user = _fill(task.user_prompt(), {"text": text, "topic": topic, "answer": answer or ""})
    out = []
    for sample in range(task.n):
        out.append({
            "id": synthetic_id(doc_id, task.name, sample, seed), "task": task.name, "seed_id": doc_id,
            "sample": sample, "seed": sample_seed(doc_id, task, sample, seed),
            "system": task.system_prompt(), "user": user, "max_tokens": task.max_tokens,
            "temperature": task.temperature, "top_p": task.top_p,
            "seed_text": text, "topic": topic, "answer": answer,
            "seed_source": doc.get("source"), "seed_lang": doc.get("lang"), "seed_domain": doc.get("domain"),
        })
    return out


def messages(request: Request) -> list[dict[str, str]]:
    out = [{"role": "system", "content": request["system"]}] if request.get("system") else []
    return out + [{"role": "user", "content": request["user"]}]


def render_doc(task: TaskConfig, request: Request, completion: str) -> str:
    """The synthetic doc's text from its completion (``doc_format``)."""
    return _fill(task.doc_template(), {"completion": completion.strip(), "text": request.get("seed_text") or "",
                                       "topic": request.get("topic") or ""}).strip()


def seed_file_doc(record: dict[str, Any], position: int, path: str) -> Doc:
    """A seed-file record as a doc (it seeds tasks but never enters the mixture)."""
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise ValueError("a seed record needs a string 'text'")
    meta = dict(record.get("meta") or {})
    for field in ("topic", "answer"):
        if field in record and field not in meta:
            meta[field] = record[field]
    doc_id = record.get("id")
    return {"id": str(doc_id) if doc_id is not None else f"{path}:{position}", "text": record["text"],
            "source": record.get("source") or "seed_file", "meta": meta}
