"""SPBench-SI and SPBench-MV (``hongxingli/SPBench``): single image / several views per question.

Files: ``SPBench-SI.parquet`` / ``SPBench-MV.parquet`` (``id``, ``dataset``, ``scene_name``,
``question_type``, ``question``, ``options``, ``ground_truth``, ``images``: frame file names) with
images at ``<root>/images/<scene_name>/<frame>``. The root is ``<data-root>/SPBench-SI`` (or ``-MV``,
the SpatialLadder release's layout) or ``<data-root>/SPBench`` (the Hugging Face repository, both
parquets side by side).

Scored with the VSI-Bench rules (:class:`~spatialladder.evaluation.benchmarks.vsibench.VSIRules`);
``object_rel_direction`` is not split by difficulty here. Official prompt: the lmms-eval VSI
post-prompts minus the "These are frames of a video." pre-prompt, which would be false for still images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.vsibench import (
    OFFICIAL_MCA_POST_PROMPT,
    OFFICIAL_NA_POST_PROMPT,
    VSIRules,
)

COLUMNS: tuple[str, ...] = (
    "id", "dataset", "scene_name", "question_type", "question", "options", "ground_truth", "images",
)  # fmt: skip
_MC = ("object_rel_distance", "object_rel_direction")
_SI_NUM = ("object_abs_distance", "object_size_estimation")
_MV_NUM = ("object_counting", *_SI_NUM)


class _SPBench(VSIRules):
    @property
    def file(self) -> str:
        return f"{self.NAME}.parquet"

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        root = base.find_benchmark_dir(data_root, self.FOLDER_NAMES, lambda d: (d / self.file).is_file(), self.NAME)
        path = root / self.file
        base.require_columns(base.parquet_columns([path]), COLUMNS, self.NAME, path.name)
        docs = base.read_parquet_rows([path])
        for doc in docs:
            self.check_type(doc)
            frames = doc["images"]
            frames = [frames] if isinstance(frames, str) else list(frames or [])
            if not frames:
                raise base.BenchmarkDataError(f"{self.NAME} row id={doc.get('id')}: empty `images`")
            doc["benchmark"] = self.NAME
            doc["_media"] = [
                base.MediaItem("image", root / "images" / str(doc["scene_name"]) / str(f)) for f in frames
            ]
        base.assign_doc_ids(docs, [d["id"] for d in docs])
        return base.seeded_subset(docs, limit, seed)

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        base.check_prompt_kind(prompt_kind)
        numeric = self.is_numeric_type(doc["question_type"])
        options = list(doc.get("options") or [])
        if prompt_kind == "official":
            if numeric:
                return f"{doc['question']}\n{OFFICIAL_NA_POST_PROMPT}"
            return "\n".join([doc["question"], "Options:\n" + "\n".join(options), OFFICIAL_MCA_POST_PROMPT])
        return base.shared_prompt(doc["question"], options, prompt_kind, answer_format="number" if numeric else "mcq")


class SPBenchSI(_SPBench):
    NAME = "SPBench-SI"
    FOLDER_NAMES = ("SPBench-SI", "SPBench")
    ALIASES = ("spbsi",)
    QUESTION_TYPES = (*_MC, *_SI_NUM)
    NUMERIC_TYPES = frozenset(_SI_NUM)


class SPBenchMV(_SPBench):
    NAME = "SPBench-MV"
    FOLDER_NAMES = ("SPBench-MV", "SPBench")
    ALIASES = ("spbmv",)
    QUESTION_TYPES = (*_MC, *_MV_NUM)
    NUMERIC_TYPES = frozenset(_MV_NUM)
