"""Verifiable math: final-answer extraction, equivalence (sympy), majority vote over a prompt's samples.

The score of one candidate answer:

- with a reference answer (the seed's ``answer`` field or GSM8K ``#### N`` line): 1 when equivalent, else 0;
- without one: the share of the prompt's ``n`` samples whose answer is equivalent to it (majority vote as the
  ground truth, as in OpenMathInstruct-2), 0 when no answer could be extracted.

Equivalence: equal after normalization, else sympy parses both (a small LaTeX subset is rewritten first:
``\\frac``, ``\\sqrt``, ``\\cdot``, ``\\times``, ``\\pi``, ``^``) and proves ``a - b == 0``, or they agree
numerically to 1e-9 relative. Inputs are capped in length, since sympy on adversarial input can be slow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

MAX_ANSWER_CHARS = 80
_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*\$?([^\n$]+?)\$?\s*(?:\.\s|\.?$|\n)",
                        re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (nested braces balanced)."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: ``\\boxed{}``, else ``#### x``, else 'the answer is x', else the last
    number; None when there is none."""
    for found in (_boxed(text), *(_HASHES.findall(text)[-1:]), *(_ANSWER_IS.findall(text)[-1:])):
        if found and normalize_answer(found):
            return normalize_answer(found)
    numbers = _NUMBER.findall(text)
    return normalize_answer(numbers[-1]) if numbers else None


_STRIP = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\ ", "$", "\\displaystyle")


def normalize_answer(answer: str) -> str:
    s = answer.strip()
    for token in _STRIP:
        s = s.replace(token, "")
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # 1,000 -> 1000
    s = s.strip().rstrip(".").strip()
    s = re.sub(r"^(?:[a-zA-Z]\s*=\s*)", "", s)  # x = 5 -> 5
    return re.sub(r"\s+", " ", s)[:MAX_ANSWER_CHARS * 2]


def _latex_to_sympy(s: str) -> str:
    out = s
    for _ in range(4):  # nested fractions and roots, innermost first
        out = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", out)
        out = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", out)
    out = re.sub(r"\\frac(\d)(\d)", r"((\1)/(\2))", out)
    out = out.replace("\\cdot", "*").replace("\\times", "*").replace("\\pi", "pi").replace("^", "**")
    out = out.replace("{", "(").replace("}", ")").replace("%", "/100")
    return out


@lru_cache(maxsize=4096)
def _parse(answer: str) -> Any:
    if len(answer) > MAX_ANSWER_CHARS or "\\" in _latex_to_sympy(answer):
        return None
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    try:
        return parse_expr(_latex_to_sympy(answer), evaluate=True,
                          transformations=standard_transformations + (implicit_multiplication_application,
                                                                      convert_xor))
    except Exception:  # sympy raises many kinds on text that is not math
        return None


@lru_cache(maxsize=16384)
def equivalent(a: str | None, b: str | None, symbolic: bool = True) -> bool:
    """Whether two extracted answers are the same value."""
    if a is None or b is None:
        return False
    a, b = normalize_answer(a), normalize_answer(b)
    if a == b:
        return True
    if not symbolic:
        return False
    ea, eb = _parse(a), _parse(b)
    if ea is None or eb is None:
        return False
    try:
        import sympy

        diff = sympy.simplify(ea - eb)
        if diff == 0:
            return True
        va, vb = complex(sympy.N(ea)), complex(sympy.N(eb))
        return abs(va - vb) <= 1e-9 * max(1.0, abs(va), abs(vb))
    except Exception:  # symbols that do not cancel, non-numeric values
        return False


def vote(answers: Sequence[str | None], symbolic: bool = True) -> list[int]:
    """Per answer, how many of ``answers`` are equivalent to it (0 for a missing answer)."""
    return [0 if a is None else sum(1 for b in answers if equivalent(a, b, symbolic)) for a in answers]


def math_scores(answers: Sequence[str | None], reference: str | None, symbolic: bool = True) -> list[float]:
    """The verifiable-math reward of each of a prompt's samples (see the module doc)."""
    if reference is not None:
        # a reference may be a bare value or a whole worked solution
        whole = len(reference) > MAX_ANSWER_CHARS or "####" in reference or "\\boxed" in reference
        ref = extract_answer(reference) if whole else normalize_answer(reference)
        return [1.0 if equivalent(a, ref, symbolic) else 0.0 for a in answers]
    counts = vote(answers, symbolic)
    return [c / len(answers) for c in counts]
