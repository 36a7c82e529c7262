"""Pieces every benchmark's scorer uses: field checks, the two answer-text policies, the release's parsers.

Pure Python + numpy (no torch), so ``eval/score.py`` and reports import it cheaply. The shared answer
parser and MRA (:mod:`spatialladder.answers`, :mod:`spatialladder.metrics`) are the ones the training
rewards use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from spatialladder.answers import extract_answer_tag

__all__ = [
    "ScoringInputError",
    "field",
    "mean",
    "numeric_target",
    "official_answer_text",
    "sl_letter",
    "sl_number",
    "spatialladder_answer_text",
    "str_field",
    "to_float",
    "weighted_mean",
]


class ScoringInputError(ValueError):
    """Bad input to the scorer; ``field`` names the offending record field (or argument)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# --------------------------------------------------------------------------------------------------
# Record fields
# --------------------------------------------------------------------------------------------------
def field(record: Mapping[str, Any], name: str) -> Any:
    """``record[name]``; raises naming the field when it is missing or null."""
    if name not in record:
        raise ScoringInputError(name, "missing field")
    value = record[name]
    if value is None:
        raise ScoringInputError(name, "must not be null")
    return value


def str_field(record: Mapping[str, Any], name: str) -> str:
    value = field(record, name)
    if not isinstance(value, str):
        raise ScoringInputError(name, f"expected a string, got {type(value).__name__}")
    return value


def numeric_target(record: Mapping[str, Any], name: str) -> float:
    """A finite numeric ground truth (a number or a numeric string; booleans are refused)."""
    value = field(record, name)
    if isinstance(value, bool):
        raise ScoringInputError(name, f"expected a number, got {value!r}")
    try:
        target = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ScoringInputError(name, f"numeric ground truth {value!r} is not a number") from None
    if not math.isfinite(target):
        raise ScoringInputError(name, f"numeric ground truth {value!r} is not finite")
    return target


def to_float(value: Any) -> float | None:
    """Python ``float()`` or None: the official ``to_float`` (it catches everything)."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------------------------------
# Answer-text policies (picked by Benchmark.score)
# --------------------------------------------------------------------------------------------------
_ANSWER_OPEN_RE = re.compile(r"<answer>", re.IGNORECASE)
_SL_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def official_answer_text(prediction: str) -> str | None:
    """Policy 1: a reply containing ``<answer>`` is the stripped content of its last complete
    ``<answer>…</answer>`` (None = unparsable, scores 0); any other reply is passed on exactly as
    written, since that is what the official scorers receive. Tag matching is case-insensitive, like
    :func:`spatialladder.answers.extract_answer_tag`."""
    if _ANSWER_OPEN_RE.search(prediction):
        return extract_answer_tag(prediction)
    return prediction


def spatialladder_answer_text(prediction: str) -> str:
    """The release's thinking-mode extraction (``utils.extract_answer_text``): only when the reply
    contains ``<answer>`` (case-sensitive), take the FIRST complete ``<answer>…</answer>`` stripped,
    else the literal string ``"None"`` (which then simply fails to match). We apply it always: the
    paper evaluates with the thinking prompt, and a reply without ``<answer>`` is left untouched."""
    if "<answer>" in prediction:
        match = _SL_ANSWER_RE.search(prediction)
        return match.group(1).strip() if match else "None"
    return prediction


# --------------------------------------------------------------------------------------------------
# SpatialLadder-release parsers (benchmarks.md policy 5), shared by several benchmarks
# --------------------------------------------------------------------------------------------------
# vsi_utils.fuzzy_matching_num: dict order matters (first word found wins, before any digits), and
# it includes the articles "a"/"an" -> 1. Local on purpose: answers.py never reads articles as numbers.
_SL_NUMBER_WORDS: tuple[tuple[str, str], ...] = (
    ("one", "1"), ("two", "2"), ("three", "3"), ("four", "4"), ("five", "5"),
    ("six", "6"), ("seven", "7"), ("eight", "8"), ("nine", "9"), ("ten", "10"),
    ("eleven", "11"), ("twelve", "12"), ("thirteen", "13"), ("fourteen", "14"), ("fifteen", "15"),
    ("sixteen", "16"), ("seventeen", "17"), ("eighteen", "18"), ("nineteen", "19"), ("twenty", "20"),
    ("thirty", "30"), ("forty", "40"), ("fifty", "50"), ("sixty", "60"), ("seventy", "70"),
    ("eighty", "80"), ("ninety", "90"),
    ("zero", "0"), ("a", "1"), ("an", "1"),
)  # fmt: skip
_SL_WORD_RES = tuple((re.compile(rf"\b{word}\b"), digit) for word, digit in _SL_NUMBER_WORDS)
_SL_DIGITS_RE = re.compile(r"(\d+(\.\d+)?)")
_SL_LETTER_RE = re.compile(r"^[A-D]\.?$")


def sl_number(text: str) -> float | None:
    """The release's number parser: "a chair, 3 m" -> 1.0, "twenty-one" -> 1.0 (``one`` is tried
    before ``twenty``), "2.5 m" -> 2.5, nothing -> None."""
    text = text.strip().lower()
    for pattern, digit in _SL_WORD_RES:
        if pattern.search(text):
            return float(digit)
    match = _SL_DIGITS_RE.search(text)
    return to_float(match.group(1)) if match else None


def sl_letter(text: str) -> str:
    """vsi_utils / viewspatial fuzzy_matching: the first space piece if it is an upper-case A-D
    (optionally with '.'), otherwise the WHOLE stripped reply (the multiple-choice fallback)."""
    if _SL_LETTER_RE.search(text.split(" ")[0].strip()):
        return text.split(" ")[0].strip().rstrip(".").upper().strip()
    return text.strip()


# --------------------------------------------------------------------------------------------------
# Means (fractions in [0, 1])
# --------------------------------------------------------------------------------------------------
def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)  # fsum: exact, independent of record order


def weighted_mean(pairs: Sequence[tuple[float, int]]) -> float:
    """Sample-weighted mean of per-task means (the release's weighting)."""
    return math.fsum(m * n for m, n in pairs) / sum(n for _, n in pairs)
