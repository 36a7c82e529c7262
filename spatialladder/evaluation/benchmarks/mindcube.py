"""MindCube-Tiny (Yin, Wang et al., arXiv 2506.21458): spatial mental modelling from a few views.

Files: ``MLL-Lab/MindCube`` ``data.zip`` unpacked under the benchmark folder, which keeps its ``data/``:
``data/raw/MindCube_tinybench.jsonl`` (``id``, ``category``, ``type``, ``meta_info``, ``question`` with
the options inline as ``… A. Left B. Right``, ``images``: paths relative to ``data/``, ``gt_answer``:
a letter) and the images under ``data/other_all_image/...``, sent in list order before the text.

Scoring, as the authors' code does it (docs/benchmarks.md gives the files and lines): the stored reply
is cleaned (stripped, every whitespace run one space), their ``extract_answer`` cascade reads an
upper-case A-E, correct when it equals ``gt_answer`` exactly. The bucket is the *setting* read from
the ``id`` (the first of around / rotation / translation / among it contains, else other), so
``TYPE_FIELD`` is ``id`` and :meth:`MindCubeTiny.canonical_type` maps an id to its setting. Accuracy
per setting; overall = correct / total over every setting except translation.

``--scorer spatialladder``: the release's answer-tag policy (the first complete ``<answer>``), then
the authors' rule above. The SpatialLadder release never evaluated MindCube, so there is no release
rule to reproduce; refusing instead would fail every ``--benchmarks all --scorer spatialladder`` run
(the paper-comparison setting) after its generation, and a report re-scored with ``spatialladder``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import ScoringInputError, mean, str_field

FILE = "data/raw/MindCube_tinybench.jsonl"
MEDIA_ROOT = "data"  # image paths are relative to it (run_inference.py --image-root ./data/)
COLUMNS: tuple[str, ...] = ("id", "question", "images", "gt_answer")
# get_setting_from_id tests these substrings in this order; anything else is "other".
SETTINGS: tuple[str, ...] = ("around", "rotation", "translation", "among", "other")
TINY_SETTINGS: tuple[str, ...] = ("around", "rotation", "among")  # the tiny set's three
# base_metrics: translation is tracked but left out of the overall accuracy.
OVERALL_SETTINGS: frozenset[str] = frozenset(s for s in SETTINGS if s != "translation")
# src/prompt_generation/templates.py RAW_QA_BACKGROUND_INSTRUCTION (raw_qa task), verbatim.
RAW_QA_INSTRUCTION = (
    "[Task]\n"
    "Your task is to analyze the spatial arrangement of objects in the scene by examining the provided images, "
    "which show the scene from different viewpoints.\n"
    "[Answer Instruction]\n"
    "You only need to provide *ONE* correct answer selecting from the options listed below. For example, if you "
    "think the correct answer is 'A. Above' from 'A. Above B. Under C. Front D. Behind', your response should "
    "**only** be '<answer>A. Above</answer>'.\n"
)

_PERIOD = re.compile(r"([A-E])\.")
_ANSWER_SECTION = re.compile(r"<Answer>(.*?)(?:<|$)", re.DOTALL)
_SECTION_PATTERNS = tuple(
    re.compile(p) for p in (r"[Mm]y answer is ([A-E])", r"[Tt]he answer is ([A-E])", r"\b([A-E])\b")
)
_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"(?:^|\n)(?:Answer: )?([A-E])(?:$|\s)",  # a letter starting the reply or a line
        r"[\*\"]([A-E])[\*\"]",  # *C* or "C"
        r"\bAnswer:?\s*([A-E])\b",
        r"[Mm]y answer is ([A-E])",
        r"answer is ([A-E])",
    )
)
_WORD_LETTER = re.compile(r"\b([A-E])\b")
_WHITESPACE = re.compile(r"\s+")
_GT = re.compile(r"[A-E]")
# Inline options "… A. Left B. Right": a letter + ". " at the start or after whitespace.
_INLINE_OPTION = re.compile(r"(?:^|(?<=\s))([A-E])\.\s+")


def setting(item_id: str) -> str:
    """``get_setting_from_id``: the first of around / rotation / translation / among contained in the
    lower-cased id (so ``aroundnew_…`` is around), else ``other``."""
    lowered = item_id.lower()
    return next((s for s in SETTINGS[:-1] if s in lowered), "other")


def clean(reply: str) -> str:
    """The authors' inference stores ``ResponseProcessor.clean_response(reply)``: stripped, every
    whitespace run (newlines included) collapsed to one space. Their scores are computed on that."""
    return _WHITESPACE.sub(" ", reply.strip())


def extract(text: str) -> str | None:
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
    found = _PERIOD.findall(text)
    if found:
        return found[-1]
    section = _ANSWER_SECTION.search(text)
    if section:
        for pattern in _SECTION_PATTERNS:
            found = pattern.findall(section.group(1))
            if found:
                return found[-1]
    for pattern in _PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1]
    for line in reversed(text.split("\n")):
        match = _WORD_LETTER.search(line)
        if match:
            return match.group(1)
    return None


def official_prompt(question: str) -> str:
    """The authors' raw-QA prompt (``RawQATemplate.generate_prompt``); the images go before it."""
    return "\n".join([RAW_QA_INSTRUCTION, "[Question]\n" + question])


