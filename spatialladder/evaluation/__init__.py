"""Benchmark evaluation. Each benchmark (loading, prompts, scoring) is a module under `benchmarks/`;
:mod:`spatialladder.evaluation.scoring` scores by benchmark name (pure Python, no torch).

Kept import-free on purpose: ``eval/score.py`` and reports import the scorer without pulling in the
model stack.
"""
