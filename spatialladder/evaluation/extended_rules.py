"""Scoring rules of the extended benchmarks: VSI-Bench-Debiased, MMSI-Bench, MindCube-Tiny.

Each benchmark's answer extraction, metric and per-category aggregation exactly as its authors do
(docs/benchmarks.md gives the source of every rule), after the project's policy 1: a reply with
``<answer>`` is scored on the stripped content of its last complete ``<answer>…</answer>`` and is
unparsable (0) without one; any other reply goes to the authors' extraction as written.

* VSI-Bench-Debiased is VSI-Bench's ``debiased`` configuration with the same columns (plus a
  ``pruned`` flag) and the same lmms-eval ``vsibench`` utils, so it reuses the VSI-Bench scorer.
* MMSI-Bench: the authors' ``extract_single_choice_with_word_boundary`` (README "Answer
  Extraction" and their lmms-eval task), accuracy per ``question_type``, overall = correct / total.
* MindCube-Tiny: the authors' inference cleaning (whitespace collapsed), their ``extract_answer``
  cascade, accuracy per setting (read from the ``id``), overall = correct / total over every setting
  except ``translation``.

Per-sample scores are in [0, 1]; the aggregates report percent (0-100) in the same dict layout as
:func:`spatialladder.evaluation.scoring.aggregate`. Pure Python, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

# The six benchmarks' scorer owns policy 1 (answer tag first), the mean and the per-record score check;
# the extended rules share them rather than restating them (issue 10 moves them to a public home).
from spatialladder.evaluation.scoring import (
    ScoringInputError,
    _mean,
    _official_answer_text,
    _record_score,
    aggregate,
    score_sample,
)

__all__ = [
    "EXTENDED_BENCHMARKS",
    "REFERENCE_SCORES",
    "ReferenceScore",
    "VSI_DEBIASED",
    "VSI_DEBIASED_REQUIRED_FIELDS",
    "vsi_debiased_score",
    "vsi_debiased_aggregate",
    "MMSI",
    "MMSI_QUESTION_TYPES",
    "MMSI_REQUIRED_FIELDS",
    "MMSI_POST_PROMPT",
    "mmsi_official_prompt",
    "mmsi_question_type",
    "mmsi_extract",
    "mmsi_score",
    "mmsi_aggregate",
    "MINDCUBE",
    "MINDCUBE_SETTINGS",
    "MINDCUBE_OVERALL_SETTINGS",
    "MINDCUBE_REQUIRED_FIELDS",
    "MINDCUBE_RAW_QA_INSTRUCTION",
    "mindcube_official_prompt",
    "mindcube_setting",
    "mindcube_clean",
    "mindcube_extract",
    "mindcube_score",
    "mindcube_aggregate",
]

VSI_DEBIASED = "VSI-Bench-Debiased"
MMSI = "MMSI-Bench"
MINDCUBE = "MindCube-Tiny"
EXTENDED_BENCHMARKS: tuple[str, ...] = (VSI_DEBIASED, MMSI, MINDCUBE)


class ReferenceScore(NamedTuple):
    """A published overall score (percent) and where it was read."""

    benchmark: str
    model: str
    overall: float
    source: str


REFERENCE_SCORES: tuple[ReferenceScore, ...] = (
    ReferenceScore(VSI_DEBIASED, "Qwen2.5-VL-3B-Instruct", 22.7,
                   "Brown et al., arXiv 2511.04655 (as listed in EvolvingLMMs-Lab/EASI "
                   "docs/Benchmark_Verification.md §6)"),
    ReferenceScore(VSI_DEBIASED, "Qwen2.5-VL-7B-Instruct", 29.6,
                   "Brown et al., arXiv 2511.04655 (as listed in EvolvingLMMs-Lab/EASI "
                   "docs/Benchmark_Verification.md §6)"),
    ReferenceScore(MMSI, "Qwen2.5-VL-3B-Instruct", 26.5, "InternRobotics/MMSI-Bench README leaderboard"),
    ReferenceScore(MMSI, "Qwen2.5-VL-7B-Instruct", 25.9, "InternRobotics/MMSI-Bench README leaderboard"),
    ReferenceScore(MMSI, "Random guessing", 25.0, "InternRobotics/MMSI-Bench README leaderboard"),
    ReferenceScore(MINDCUBE, "Qwen2.5-VL-3B-Instruct", 37.81,
                   "Yin et al., arXiv 2506.21458, raw QA on the tiny set (as listed in "
                   "EvolvingLMMs-Lab/EASI docs/Benchmark_Verification.md §1)"),
)  # fmt: skip


def _str_field(record: Mapping[str, Any], name: str) -> str:
    if not isinstance(record, Mapping):
        raise ScoringInputError("record", f"expected a mapping, got {type(record).__name__}")
    if name not in record:
        raise ScoringInputError(name, "missing field")
    value = record[name]
    if not isinstance(value, str):
        raise ScoringInputError(name, f"expected a string, got {type(value).__name__}")
    return value


def _check_prediction(prediction: Any) -> str:
    if not isinstance(prediction, str):
        raise ScoringInputError("prediction", f"expected a string, got {type(prediction).__name__}")
    return prediction


def _summary(benchmark: str, n: int, overall: float | None, per_type: Mapping[str, float]) -> dict[str, Any]:
    """The layout of scoring.aggregate, in percent; ``groups`` stays empty (no grouped columns)."""
    return {
        "benchmark": benchmark,
        "scorer": "official",
        "n": n,
        "overall": None if overall is None else overall * 100.0,
        "per_type": {t: v * 100.0 for t, v in per_type.items()},
        "groups": {},
    }


# --------------------------------------------------------------------------------------------------
# VSI-Bench-Debiased (nyu-visionx/VSI-Bench, config `debiased`)
# --------------------------------------------------------------------------------------------------
VSI_DEBIASED_REQUIRED_FIELDS: tuple[str, ...] = ("question_type", "ground_truth")


def _check_not_pruned(record: Mapping[str, Any]) -> None:
    # create_pq.py writes the rows with pruned == False to test_debiased.parquet; a pruned row is not
    # part of this benchmark, whatever its reply.
    if isinstance(record, Mapping) and record.get("pruned") not in (None, False):
        raise ScoringInputError(
            "pruned", f"row is pruned ({record.get('pruned')!r}); not part of {VSI_DEBIASED}"
        )


def vsi_debiased_score(record: Mapping[str, Any], prediction: str) -> float:
    """VSI-Bench's official per-sample score (lmms-eval ``vsibench`` utils, used unchanged by the
    ``vsibench_debiased`` task): first space piece, case-insensitive letter match, ``float()`` + MRA."""
    _check_not_pruned(record)
    return score_sample("VSI-Bench", record, prediction, "official")


def vsi_debiased_aggregate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """VSI-Bench's aggregation: mean per question type, ``object_rel_direction`` = mean of the
    difficulty means present, overall = unweighted mean of the tasks present (NQ / MCQ groups too)."""
    for record in records:
        _check_not_pruned(record)
    result = aggregate("VSI-Bench", records, "official")
    result["benchmark"] = VSI_DEBIASED
    return result


# --------------------------------------------------------------------------------------------------
# MMSI-Bench (RunsenXu/MMSI-Bench, MMSI_Bench.parquet)
# --------------------------------------------------------------------------------------------------
MMSI_QUESTION_TYPES: tuple[str, ...] = (
    "Positional Relationship (Cam.\u2013Cam.)",
    "Positional Relationship (Obj.\u2013Obj.)",
    "Positional Relationship (Reg.\u2013Reg.)",
    "Positional Relationship (Cam.\u2013Obj.)",
    "Positional Relationship (Obj.\u2013Reg.)",
    "Positional Relationship (Cam.\u2013Reg.)",
    "Attribute (Meas.)",
    "Attribute (Appr.)",
    "Motion (Cam.)",
    "Motion (Obj.)",
    "MSR",
)
MMSI_REQUIRED_FIELDS: tuple[str, ...] = ("question_type", "answer")
MMSI_POST_PROMPT = (
    "Answer with the option's letter from the given choices directly. Enclose the option's letter within ``."
)

# README "Answer Extraction" / the authors' lmms-eval task: each wrapper found replaces the text by its
# FIRST content, in this order; the repo's VLMEvalKit copy lacks the braces step (docs/benchmarks.md).
_MMSI_WRAPPERS = (re.compile(r"``([^`]*)``"), re.compile(r"`([^`]*)`"), re.compile(r"\{([^}]*)\}"))
# Upper-case A-D as a word, not followed by whitespace + a letter ("A chair", "B is" are skipped).
_MMSI_LETTER = re.compile(r"\b[A-D]\b(?!\s[a-zA-Z])")


def mmsi_official_prompt(question: str) -> str:
    """The authors' prompt: the question (options inside it) then the post-prompt on a new line."""
    return f"{question.strip()}\n{MMSI_POST_PROMPT}"


