"""Scoring by benchmark name: the functional door to the benchmark registry.

Each benchmark's extraction, metric and aggregation live in its own module under
:mod:`spatialladder.evaluation.benchmarks` (a :class:`~spatialladder.evaluation.benchmarks.base.Benchmark`
subclass); :meth:`Benchmark.score` / :meth:`Benchmark.aggregate` are the one place that picks the scorer:

* ``official`` (default): benchmarks.md policy 1 (answer tag first), then the benchmark's own
  extraction, metric and aggregation *with its quirks*, reproduced from the benchmark authors' code.
* ``spatialladder``: the SpatialLadder release's ``eval_spld`` scoring (benchmarks.md policy 5), so our
  numbers can be compared with the paper's table; it is never the default.

The tables below (``QUESTION_TYPES``, ``NUMERIC_TYPES``, ``TYPE_FIELD``, ``REQUIRED_FIELDS``,
``BENCHMARKS``) collect what the benchmarks registered at import declare; the functions look a
benchmark up in the live registry (one registered later is scored too). Pure Python + numpy (no
torch). Per-sample scores are in [0, 1]; :func:`aggregate` reports percent (0-100).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spatialladder.evaluation.benchmarks import BENCHMARKS as _REGISTRY
from spatialladder.evaluation.benchmarks import SCORERS, Benchmark, ScoringInputError
from spatialladder.evaluation.benchmarks.sparbench import LEVELS as SPAR_LEVELS

__all__ = [
    "BENCHMARKS",
    "NUMERIC_TYPES",
    "QUESTION_TYPES",
    "REQUIRED_FIELDS",
    "SCORERS",
    "SPAR_LEVELS",
    "TYPE_FIELD",
    "ScoringInputError",
    "aggregate",
    "benchmark_for_scoring",
    "is_numeric_type",
    "score_sample",
]

BENCHMARKS: tuple[str, ...] = tuple(_REGISTRY)
QUESTION_TYPES: dict[str, tuple[str, ...]] = {n: b.QUESTION_TYPES for n, b in _REGISTRY.items()}
NUMERIC_TYPES: dict[str, frozenset[str]] = {n: b.NUMERIC_TYPES for n, b in _REGISTRY.items()}
TYPE_FIELD: dict[str, str] = {n: b.TYPE_FIELD for n, b in _REGISTRY.items()}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {n: b.REQUIRED_FIELDS for n, b in _REGISTRY.items()}


def benchmark_for_scoring(benchmark: str) -> Benchmark:
    """The registered benchmark called exactly ``benchmark``; ScoringInputError naming it otherwise."""
    try:
        return _REGISTRY[benchmark]
    except (KeyError, TypeError):
        raise ScoringInputError(
            "benchmark", f"unknown benchmark {benchmark!r}; expected one of {list(_REGISTRY)}"
        ) from None


def is_numeric_type(benchmark: str, qtype: str) -> bool:
    """True when ``qtype`` of ``benchmark`` is scored by MRA (a numeric answer), False for accuracy.

    VSI-Bench's combined ``object_rel_direction`` and CV-Bench's sources / 2D / 3D are accepted too.
    Raises :class:`ScoringInputError` for an unknown benchmark or type.
    """
    return benchmark_for_scoring(benchmark).is_numeric_type(qtype)


def score_sample(
    benchmark: str, record: Mapping[str, Any], prediction: str, scorer: str = "official"
) -> float:
    """Score one raw model reply against one benchmark record; returns a float in [0, 1].

    ``record`` holds the benchmark's own fields (see :data:`REQUIRED_FIELDS`). Raises
    :class:`ScoringInputError` (a ValueError) naming the field for a missing / malformed field, an
    unknown question type or task, or a non-string prediction.
    """
    return benchmark_for_scoring(benchmark).score(record, prediction, scorer)


def aggregate(
    benchmark: str, records: Sequence[Mapping[str, Any]], scorer: str = "official"
) -> dict[str, Any]:
    """Aggregate scored records (each with ``score`` in [0, 1] plus the benchmark's type field).

    Returns ``{"benchmark", "scorer", "n", "overall", "per_type", "groups"}`` with scores in percent.
    Types absent from ``records`` are skipped, never counted as 0; a group with no type present is
    left out. ``overall`` is None only when ``records`` is empty.
    """
    return benchmark_for_scoring(benchmark).aggregate(records, scorer)
