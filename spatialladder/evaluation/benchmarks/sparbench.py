"""SPAR-Bench (``jasonzhango/SPAR-Bench``): 1 to 5 embedded images per question, 20 tasks.

Files: ``data/test-*.parquet`` (``id``, ``img_type``, ``format_type``, ``task``, ``source``, ``image``
as a list of embedded images, ``question`` with the options inside its text, ``answer``). A root with
the parquet files directly in it (the SpatialLadder release's layout) is accepted too.

Scoring: the SPAR lmms-eval ``sparbench`` utils (MCQ substring / first-char match, digit regex,
``view_change_infer`` with swapped MRA arguments, Low/Middle/High by name parsing). The release
(``spatialladder`` scorer) scores samples the same way after its own tag extraction, but aggregates
differently (sample-weighted, view_change_infer in Medium).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import (
    ScoringInputError,
    mean,
    numeric_target,
    str_field,
    to_float,
    weighted_mean,
)
from spatialladder.metrics import mean_relative_accuracy

COLUMNS: tuple[str, ...] = ("id", "img_type", "format_type", "task", "source", "image", "question", "answer")
VIEW_CHANGE = "view_change_infer"

MC_TASKS: tuple[str, ...] = (
    "obj_spatial_relation_oo",
    "obj_spatial_relation_oc_mv",
    "obj_spatial_relation_oo_mv",
    "spatial_imagination_oc",
    "spatial_imagination_oo",
    "spatial_imagination_oc_mv",
    "spatial_imagination_oo_mv",
    "position_matching",
    "camera_motion_infer",
    "distance_infer_center_oo",
    "distance_infer_center_oo_mv",
)
NUMERIC_TASKS: tuple[str, ...] = (
    "depth_prediction_oc",
    "depth_prediction_oo",
    "depth_prediction_oc_mv",
    "depth_prediction_oo_mv",
    "distance_prediction_oc",
    "distance_prediction_oo",
    "distance_prediction_oc_mv",
    "distance_prediction_oo_mv",
)
# Official process_na: these four take the LAST number (-1 when none); the others the first.
_NUMERIC_LAST = frozenset(t for t in NUMERIC_TASKS if t.endswith("_mv"))
_MEDIUM = ("position_matching", "camera_motion_infer")
LEVELS: dict[str, tuple[str, ...]] = {
    "Low": NUMERIC_TASKS,
    "Medium": _MEDIUM,
    "High": tuple(t for t in MC_TASKS if t not in _MEDIUM),
}

_BBOX_TASKS = ("position_matching", "camera_motion_infer")

_NUMBER_RE = re.compile(r"(?<!\^)\d+\.\d+|(?<!\^)\d+")  # official process_na: unsigned
_VCI_COMPONENTS = (
    ("move_right", "move_left"),
    ("move_up", "move_down"),
    ("move_forward", "move_backward"),
    ("rotate_right", "rotate_left"),
    ("rotate_up", "rotate_down"),
)


class _Target(NamedTuple):
    task: str
    actions: dict[str, float] | None = None  # view_change_infer
    number: float | None = None  # numeric tasks
    answer: str | None = None  # multiple choice


def _exact_match(pred: str, target: str) -> float:
    """SPAR's exact_match on the lower-cased reply: equal, OR a substring of the target, OR first
    character equal to the target. Hence an empty reply is correct and "(B)" is not (kept quirks)."""
    pred, target = pred.lower(), target.lower()
    if pred == target or pred in target or pred[0] == target:
        return 1.0
    return 0.0


def _numeric(text: str, task: str, target: float) -> float:
    try:
        numbers = [float(n) if "." in n else int(n) for n in _NUMBER_RE.findall(text)]
    except ValueError:  # int() of a >4300-digit run; the official bare `except` scores it 0
        return 0.0
    if task in _NUMERIC_LAST:
        value: float | int = numbers[-1] if numbers else -1
    elif numbers:
        value = numbers[0]
    else:
        return 0.0  # official: IndexError on extracted_numbers[0], caught -> worst case 0
    return mean_relative_accuracy(to_float(value), target)


def _parse_instruction(text: str) -> dict[str, float]:
    """SPAR ``parse_instruction``, strict: every comma item must be exactly ``key:value`` with a
    float value, keys are NOT stripped. Raises ValueError otherwise."""
    return {k: float(v) for k, v in [item.split(":") for item in text.split(",")]}


def _vci_components(actions: Mapping[str, float]) -> list[float]:
    return [actions.get(pos, 0) - actions.get(neg, 0) for pos, neg in _VCI_COMPONENTS]


def _view_change(text: str, gt_actions: Mapping[str, float]) -> float:
    try:
        pred_actions = _parse_instruction(text)
    except ValueError:
        return 0.0  # a malformed reply scores 0 (official: bare except -> 0)
    pred_c, gt_c = _vci_components(pred_actions), _vci_components(gt_actions)
    # Official compute_vci_metric calls mean_relative_accuracy(gt, answer): the PREDICTION is the
    # denominator (swapped arguments) - kept.
    return float(np.mean([mean_relative_accuracy(g, p) for g, p in zip(gt_c, pred_c)]))


class SPARBench(base.Benchmark):
    NAME = "SPAR-Bench"
    FOLDER_NAMES = ("SPAR-Bench",)
    ALIASES = ("spar",)
    QUESTION_TYPES = (*MC_TASKS, *NUMERIC_TASKS, VIEW_CHANGE)
    NUMERIC_TYPES = frozenset((*NUMERIC_TASKS, VIEW_CHANGE))  # view_change_infer is MRA-based too
    REQUIRED_FIELDS = ("task", "answer")
    TYPE_FIELD = "task"
    RECORD_DROP = ("image",)
    # SPAR's lmms-eval ``sparbench_doc_to_text`` with its default kwargs (pre_prompt ""), verbatim.
    OFFICIAL_NA_POST_PROMPT = "Please answer the question using a single word or phrase."
    OFFICIAL_MCA_POST_PROMPT = "Answer with the option's letter from the given choices directly."
    OFFICIAL_BBOX_NOTE = (
        "The values represent the bounding box coordinates normalized to a 0-1000 scale, with the top-left "
        "corner as the origin of the image."
    )

    @staticmethod
    def _parquet_files(root: Path) -> list[Path]:
        return sorted(root.glob("data/test-*.parquet")) or sorted(root.glob("*.parquet"))

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        root = base.find_benchmark_dir(data_root, self.FOLDER_NAMES, lambda d: bool(self._parquet_files(d)), self.NAME)
        files = self._parquet_files(root)
        base.require_columns(base.parquet_columns(files), COLUMNS, self.NAME, [f.name for f in files])
        docs = base.read_parquet_rows(files)
        for doc in docs:
            if doc["task"] not in self.QUESTION_TYPES:
                raise base.BenchmarkDataError(f"{self.NAME} row id={doc['id']}: unknown task {doc['task']!r}")
            cells = doc["image"]
            cells = list(cells) if isinstance(cells, (list, tuple)) else [cells]
            doc["benchmark"] = self.NAME
            doc["_media"] = [base.MediaItem("image", data=base.image_bytes_of(c)) for c in cells]
            if not doc["_media"]:
                doc["_media"] = [base.MediaItem("image", data=None)]  # reported as missing media
        base.assign_doc_ids(docs, [d["id"] for d in docs])
        return base.seeded_subset(docs, limit, seed)

    def answer_format(self, task: str) -> str:
        if task == VIEW_CHANGE:
            return "free"
        return "number" if task in self.NUMERIC_TYPES else "mcq"

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        base.check_prompt_kind(prompt_kind)
        task, question = doc["task"], doc["question"]
        fmt = self.answer_format(task)
        if prompt_kind == "official":
            pre = ""  # the official default; its "\n" joins are kept verbatim
            if fmt == "number":
                return pre + "\n" + question + "\n" + self.OFFICIAL_NA_POST_PROMPT
            if fmt == "mcq":
                note = self.OFFICIAL_BBOX_NOTE if task in _BBOX_TASKS else ""
                return pre + "\n" + question + "\n" + note + "\n" + self.OFFICIAL_MCA_POST_PROMPT
            return pre + "\n" + question + "\n" + "" + "\n" + ""
        if fmt == "mcq":
            split = base.split_embedded_options(question)
            if split is not None:
                return base.shared_prompt(split[0], split[1], prompt_kind, answer_format="mcq")
        return base.shared_prompt(question, None, prompt_kind, answer_format=fmt)  # type: ignore[arg-type]

    def target(self, record: Mapping[str, Any]) -> _Target:
        task = self.question_type(record)
        if task == VIEW_CHANGE:
            raw = str_field(record, "answer")
            try:
                return _Target(task, actions=_parse_instruction(raw))
            except ValueError:
                raise ScoringInputError("answer", f"malformed view_change_infer answer {raw!r}") from None
        if task in NUMERIC_TASKS:
            return _Target(task, number=numeric_target(record, "answer"))
        answer = str_field(record, "answer")
        if not answer:
            raise ScoringInputError("answer", "empty multiple-choice answer")
        return _Target(task, answer=answer)

    def score_official(self, text: str, target: _Target) -> float:
        # An unclosed <answer> never gets here: it is unparsable (0), even where "" would match (MCQ quirk).
        if target.actions is not None:
            return _view_change(text, target.actions)
        if target.number is not None:
            return _numeric(text, target.task, target.number)
        assert target.answer is not None
        return _exact_match(text, target.answer)  # the RAW reply, no letter extraction (official)

    def summarize(
        self, buckets: Mapping[str, Sequence[float]], scorer: str
    ) -> tuple[dict[str, float], dict[str, float], float]:
        means = self.type_means(buckets)
        counts = {t: len(v) for t, v in buckets.items()}
        groups: dict[str, float] = {}
        for level, level_tasks in LEVELS.items():
            if scorer == "spatialladder" and level == "Medium":
                # The release parses task names correctly, so view_change_infer lands in Medium.
                level_tasks = (VIEW_CHANGE, *level_tasks)
            present = [t for t in level_tasks if t in means]
            if not present:
                continue
            if scorer == "official":
                # Official: plain mean of the task means; its name parsing ("_".join(key.split("_")
                # [:-1]) on "view_change_infer_vci_metric") leaves view_change_infer out of every level.
                groups[level] = mean([means[t] for t in present])
            else:
                groups[level] = weighted_mean([(means[t], counts[t]) for t in present])
        if scorer == "official":
            return means, groups, mean(list(means.values()))  # unweighted over tasks, view_change_infer included
        return means, groups, weighted_mean([(means[t], counts[t]) for t in means])  # release: sample-weighted