def mmsi_question_type(record: Mapping[str, Any]) -> str:
    """The record's ``question_type`` with the positional types' hyphen read as the en dash the
    authors' metric names use (their lmms-eval task maps "Cam.-Obj." to "Cam.–Obj." the same way)."""
    value = _str_field(record, "question_type").replace(".-", ".\u2013")
    if value not in MMSI_QUESTION_TYPES:
        raise ScoringInputError(
            "question_type",
            f"unknown question_type {value!r} for {MMSI}; expected one of {list(MMSI_QUESTION_TYPES)}",
        )
    return value


def mmsi_extract(reply: str) -> str | None:
    """``extract_single_choice_with_word_boundary``: the letter A-D, or None (scored 0).

    ``"``C``"`` -> C, ``"\\boxed{C}"`` -> C, ``"The answer is (B)."`` -> B, ``"b"`` -> None,
    ``"A chair"`` -> None, ``"`code` then C"`` -> None (the backtick content replaces the reply).
    """
    text = reply
    for wrapper in _MMSI_WRAPPERS:
        match = wrapper.search(text)
        if match:
            text = match.group(1)
    match = _MMSI_LETTER.search(text)
    return match.group() if match else None


def _mmsi_answer(record: Mapping[str, Any]) -> str:
    answer = _str_field(record, "answer")
    gt = answer.lower().replace("\n", " ").strip()  # the authors' normalisation of the ground truth
    if gt not in ("a", "b", "c", "d"):
        raise ScoringInputError("answer", f"expected an option letter A-D, got {answer!r}")
    return gt


