"""VSI-Bench (``nyu-visionx/VSI-Bench``): one video per question, ~18 questions per video.

Files: ``test-00000-of-00001.parquet`` (``id``, ``dataset``, ``scene_name``, ``question_type``,
``question``, ``options``, ``ground_truth``) and videos at ``<root>/<dataset>/<scene_name>.mp4``.

Scoring (:class:`VSIRules`, shared with SPBench): thinking-in-space's ``vsibench`` utils (first
space-separated piece, ``float()``, MRA); overall = mean of the task means, NQ / MCQ = mean of the
numeric / multiple-choice task means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import (
    ScoringInputError,
    mean,
    numeric_target,
    sl_letter,
    sl_number,
    str_field,
    to_float,
)
from spatialladder.metrics import mean_relative_accuracy

COLUMNS: tuple[str, ...] = ("id", "dataset", "scene_name", "question_type", "question", "options", "ground_truth")

# thinking-in-space / lmms-eval ``vsibench_doc_to_text`` (the official prompt).
OFFICIAL_PRE_PROMPT = "These are frames of a video."
OFFICIAL_NA_POST_PROMPT = "Please answer the question using a single word or phrase."
OFFICIAL_MCA_POST_PROMPT = "Answer with the option's letter from the given choices directly."

REL_DIRECTION_SUBTYPES = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard")
REL_DIRECTION = "object_rel_direction"  # the task the three difficulty subtypes are averaged into
_MC = (*REL_DIRECTION_SUBTYPES, "object_rel_distance", "route_planning", "obj_appearance_order")
_NUM = ("object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation")


def _vsi_piece(text: str) -> str:
    # thinking-in-space fuzzy_matching: split on single spaces, first piece, strip trailing '.' then
    # whitespace. So "B.\n" stays "B." (rstrip('.') runs before strip) - a kept quirk.
    return text.split(" ")[0].rstrip(".").strip()


class VSIRules(base.Benchmark):
    """VSI-Bench's scoring, used by VSI-Bench and both SPBench splits. ``COMBINED_TASKS`` maps a task
    to the subtypes whose means it averages (each subtype then stops counting as a task)."""

    REQUIRED_FIELDS = ("question_type", "ground_truth")  # `options` may be absent; no scorer reads it
    COMBINED_TASKS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def target(self, record: Mapping[str, Any]) -> tuple[bool, Any]:
        """(numeric?, float target or the multiple-choice ground-truth string)."""
        qtype = self.question_type(record)
        if qtype in self.NUMERIC_TYPES:
            return True, numeric_target(record, "ground_truth")
        return False, str_field(record, "ground_truth")

    def score_official(self, text: str, target: tuple[bool, Any]) -> float:
        numeric, truth = target
        piece = _vsi_piece(text)
        if numeric:
            # float() of the piece: "3.5 meters" -> 3.5, "120cm" / "two" -> unparsable -> 0.
            return mean_relative_accuracy(to_float(piece), truth)
        return 1.0 if piece.lower() == str(truth).lower() else 0.0

    def score_spatialladder(self, text: str, target: tuple[bool, Any]) -> float:
        numeric, truth = target
        if numeric:
            # Release: to_float(fuzzy_matching_num(pred)); it divides by a 0 target and crashes - we
            # use the policy-3 absolute error instead (documented deviation).
            return mean_relative_accuracy(sl_number(text), truth)
        # Release: strip "Answer:" then fuzzy_matching, then case-insensitive equality.
        return 1.0 if sl_letter(text.replace("Answer:", "")).lower() == truth.lower() else 0.0

    def summarize(
        self, buckets: Mapping[str, Sequence[float]], scorer: str
    ) -> tuple[dict[str, float], dict[str, float], float]:
        per_type = self.type_means(buckets)
        tasks = dict(per_type)
        for task, subtypes in self.COMBINED_TASKS.items():
            # The combined task is ONE task: the mean of the subtype means present (both in the
            # official aggregation and in the release's).
            subs = [tasks.pop(t) for t in subtypes if t in tasks]
            if subs:
                tasks[task] = per_type[task] = mean(subs)
        groups: dict[str, float] = {}
        numeric = [v for t, v in tasks.items() if t in self.NUMERIC_TYPES]
        choice = [v for t, v in tasks.items() if t not in self.NUMERIC_TYPES]
        if numeric:
            groups["NQ"] = mean(numeric)
        if choice:
            groups["MCQ"] = mean(choice)
        return per_type, groups, mean(list(tasks.values()))

    def check_type(self, doc: Mapping[str, Any]) -> None:
        """A loader's check of a row's ``question_type`` (BenchmarkDataError naming the row)."""
        try:
            self.is_numeric_type(doc["question_type"])
        except ScoringInputError as err:
            raise base.BenchmarkDataError(f"{self.NAME} row id={doc.get('id')}: {err}") from None


class VSIBench(VSIRules):
    NAME = "VSI-Bench"
    FOLDER_NAMES = ("VSI-Bench",)
    ALIASES = ("vsi",)
    QUESTION_TYPES = (*_MC, *_NUM)
    NUMERIC_TYPES = frozenset(_NUM)
    OTHER_TYPES = (REL_DIRECTION,)
    COMBINED_TASKS = {REL_DIRECTION: REL_DIRECTION_SUBTYPES}
    VIDEO = True

    @staticmethod
    def _parquet_files(root: Path) -> list[Path]:
        return sorted(root.glob("test-*.parquet"))

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Every question (or a seeded ``limit`` subset), with its video as the doc's media."""
        root = base.find_benchmark_dir(data_root, self.FOLDER_NAMES, lambda d: bool(self._parquet_files(d)), self.NAME)
        files = self._parquet_files(root)
        base.require_columns(base.parquet_columns(files), COLUMNS, self.NAME, [f.name for f in files])
        docs = base.read_parquet_rows(files)
        for doc in docs:
            self.check_type(doc)
            doc["benchmark"] = self.NAME
            doc["_media"] = [base.MediaItem("video", root / str(doc["dataset"]) / f"{doc['scene_name']}.mp4")]
        base.assign_doc_ids(docs, [d["id"] for d in docs])
        return base.seeded_subset(docs, limit, seed)

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        base.check_prompt_kind(prompt_kind)
        numeric = self.is_numeric_type(doc["question_type"])
        options = list(doc.get("options") or [])
        if prompt_kind == "official":
            if numeric:
                return f"{OFFICIAL_PRE_PROMPT}\n{doc['question']}\n{OFFICIAL_NA_POST_PROMPT}"
            opts = "Options:\n" + "\n".join(options)
            return "\n".join([OFFICIAL_PRE_PROMPT, doc["question"], opts, OFFICIAL_MCA_POST_PROMPT])
        return base.shared_prompt(doc["question"], options, prompt_kind, answer_format="number" if numeric else "mcq")
