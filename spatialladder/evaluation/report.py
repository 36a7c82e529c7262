"""One table across models in the paper's layout, beside the paper's own rows (``eval/report.py``).

Reads ``RESULTS/<model>/<benchmark>/scores.json`` (written by the runner) and writes ``report.md``
(main table, extended table, per-type tables) and ``report.csv`` (main table, then the extended
columns). With ``scorer`` different from the one a run was scored with, the merged
``predictions.jsonl`` is re-scored (no generation needed).

Layout (benchmarks.md "Reported layout"): VSI NQ/MCQ/Avg, SPB-SI NQ/MCQ/Avg, SPB-MV NQ/MCQ/Avg,
in-domain Overall (mean of the three Avgs); CV 2D/3D/Avg, SPAR Low/Med/High/Avg, ViewSpatial
camera/person/Avg, out-of-domain Overall (mean of the three Avgs). A benchmark's Avg is its official
overall score. Missing numbers print as "–".

Extended table: every registered benchmark that is not in the paper's layout (:data:`MAIN_COLUMNS`)
and has results, one column each (its official overall score), with the published rows its module
declares (``Benchmark.REFERENCE_SCORES``) and their sources listed under the table. It is built from
the registry alone: a new benchmark appears here without any change to this file.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import BENCHMARKS
from spatialladder.evaluation.results import collect_results

__all__ = ["MAIN_COLUMNS", "PAPER_ROWS", "extended_benchmarks", "main_row", "render_report", "write_report"]

DASH = "–"
IN_DOMAIN = ("VSI-Bench", "SPBench-SI", "SPBench-MV")
OUT_OF_DOMAIN = ("CV-Bench", "SPAR-Bench", "ViewSpatial-Bench")
IN_OVERALL = "In-domain Overall"
OUT_OVERALL = "Out-of-domain Overall"

# (column label, benchmark, group key in scores.json["groups"]; "Avg" = scores.json["overall"])
MAIN_COLUMNS: tuple[tuple[str, str | None, str | None], ...] = (
    ("VSI NQ", "VSI-Bench", "NQ"), ("VSI MCQ", "VSI-Bench", "MCQ"), ("VSI Avg", "VSI-Bench", "Avg"),
    ("SPB-SI NQ", "SPBench-SI", "NQ"), ("SPB-SI MCQ", "SPBench-SI", "MCQ"), ("SPB-SI Avg", "SPBench-SI", "Avg"),
    ("SPB-MV NQ", "SPBench-MV", "NQ"), ("SPB-MV MCQ", "SPBench-MV", "MCQ"), ("SPB-MV Avg", "SPBench-MV", "Avg"),
    (IN_OVERALL, None, None),
    ("CV 2D", "CV-Bench", "2D"), ("CV 3D", "CV-Bench", "3D"), ("CV Avg", "CV-Bench", "Avg"),
    ("SPAR Low", "SPAR-Bench", "Low"), ("SPAR Med", "SPAR-Bench", "Medium"), ("SPAR High", "SPAR-Bench", "High"),
    ("SPAR Avg", "SPAR-Bench", "Avg"),
    ("ViewSpatial camera", "ViewSpatial-Bench", "camera"), ("ViewSpatial person", "ViewSpatial-Bench", "person"),
    ("ViewSpatial Avg", "ViewSpatial-Bench", "Avg"),
    (OUT_OVERALL, None, None),
)  # fmt: skip
_AVG_LABEL = {"VSI-Bench": "VSI Avg", "SPBench-SI": "SPB-SI Avg", "SPBench-MV": "SPB-MV Avg",
              "CV-Bench": "CV Avg", "SPAR-Bench": "SPAR Avg", "ViewSpatial-Bench": "ViewSpatial Avg"}  # fmt: skip


def _paper(values: Sequence[float]) -> dict[str, float]:
    labels = [c[0] for c in MAIN_COLUMNS]
    assert len(values) == len(labels)
    return dict(zip(labels, values))


# Copied from the shared reference paper.md (percent). The in-domain Overall of the base model is the
# mean of its Avgs (35.4), not the 38.8 misprinted in arXiv v1 (see paper.md).
PAPER_ROWS: dict[str, dict[str, float]] = {
    "Qwen2.5-VL-3B (base)": _paper([
        26.0, 33.0, 29.4, 24.3, 56.2, 40.3, 25.6, 53.2, 36.6, 35.4,
        69.1, 72.2, 70.6, 15.3, 26.4, 32.2, 24.6, 39.5, 32.0, 35.6, 43.6,
    ]),
    "SpatialLadder-3B": _paper([
        50.8, 40.5, 45.7, 58.6, 81.8, 70.2, 68.2, 75.0, 70.9, 62.3,
        72.4, 74.9, 73.7, 25.8, 33.2, 42.6, 34.4, 39.6, 48.5, 44.2, 50.8,
    ]),
}  # fmt: skip


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return math.fsum(values) / len(values)  # type: ignore[arg-type]


def main_row(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """One model's main-table values from its {benchmark: scores}."""
    row: dict[str, float | None] = {}
    for label, bench, group in MAIN_COLUMNS:
        if bench is None:
            continue
        scores = results.get(bench)
        if scores is None:
            row[label] = None
        elif group == "Avg":
            row[label] = scores.get("overall")
        else:
            row[label] = scores.get("groups", {}).get(group)
    row[IN_OVERALL] = _mean_or_none([row[_AVG_LABEL[b]] for b in IN_DOMAIN])
    row[OUT_OVERALL] = _mean_or_none([row[_AVG_LABEL[b]] for b in OUT_OF_DOMAIN])
    return {label: row[label] for label, _, _ in MAIN_COLUMNS}


