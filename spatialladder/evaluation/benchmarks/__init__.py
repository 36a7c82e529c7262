"""The benchmark registry: one :class:`~spatialladder.evaluation.benchmarks.base.Benchmark` instance per
evaluation benchmark (lmms-eval style: each benchmark's module loads, prompts and scores it).

Adding a benchmark: write ``benchmarks/<name>.py`` with a ``Benchmark`` subclass (the surface is in the
base class docstring) and add one line to ``_REGISTERED`` below. The order of ``_REGISTERED`` is the
paper's order, then the benchmarks outside the paper's table; ``--benchmarks all`` and the report
follow it.
"""

from __future__ import annotations

import re

from spatialladder.evaluation.benchmarks import (
    cvbench,
    mindcube,
    mmsibench,
    sparbench,
    spbench,
    viewspatial,
    vsibench,
    vsibench_debiased,
)
from spatialladder.evaluation.benchmarks.base import (
    PROMPT_KINDS,
    SCORERS,
    Benchmark,
    BenchmarkDataError,
    MediaItem,
    ReferenceScore,
)
from spatialladder.evaluation.benchmarks.scoring_rules import ScoringInputError

__all__ = [
    "BENCHMARKS",
    "PROMPT_KINDS",
    "SCORERS",
    "Benchmark",
    "BenchmarkDataError",
    "MediaItem",
    "ReferenceScore",
    "ScoringInputError",
    "get_benchmark",
    "register",
    "resolve_benchmarks",
]

BENCHMARKS: dict[str, Benchmark] = {}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _keys(benchmark: Benchmark) -> set[str]:
    return {_norm(benchmark.NAME), *(_norm(a) for a in benchmark.ALIASES)}


def register(benchmark: Benchmark) -> Benchmark:
    """Add ``benchmark`` to :data:`BENCHMARKS` (after the ones already there); returns it.

    Refuses a non-:class:`Benchmark`, a declaration missing a required attribute, and a name or alias
    that another registered benchmark already answers to.
    """
    if not isinstance(benchmark, Benchmark):
        raise TypeError(f"register() takes a Benchmark instance, got {type(benchmark).__name__}")
    cls = type(benchmark).__name__
    for attr in ("NAME", "QUESTION_TYPES", "REQUIRED_FIELDS"):
        if not hasattr(benchmark, attr):
            raise TypeError(f"{cls} does not declare {attr} (see the Benchmark docstring)")
    unknown = set(benchmark.NUMERIC_TYPES) - set(benchmark.QUESTION_TYPES)
    if unknown:
        raise ValueError(f"{cls}: NUMERIC_TYPES {sorted(unknown)} are not among its QUESTION_TYPES")
    for other in BENCHMARKS.values():
        clash = _keys(benchmark) & _keys(other)
        if clash:
            raise ValueError(f"{cls} ({benchmark.NAME}): name/alias {sorted(clash)} is taken by {other.NAME}")
    BENCHMARKS[benchmark.NAME] = benchmark
    return benchmark


_REGISTERED: tuple[Benchmark, ...] = (
    vsibench.VSIBench(),
    spbench.SPBenchSI(),
    spbench.SPBenchMV(),
    cvbench.CVBench(),
    sparbench.SPARBench(),
    viewspatial.ViewSpatialBench(),
    vsibench_debiased.VSIBenchDebiased(),
    mmsibench.MMSIBench(),
    mindcube.MindCubeTiny(),
)
for _benchmark in _REGISTERED:
    register(_benchmark)


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark for a name or alias (case and punctuation are ignored: ``vsibench``)."""
    key = _norm(name)
    for benchmark in BENCHMARKS.values():
        if key in _keys(benchmark):
            return benchmark
    raise KeyError(f"unknown benchmark {name!r}; expected one of {list(BENCHMARKS)} or 'all'")


def resolve_benchmarks(spec: str | list[str]) -> list[str]:
    """``"all"`` or names separated by spaces/commas -> canonical names, in registry order."""
    parts = spec if isinstance(spec, list) else [spec]
    names = [p for part in parts for p in re.split(r"[\s,]+", part.strip()) if p]
    if not names or any(n.lower() == "all" for n in names):
        return list(BENCHMARKS)
    chosen = {get_benchmark(n).NAME for n in names}
    return [n for n in BENCHMARKS if n in chosen]
