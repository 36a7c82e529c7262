"""VSI-Bench-Debiased (Brown et al., arXiv 2511.04655): VSI-Bench without the questions a text-only model
solves, published as the ``debiased`` configuration of ``nyu-visionx/VSI-Bench``.

Files: ``test_debiased.parquet`` in the VSI-Bench folder: VSI-Bench's columns plus ``pruned`` (always
False in this file; the dataset's ``create_pq.py`` writes the pruned rows to ``test_pruned.parquet``),
and VSI-Bench's videos at ``<root>/<dataset>/<scene_name>.mp4``.

Everything else is VSI-Bench's, so this is a subclass that only changes the file: lmms-eval's
``vsibench_debiased`` task includes the ``vsibench`` template (same prompt, same ``process_results``,
same aggregation: task means, ``object_rel_direction`` from its difficulty means, overall = mean of
the 8 tasks, NQ / MCQ). A row marked ``pruned`` is not part of the benchmark: refused when loading
and when scoring. docs/benchmarks.md gives the sources.

``--scorer spatialladder``: the release never scored this configuration, but its rows are VSI-Bench
rows, so the release's VSI-Bench rule (inherited) is what the release would have produced on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import ScoringInputError
from spatialladder.evaluation.benchmarks.vsibench import VSIBench

FILE = "test_debiased.parquet"
PRUNED = "pruned"


def check_not_pruned(record: Mapping[str, Any]) -> None:
    """A row with ``pruned`` other than False/absent is outside the benchmark: ScoringInputError."""
    if record.get(PRUNED) not in (None, False):
        raise ScoringInputError(PRUNED, f"row is pruned ({record.get(PRUNED)!r}); not part of VSI-Bench-Debiased")


class VSIBenchDebiased(VSIBench):
    NAME = "VSI-Bench-Debiased"
    FOLDER_NAMES = ("VSI-Bench",)  # the same dataset repository as VSI-Bench
    ALIASES = ("vsi-debiased",)
    REFERENCE_SCORES = (
        base.ReferenceScore("Qwen2.5-VL-3B-Instruct", 22.7,
                            "Brown et al., arXiv 2511.04655, as listed in EvolvingLMMs-Lab/EASI "
                            "docs/Benchmark_Verification.md §6"),
        base.ReferenceScore("Qwen2.5-VL-7B-Instruct", 29.6,
                            "Brown et al., arXiv 2511.04655, as listed in EvolvingLMMs-Lab/EASI "
                            "docs/Benchmark_Verification.md §6"),
    )  # fmt: skip

    @staticmethod
    def _parquet_files(root: Path) -> list[Path]:
        return [root / FILE] if (root / FILE).is_file() else []

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """VSI-Bench's loader on ``test_debiased.parquet``, then the ``pruned`` column checked."""
        docs = super().load_docs(data_root)
        for doc in docs:
            if PRUNED not in doc:
                raise base.BenchmarkDataError(
                    f"{self.NAME}: {FILE} lacks column ['{PRUNED}']; it has {[k for k in doc if not k.startswith('_')]}"
                )
            try:
                check_not_pruned(doc)
            except ScoringInputError as err:
                raise base.BenchmarkDataError(f"{self.NAME} {FILE} row id={doc['id']}: {err}") from None
        return base.seeded_subset(docs, limit, seed)

    def target(self, record: Mapping[str, Any]) -> tuple[bool, Any]:
        check_not_pruned(record)
        return super().target(record)