def mmsi_score(record: Mapping[str, Any], prediction: str) -> float:
    """1.0 when the extracted letter (lower-cased) equals the lower-cased ``answer``, else 0.0."""
    mmsi_question_type(record)
    gt = _mmsi_answer(record)
    text = _official_answer_text(_check_prediction(prediction))
    if text is None:
        return 0.0
    letter = mmsi_extract(text)
    return 1.0 if letter is not None and letter.lower() == gt else 0.0


def mmsi_aggregate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy per ``question_type`` and overall = correct / total over all records (micro, not the
    mean of the type accuracies). Types absent from ``records`` are left out."""
    buckets: dict[str, list[float]] = {}
    for record in records:
        buckets.setdefault(mmsi_question_type(record), []).append(_record_score(record))
    scores = [s for bucket in buckets.values() for s in bucket]
    per_type = {t: _mean(buckets[t]) for t in MMSI_QUESTION_TYPES if t in buckets}
    return _summary(MMSI, len(scores), _mean(scores) if scores else None, per_type)


# --------------------------------------------------------------------------------------------------
# MindCube-Tiny (MLL-Lab/MindCube data.zip: data/raw/MindCube_tinybench.jsonl)
# --------------------------------------------------------------------------------------------------
# get_setting_from_id tests these substrings in this order; anything else is "other".
MINDCUBE_SETTINGS: tuple[str, ...] = ("around", "rotation", "translation", "among", "other")
# base_metrics: translation is tracked but left out of the overall accuracy.
MINDCUBE_OVERALL_SETTINGS: frozenset[str] = frozenset(s for s in MINDCUBE_SETTINGS if s != "translation")
MINDCUBE_REQUIRED_FIELDS: tuple[str, ...] = ("id", "gt_answer")
# src/prompt_generation/templates.py RAW_QA_BACKGROUND_INSTRUCTION (raw_qa task), verbatim.
MINDCUBE_RAW_QA_INSTRUCTION = (
    "[Task]\n"
    "Your task is to analyze the spatial arrangement of objects in the scene by examining the provided images, "
    "which show the scene from different viewpoints.\n"
    "[Answer Instruction]\n"
    "You only need to provide *ONE* correct answer selecting from the options listed below. For example, if you "
    "think the correct answer is 'A. Above' from 'A. Above B. Under C. Front D. Behind', your response should "
    "**only** be '<answer>A. Above</answer>'.\n"
)

_MC_PERIOD = re.compile(r"([A-E])\.")
_MC_ANSWER_SECTION = re.compile(r"<Answer>(.*?)(?:<|$)", re.DOTALL)
_MC_SECTION_PATTERNS = tuple(
    re.compile(p) for p in (r"[Mm]y answer is ([A-E])", r"[Tt]he answer is ([A-E])", r"\b([A-E])\b")
)
_MC_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"(?:^|\n)(?:Answer: )?([A-E])(?:$|\s)",  # a letter starting the reply or a line
        r"[\*\"]([A-E])[\*\"]",  # *C* or "C"
        r"\bAnswer:?\s*([A-E])\b",
        r"[Mm]y answer is ([A-E])",
        r"answer is ([A-E])",
    )
)
_MC_WORD_LETTER = re.compile(r"\b([A-E])\b")
_WHITESPACE = re.compile(r"\s+")
_MC_GT = re.compile(r"[A-E]")


def mindcube_official_prompt(question: str) -> str:
    """The authors' raw-QA prompt (``RawQATemplate.generate_prompt``); the images go before it."""
    return "\n".join([MINDCUBE_RAW_QA_INSTRUCTION, "[Question]\n" + question])


