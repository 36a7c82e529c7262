"""CV-Bench (``nyu-visionx/CV-Bench``): one embedded image per question, 2D and 3D tasks.

Files: ``test_2d.parquet`` and ``test_3d.parquet`` (``idx``, ``type``, ``task``, ``image`` as embedded
bytes, ``question``, ``choices``, ``answer`` like ``"(C)"``, ``prompt``, ``source``). ``doc_id`` is
``<type>-<idx>`` so it stays unique whether or not ``idx`` restarts in the 3D file.

Scoring: Cambrian's ``extract_mcq_answer`` (2D: ``coco_test.py``, 3D: ``omni_test.py``), bucketed by
``source``; overall = the dataset card's ((ADE20K + COCO) / 2 + Omni3D) / 2, not the sample mean.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import ScoringInputError, field, mean, str_field

FILES: tuple[str, ...] = ("test_2d.parquet", "test_3d.parquet")
COLUMNS: tuple[str, ...] = ("idx", "type", "task", "image", "question", "choices", "answer", "prompt", "source")
SOURCES: tuple[str, ...] = ("ADE20K", "COCO", "Omni3D")
DIMENSIONS: tuple[str, ...] = ("2D", "3D")
TASKS: tuple[str, ...] = ("Count", "Relation", "Depth", "Distance")

_GT_RE = re.compile(r"^\([A-Za-z]\)$")
_KEYWORDS = ("answer is", "answer is:", "answer:")
_SL_LETTER_RE = re.compile(r"^[\(\[\{]?[A-D][\)\]\}]?\.?$", re.IGNORECASE)


class _Target(NamedTuple):
    letter: str  # lower-case ground-truth letter
    dimension: str
    choices: Sequence[Any]
    answer: str


def _extract(text: str, dimension: str) -> str:
    """Cambrian ``extract_mcq_answer``. The keywords are applied one after the other, each keeping
    the text after its last occurrence (so "answer is: (c)" ends as ": (c)" and scores wrong - kept).
    2D (coco_test.py) drops trailing '.', 3D (omni_test.py) trailing '.', ':' and ','."""
    text = text.lower().strip()
    for keyword in _KEYWORDS:
        if keyword in text:
            text = text.split(keyword)[-1]
    text = text.strip().rstrip(".:," if dimension == "3D" else ".").lstrip("(").rstrip(")")
    if len(text) > 1:
        text = text[0]
    return text


def _sl_letter(text: str) -> str:
    """The release's cvbench fuzzy_matching: first space piece like ``C``, ``(c)``, ``[C].`` (any
    case) -> the letter, otherwise the whole stripped reply."""
    piece = text.split(" ")[0].strip()
    if _SL_LETTER_RE.search(piece):
        return re.sub(r"[^A-D]", "", piece.upper())
    return text.strip()


class CVBench(base.Benchmark):
    NAME = "CV-Bench"
    FOLDER_NAMES = ("CV-Bench",)
    ALIASES = ("cv",)
    QUESTION_TYPES = TASKS
    REQUIRED_FIELDS = ("answer", "source", "type", "task", "choices")
    TYPE_FIELD = "source"
    TYPE_VALUES = SOURCES
    OTHER_TYPES = DIMENSIONS
    RECORD_DROP = ("image",)

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        root = base.find_benchmark_dir(
            data_root, self.FOLDER_NAMES, lambda d: any((d / f).is_file() for f in FILES), self.NAME
        )
        files = [root / f for f in FILES if (root / f).is_file()]
        missing = [f for f in FILES if not (root / f).is_file()]
        if missing:
            raise base.BenchmarkDataError(f"{self.NAME}: {root} lacks {missing} (both test_2d and test_3d are scored)")
        for f in files:
            base.require_columns(base.parquet_columns([f]), COLUMNS, self.NAME, f.name)
        docs = base.read_parquet_rows(files)
        for doc in docs:
            if doc["type"] not in DIMENSIONS or doc["source"] not in SOURCES:
                raise base.BenchmarkDataError(
                    f"{self.NAME} row idx={doc['idx']}: unexpected type/source {doc['type']!r}/{doc['source']!r}"
                )
            doc["benchmark"] = self.NAME
            doc["_media"] = [base.MediaItem("image", data=base.image_bytes_of(doc["image"]))]
        base.assign_doc_ids(docs, [f"{d['type']}-{d['idx']}" for d in docs])
        return base.seeded_subset(docs, limit, seed)

    @staticmethod
    def lettered_choices(doc: Mapping[str, Any]) -> list[str]:
        return [f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(doc["choices"])]

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        base.check_prompt_kind(prompt_kind)
        if prompt_kind == "official":
            return str(doc["prompt"])  # the dataset's own prompt: question plus "(A) ..." choices
        return base.shared_prompt(doc["question"], self.lettered_choices(doc), prompt_kind, answer_format="mcq")

    def target(self, record: Mapping[str, Any]) -> _Target:
        self.question_type(record)  # source
        dimension = str_field(record, "type")
        if dimension not in DIMENSIONS:
            raise ScoringInputError("type", f"unknown type {dimension!r}; expected one of {list(DIMENSIONS)}")
        task = str_field(record, "task")
        if task not in TASKS:
            raise ScoringInputError("task", f"unknown task {task!r} for {self.NAME}; expected one of {list(TASKS)}")
        answer = str_field(record, "answer")
        if not _GT_RE.match(answer):
            raise ScoringInputError("answer", f"expected a parenthesised letter like '(C)', got {answer!r}")
        letter = answer.lower()[1]  # official: gt_answer.lower()[1]
        choices = field(record, "choices")
        if isinstance(choices, str) or not isinstance(choices, Sequence):
            raise ScoringInputError("choices", f"expected a list, got {type(choices).__name__}")
        if dimension == "3D" and not 0 <= ord(letter) - ord("a") < len(choices):
            raise ScoringInputError("choices", f"answer {answer!r} has no option among {len(choices)} choices")
        return _Target(letter, dimension, choices, answer)

    def score_official(self, text: str, target: _Target) -> float:
        extracted = _extract(text, target.dimension)
        if extracted == target.letter:
            return 1.0
        # omni_test.py (3D) also accepts `answer == options[gt_pos]`. The extraction has already cut
        # the reply to ONE character, so only a one-character option text can ever match this way; we
        # keep that exactly (a reply "sink" for option "sink" is wrong, as in the official code).
        if target.dimension == "3D" and extracted == target.choices[ord(target.letter) - ord("a")]:
            return 1.0
        return 0.0

    def score_spatialladder(self, text: str, target: _Target) -> float:
        return 1.0 if _sl_letter(text) == _sl_letter(target.answer) else 0.0

    def summarize(
        self, buckets: Mapping[str, Sequence[float]], scorer: str
    ) -> tuple[dict[str, float], dict[str, float], float]:
        means = self.type_means(buckets)
        groups: dict[str, float] = {}
        two_d = [means[s] for s in ("ADE20K", "COCO") if s in means]
        if two_d:
            groups["2D"] = mean(two_d)
        if "Omni3D" in means:
            groups["3D"] = means["Omni3D"]
        return means, groups, mean(list(groups.values()))
