"""Reading an eval run's result files, and (re-)scoring them: below both the runner and the report.

Layout (written by :mod:`spatialladder.evaluation.runner`): ``OUTPUT/<model>/<benchmark>/`` holds
``predictions.rank*.jsonl`` (one per process, appended while generating), the merged
``predictions.jsonl``, ``per_sample_scores.jsonl`` and ``scores.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import BENCHMARKS, SCORERS
from spatialladder.evaluation.benchmarks.base import natural_key
from spatialladder.evaluation.scoring import benchmark_for_scoring

__all__ = [
    "PRED_GLOB",
    "collect_results",
    "done_doc_ids",
    "merge_rank_files",
    "read_jsonl_tolerant",
    "rescore",
    "score_records",
]

PRED_GLOB = "predictions.rank*.jsonl"


def read_jsonl_tolerant(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Complete JSON lines of ``path`` and whether a truncated last line (no newline: the process was
    killed mid-write) was ignored. A malformed line that IS newline-terminated is real corruption and
    raises, naming the file and line."""
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1  # 0 when there is no newline at all
    complete, tail = data[:cut], data[cut:]
    truncated = bool(tail.strip())
    records = []
    for lineno, raw in enumerate(complete.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError as err:
            raise RuntimeError(f"{path}:{lineno}: corrupt prediction line ({err.msg})") from None
    return records, truncated


def done_doc_ids(bench_dir: Path) -> set[str]:
    """doc_ids already predicted by ANY rank file (the world size may differ between runs)."""
    done: set[str] = set()
    for path in sorted(bench_dir.glob(PRED_GLOB)):
        records, _ = read_jsonl_tolerant(path)
        done.update(str(r["doc_id"]) for r in records)
    return done


def merge_rank_files(bench_dir: Path, expected_ids: Sequence[str]) -> list[dict[str, Any]]:
    """One record per expected doc_id (first occurrence wins), sorted by doc_id; raises if any is missing."""
    by_id: dict[str, dict[str, Any]] = {}
    for path in sorted(bench_dir.glob(PRED_GLOB)):
        for record in read_jsonl_tolerant(path)[0]:
            by_id.setdefault(str(record["doc_id"]), record)
    missing = [d for d in expected_ids if d not in by_id]
    if missing:
        raise RuntimeError(f"{bench_dir}: {len(missing)} doc(s) have no prediction: {missing[:20]}")
    return [by_id[d] for d in sorted(expected_ids, key=natural_key)]


def score_records(
    benchmark: str, records: Sequence[Mapping[str, Any]], scorer: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(aggregate summary in percent, per-sample rows ``{doc_id, <type field>, score}``)."""
    bench = benchmark_for_scoring(benchmark)
    scored, per_sample = [], []
    for rec in records:
        s = bench.score(rec, rec["prediction"], scorer=scorer)
        scored.append({**rec, "score": s})
        per_sample.append({"doc_id": rec["doc_id"], bench.TYPE_FIELD: rec[bench.TYPE_FIELD], "score": s})
    return bench.aggregate(scored, scorer=scorer), per_sample


def rescore(bench_dir: Path, benchmark: str, scorer: str, old: Mapping[str, Any]) -> dict[str, Any]:
    """``old`` (a scores.json) with the summary recomputed from ``predictions.jsonl`` under ``scorer``."""
    records, _ = read_jsonl_tolerant(bench_dir / "predictions.jsonl")
    summary, _ = score_records(benchmark, records, scorer)
    keep = {k: v for k, v in old.items() if k not in summary}
    return {**keep, **summary}


def collect_results(results_dir: str | Path, scorer: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """{model: {benchmark: scores}} for every ``<model>/<benchmark>/scores.json`` under ``results_dir``.

    ``scorer`` (optional) re-scores runs that were scored with the other scorer."""
    if scorer is not None and scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; expected one of {SCORERS}")
    root = Path(results_dir)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for benchmark in BENCHMARKS:
            path = model_dir / benchmark / "scores.json"
            if not path.is_file():
                continue
            scores = json.loads(path.read_text(encoding="utf-8"))
            if scorer is not None and scores.get("scorer") != scorer:
                scores = rescore(path.parent, benchmark, scorer, scores)
            out.setdefault(model_dir.name, {})[benchmark] = scores
    return out