def mindcube_setting(item_id: str) -> str:
    """``get_setting_from_id``: the first of around / rotation / translation / among contained in the
    lower-cased id (so ``aroundnew_…`` is around), else ``other``."""
    lowered = item_id.lower()
    return next((s for s in MINDCUBE_SETTINGS[:-1] if s in lowered), "other")


def mindcube_clean(reply: str) -> str:
    """The authors' inference stores ``ResponseProcessor.clean_response(reply)``: stripped, every
    whitespace run (newlines included) collapsed to one space. Their scores are computed on that."""
    return _WHITESPACE.sub(" ", reply.strip())


def mindcube_extract(text: str) -> str | None:
    """``extract_answer``: a priority cascade over upper-case A-E, each stage returning its LAST match.

    1. ``X.`` anywhere ("the TABLE. So A" -> E; "A. Left B. Right" -> B).
    2. After ``<Answer>`` (up to the next ``<``): "my answer is X", "the answer is X", a standalone X.
    3. A letter starting a line (optionally after "Answer: "), ``*X*`` / ``"X"``, "Answer: X",
       "my answer is X", "answer is X" - in that order.
    4. The first standalone X on the last line that has one ("The answer is (B)." -> B).

    The source lists more patterns; those needing ``X.`` (in stages 2-4) cannot match once stage 1
    found none, so they are left out here without changing any result.
    """
    if not text:
        return None
    found = _MC_PERIOD.findall(text)
    if found:
        return found[-1]
    section = _MC_ANSWER_SECTION.search(text)
    if section:
        for pattern in _MC_SECTION_PATTERNS:
            found = pattern.findall(section.group(1))
            if found:
                return found[-1]
    for pattern in _MC_PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1]
    for line in reversed(text.split("\n")):
        match = _MC_WORD_LETTER.search(line)
        if match:
            return match.group(1)
    return None


def _mindcube_gt(record: Mapping[str, Any]) -> str:
    gt = _str_field(record, "gt_answer")
    # The authors skip rows with an empty gt_answer; real rows always have a letter, so anything else
    # is bad input here (it could never equal an extracted letter).
    if not _MC_GT.fullmatch(gt):
        raise ScoringInputError("gt_answer", f"expected one option letter A-E, got {gt!r}")
    return gt


def mindcube_score(record: Mapping[str, Any], prediction: str) -> float:
    """1.0 when the letter extracted from the cleaned reply equals ``gt_answer`` exactly, else 0.0."""
    _str_field(record, "id")
    gt = _mindcube_gt(record)
    text = _official_answer_text(_check_prediction(prediction))
    if text is None:
        return 0.0
    return 1.0 if mindcube_extract(mindcube_clean(text)) == gt else 0.0


def mindcube_aggregate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy per setting (from ``id``) and overall = correct / total over the settings in
    :data:`MINDCUBE_OVERALL_SETTINGS` (translation excluded). ``n`` counts every record; overall is
    None when no record counts towards it."""
    buckets: dict[str, list[float]] = {}
    for record in records:
        buckets.setdefault(mindcube_setting(_str_field(record, "id")), []).append(_record_score(record))
    counted = [
        s for setting, bucket in buckets.items() if setting in MINDCUBE_OVERALL_SETTINGS for s in bucket
    ]
    per_type = {s: _mean(buckets[s]) for s in MINDCUBE_SETTINGS if s in buckets}
    n = sum(len(bucket) for bucket in buckets.values())
    return _summary(MINDCUBE, n, _mean(counted) if counted else None, per_type)
