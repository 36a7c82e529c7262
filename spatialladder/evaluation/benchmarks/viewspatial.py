"""ViewSpatial-Bench (``lidingm/ViewSpatial-Bench``): one or more images per question.

File: ``ViewSpatial-Bench.json``, a list of ``{question_type, image_path, question, answer, choices}``.
``image_path`` entries begin with ``ViewSpatial-Bench/`` (``scannetv2_val/...`` and COCO ``val2017/...``
once the dataset's zips are extracted next to the json). They are resolved against the benchmark
folder with that prefix removed, then against the folder's parent with the prefix kept. ``doc_id`` is
the item's position in the json list.

Official prompt: the authors' ``evaluate.py`` appends "\\nReply only to the corresponding option.\\nAnswer:"
to the question. It sends no options, which leaves the letters of ``answer`` undefined for the model,
so we insert the item's ``choices`` between question and suffix (the only change).

Scoring: the authors' ``evaluate.py`` (last line, first standalone A-D, case-insensitive); overall =
correct / total, and the same within each perspective (camera / person).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import ScoringInputError, mean, sl_letter, str_field

FILE = "ViewSpatial-Bench.json"
COLUMNS: tuple[str, ...] = ("question_type", "image_path", "question", "answer", "choices")
PATH_PREFIX = "ViewSpatial-Bench/"
OFFICIAL_SUFFIX = "\nReply only to the corresponding option.\nAnswer:"
PERSPECTIVES: dict[str, tuple[str, ...]] = {
    "camera": (
        "Camera perspective - Relative Direction",
        "Camera perspective - Object View Orientation",
    ),
    "person": (
        "Person perspective - Object View Orientation",
        "Person perspective - Relative Direction",
        "Person perspective - Scene Simulation Relative Direction",
    ),
}
_LETTER_RE = re.compile(r"\b([A-D])\b", re.IGNORECASE)


def _option(text: str) -> str | None:
    # evaluate.py extract_option: first standalone A-D, case-insensitive ("a chair" reads as A).
    match = _LETTER_RE.search(text)
    return match.group(1).upper() if match else None


def resolve_image(root: Path, rel: str) -> Path:
    """Where an ``image_path`` entry lives; the first candidate when none exists (reported as missing)."""
    candidates = []
    if rel.startswith(PATH_PREFIX):
        candidates.append(root / rel[len(PATH_PREFIX):])
    candidates += [root.parent / rel, root / rel]
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


class ViewSpatialBench(base.Benchmark):
    NAME = "ViewSpatial-Bench"
    FOLDER_NAMES = ("ViewSpatial-Bench",)
    ALIASES = ("viewspatial",)
    QUESTION_TYPES = (*PERSPECTIVES["camera"], *PERSPECTIVES["person"])
    REQUIRED_FIELDS = ("question_type", "answer")

    def canonical_type(self, value: str) -> str:
        # benchmarks.md prints the type names with an en dash; the dataset JSON uses " - ". Accept both.
        return value.replace("\u2013", "-").replace("\u2014", "-")

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        root = base.find_benchmark_dir(data_root, self.FOLDER_NAMES, lambda d: (d / FILE).is_file(), self.NAME)
        items = json.loads((root / FILE).read_text(encoding="utf-8"))
        if not isinstance(items, list):
            raise base.BenchmarkDataError(f"{self.NAME}: {FILE} must hold a JSON list, got {type(items).__name__}")
        docs: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            base.require_columns(item.keys(), COLUMNS, self.NAME, f"{FILE} item {i}")
            try:
                self.is_numeric_type(item["question_type"])  # validates the type (en dash or hyphen)
            except ScoringInputError as err:
                raise base.BenchmarkDataError(f"{self.NAME} item {i}: {err}") from None
            paths = item["image_path"]
            paths = [paths] if isinstance(paths, str) else list(paths)
            doc = dict(item)
            doc["benchmark"] = self.NAME
            doc["_media"] = [base.MediaItem("image", resolve_image(root, p)) for p in paths]
            docs.append(doc)
        base.assign_doc_ids(docs, list(range(len(docs))))
        return base.seeded_subset(docs, limit, seed)

    @staticmethod
    def options(doc: Mapping[str, Any]) -> list[str]:
        return [line.strip() for line in str(doc["choices"]).split("\n") if line.strip()]

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        base.check_prompt_kind(prompt_kind)
        if prompt_kind == "official":
            return f"{doc['question']}\n{doc['choices']}{OFFICIAL_SUFFIX}"
        return base.shared_prompt(doc["question"], self.options(doc), prompt_kind, answer_format="mcq")

    def target(self, record: Mapping[str, Any]) -> tuple[str, str]:
        """(ground-truth letter, the raw answer)."""
        self.question_type(record)
        answer = str_field(record, "answer")
        letter = _option(answer)  # official applies extract_option to the whole answer
        if letter is None:
            raise ScoringInputError("answer", f"no option letter A-D in answer {answer!r}")
        return letter, answer

    def score_official(self, text: str, target: tuple[str, str]) -> float:
        return 1.0 if _option(text.split("\n")[-1]) == target[0] else 0.0

    def score_spatialladder(self, text: str, target: tuple[str, str]) -> float:
        # Release: fuzzy_matching(pred) == fuzzy_matching(answer[0]) - first space piece must be an
        # UPPER-case letter, else the whole reply is compared (so "a" or "The answer is A" are wrong).
        return 1.0 if sl_letter(text) == sl_letter(target[1][0]) else 0.0

    def summarize(
        self, buckets: Mapping[str, Sequence[float]], scorer: str
    ) -> tuple[dict[str, float], dict[str, float], float]:
        groups: dict[str, float] = {}
        for group, group_types in PERSPECTIVES.items():
            scores = [s for t in group_types for s in buckets.get(t, [])]
            if scores:
                groups[group] = mean(scores)
        return self.type_means(buckets), groups, mean([s for v in buckets.values() for s in v])