def extended_benchmarks(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Registered benchmarks outside the paper's layout that some model in ``results`` has scores
    for, in registry order: the columns of the extended table."""
    paper = {bench for _, bench, _ in MAIN_COLUMNS if bench is not None}
    return [b for b in BENCHMARKS if b not in paper and any(b in benches for benches in results.values())]


def _published_rows(benchmarks: Sequence[str]) -> dict[str, dict[str, float]]:
    """{model: {benchmark: published overall}} from the benchmarks' REFERENCE_SCORES, in order."""
    rows: dict[str, dict[str, float]] = {}
    for bench in benchmarks:
        for ref in BENCHMARKS[bench].REFERENCE_SCORES:
            rows.setdefault(ref.model, {})[bench] = ref.overall
    return rows


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _scorers_of(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> set[str]:
    return {s.get("scorer", "?") for bench in results.values() for s in bench.values()}


def render_report(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> tuple[str, str]:
    """(markdown, csv): the main table (paper rows first), the extended table (published rows first; only
    when an extended benchmark has results) and the per-type tables."""
    scorers = _scorers_of(results)
    scorer_text = ", ".join(f"`{s}`" for s in sorted(scorers)) if scorers else "–"
    labels = [c[0] for c in MAIN_COLUMNS]
    md: list[str] = ["# Spatial benchmark evaluation", ""]
    md.append(f"**Scorer of the evaluated rows: {scorer_text}.** `official` = each benchmark's own extraction, "
              "metric and aggregation (benchmarks.md); `spatialladder` = the SpatialLadder release's scoring, "
              "which produced the paper's numbers. Rows marked *paper* are copied from the paper "
              "(SpatialLadder, arXiv 2510.08531), not re-evaluated.")  # fmt: skip
    md.append("")
    md.append("Scores in percent. Avg = the benchmark's official overall score; Overall = mean of the three "
              f"Avgs of its group. {DASH} = not evaluated.")  # fmt: skip
    md.append("")

    # The CSV holds every number: the main columns, then one column per extended benchmark.
    extended = extended_benchmarks(results)
    published = _published_rows(extended)
    rows_md, rows_csv = [], []
    for name, values in PAPER_ROWS.items():
        rows_md.append([f"{name} *(paper)*", *[_fmt(values.get(label)) for label in labels]])
        rows_csv.append([name, "paper", "spatialladder (release)", "thinking", *[values.get(label) for label in labels],
                         *[None] * len(extended)])  # fmt: skip
    rows_csv += [[model, "published", "official (authors)", "", *[None] * len(labels),
                  *[values.get(b) for b in extended]] for model, values in published.items()]  # fmt: skip
    ext_md = [[f"{model} *(published)*", *[_fmt(values.get(b)) for b in extended]]
              for model, values in published.items()]  # fmt: skip
    notes: list[str] = []
    for model, benches in results.items():
        row = main_row(benches)
        model_scorers = sorted({s.get("scorer", "?") for s in benches.values()})
        kinds = sorted({str(s.get("prompt_kind", "?")) for s in benches.values()})
        overalls = [benches.get(b, {}).get("overall") for b in extended]
        rows_md.append([f"{model} ({'/'.join(model_scorers)})", *[_fmt(row[label]) for label in labels]])
        ext_md.append([f"{model} ({'/'.join(model_scorers)})", *[_fmt(v) for v in overalls]])
        rows_csv.append([model, "evaluated", "/".join(model_scorers), "/".join(kinds),
                         *[_rounded(row[label]) for label in labels], *[_rounded(v) for v in overalls]])  # fmt: skip
        for bench, s in benches.items():
            bits = []
            if s.get("limit") is not None:
                bits.append(f"seeded subset --limit {s['limit']} (seed {s.get('subset_seed')}), not comparable to the paper")
            if s.get("n_skipped_missing_media"):
                bits.append(f"{s['n_skipped_missing_media']} of {s.get('n_docs')} docs skipped for missing media")
            if bits:
                notes.append(f"- {model} / {bench}: n={s.get('n')}; " + "; ".join(bits))
        notes.append(f"- {model}: prompt kind {', '.join(kinds)}")
    md.append("## Main table")
    md.append("")
    md.append(_md_table(["Model", *labels], rows_md))
    md.append("")
    if notes:
        md.append("Notes:")
        md.extend(notes)
        md.append("")

    if extended:
        md.append("## Extended benchmarks")
        md.append("")
        md.append("Benchmarks outside the paper's table, each scored by its authors' extraction, metric and "
                  "aggregation (docs/benchmarks.md); each column is the benchmark's official overall score "
                  "(per-type scores below). Rows marked *published* are copied from the sources listed under "
                  "the table, not re-evaluated.")  # fmt: skip
        md.append("")
        md.append(_md_table(["Model", *extended], ext_md))
        md.append("")
        sources = [f"- {b}, {ref.model}: {ref.overall} ({ref.source})"
                   for b in extended for ref in BENCHMARKS[b].REFERENCE_SCORES]  # fmt: skip
        if sources:
            md.append("Sources of the published rows:")
            md.extend(sources)
            md.append("")

    md.append("## Per-type scores")
    md.append("")
    models = list(results)
    for bench in BENCHMARKS:
        present = [m for m in models if bench in results[m]]
        if not present:
            continue
        types: list[str] = []
        for m in present:
            for t in results[m][bench].get("per_type", {}):
                if t not in types:
                    types.append(t)
        order = list(BENCHMARKS[bench].report_types)
        types.sort(key=lambda t: order.index(t) if t in order else len(order))
        rows = [[t, *[_fmt(results[m][bench].get("per_type", {}).get(t)) for m in present]] for t in types]
        groups: list[str] = []
        for m in present:
            for g in results[m][bench].get("groups", {}):
                if g not in groups:
                    groups.append(g)
        rows += [[f"*{g}*", *[_fmt(results[m][bench].get("groups", {}).get(g)) for m in present]] for g in groups]
        rows.append(["**overall**", *[_fmt(results[m][bench].get("overall")) for m in present]])
        rows.append(["n scored", *[str(results[m][bench].get("n", DASH)) for m in present]])
        rows.append(["skipped (missing media)", *[str(results[m][bench].get("n_skipped_missing_media", 0)) for m in present]])
        md.append(f"### {bench}")
        md.append("")
        md.append(_md_table(["Type", *present], rows))
        md.append("")

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "source", "scorer", "prompt_kind", *labels, *extended])
    for r in rows_csv:
        writer.writerow(["" if v is None else v for v in r])
    return "\n".join(md), buf.getvalue()


def write_report(
    results_dir: str | Path,
    output_dir: str | Path | None = None,
    scorer: str | None = None,
    preface: str = "",
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.csv`` for the runs under ``results_dir``; returns both paths.

    ``preface`` (markdown) goes right under the title: the demo's learning table
    (:func:`spatialladder.demo.learning.learning_preface`; the report never imports the demo)."""
    results = collect_results(results_dir, scorer=scorer)
    md, csv_text = render_report(results)
    if preface:
        title, _, rest = md.partition("\n")
        md = f"{title}\n\n{preface}{rest}"
    out = Path(output_dir) if output_dir is not None else Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = out / "report.md", out / "report.csv"
    md_path.write_text(md, encoding="utf-8")
    csv_path.write_text(csv_text, encoding="utf-8")
    return md_path, csv_path