def split_inline_options(question: str) -> tuple[str, list[str]] | None:
    """(stem, ``["A. Left", ...]``) from ``<stem> A. Left B. Right ...``: the last run of options
    lettered A, B, ... in order; None when there are fewer than two. For thinking / direct only."""
    starts = list(_INLINE_OPTION.finditer(question))
    first = max((i for i, m in enumerate(starts) if m.group(1) == "A"), default=None)
    if first is None:
        return None
    run = [starts[first]]
    for m in starts[first + 1 :]:
        if ord(m.group(1)) - ord("A") == len(run):
            run.append(m)
    if len(run) < 2:
        return None
    ends = [m.start() for m in run[1:]] + [len(question)]
    options = [f"{m.group(1)}. {question[m.end():end].strip()}" for m, end in zip(run, ends, strict=True)]
    return question[: run[0].start()].strip(), options


class MindCubeTiny(base.Benchmark):
    NAME = "MindCube-Tiny"
    FOLDER_NAMES = ("MindCube",)
    ALIASES = ("mindcube",)
    QUESTION_TYPES = TINY_SETTINGS
    TYPE_FIELD = "id"  # the setting is read from the id (canonical_type)
    TYPE_VALUES = SETTINGS
    REQUIRED_FIELDS = ("id", "gt_answer")
    REFERENCE_SCORES = (
        base.ReferenceScore("Qwen2.5-VL-3B-Instruct", 37.81,
                            "Yin et al., arXiv 2506.21458, raw QA on the tiny set, as listed in "
                            "EvolvingLMMs-Lab/EASI docs/Benchmark_Verification.md §1"),
    )  # fmt: skip

    def canonical_type(self, value: str) -> str:
        return setting(value)

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Every question of the tiny set (or a seeded ``limit`` subset), its images as the doc's media."""
        root = base.find_benchmark_dir(data_root, self.FOLDER_NAMES, lambda d: (d / FILE).is_file(), self.NAME)
        path = root / FILE
        docs: list[dict[str, Any]] = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as err:
                raise base.BenchmarkDataError(f"{self.NAME} {where}: not JSON ({err.msg})") from None
            if not isinstance(doc, dict):
                raise base.BenchmarkDataError(f"{self.NAME} {where}: expected a JSON object")
            base.require_columns(doc.keys(), COLUMNS, self.NAME, where)
            try:
                self.target(doc)  # id and gt_answer, before any generation
            except ScoringInputError as err:
                raise base.BenchmarkDataError(f"{self.NAME} {where}: {err}") from None
            images = doc["images"]
            if not isinstance(images, list) or not images:
                raise base.BenchmarkDataError(f"{self.NAME} {where}: images: expected a non-empty list")
            doc["benchmark"] = self.NAME
            doc["_media"] = [base.MediaItem("image", root / MEDIA_ROOT / str(rel)) for rel in images]
            docs.append(doc)
        base.assign_doc_ids(docs, [d["id"] for d in docs])
        return base.seeded_subset(docs, limit, seed)

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        base.check_prompt_kind(prompt_kind)
        question = str(doc["question"])
        if prompt_kind == "official":
            return official_prompt(question)
        split = split_inline_options(question)
        if split is None:  # options we cannot split stay in the question; the MCQ instruction follows
            return base.shared_prompt(question, None, prompt_kind, answer_format="mcq")
        return base.shared_prompt(split[0], split[1], prompt_kind, answer_format="mcq")

    def target(self, record: Mapping[str, Any]) -> str:
        self.question_type(record)  # a string id
        gt = str_field(record, "gt_answer")
        # The authors skip rows with an empty gt_answer; real rows always have a letter, so anything
        # else is bad input here (it could never equal an extracted letter).
        if not _GT.fullmatch(gt):
            raise ScoringInputError("gt_answer", f"expected one option letter A-E, got {gt!r}")
        return gt

    def score_official(self, text: str, target: str) -> float:
        return 1.0 if extract(clean(text)) == target else 0.0

    def summarize(
        self, buckets: Mapping[str, Sequence[float]], scorer: str
    ) -> tuple[dict[str, float], dict[str, float], float | None]:
        counted = [s for name, scores in buckets.items() if name in OVERALL_SETTINGS for s in scores]
        # None, not the authors' printed 0, when only translation rows are present: no overall exists.
        return self.type_means(buckets), {}, mean(counted) if counted else None
