"""Adding a benchmark is one module plus one registry line: a toy benchmark written as ONE file is
registered, loaded, and scored / aggregated through eval/score.py's code path with hand-worked values."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from spatialladder.evaluation.benchmarks import (
    BENCHMARKS,
    Benchmark,
    ReferenceScore,
    get_benchmark,
    register,
    resolve_benchmarks,
)
from spatialladder.evaluation.report import extended_benchmarks, render_report
from spatialladder.evaluation.results import score_records

REPO_ROOT = Path(__file__).resolve().parents[1]

# The whole benchmark: what a new module under spatialladder/evaluation/benchmarks/ would hold.
TOY_MODULE = '''
import json
from pathlib import Path

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import numeric_target, str_field, to_float
from spatialladder.metrics import mean_relative_accuracy


class ToyBench(base.Benchmark):
    NAME = "Toy-Bench"
    ALIASES = ("toy",)
    QUESTION_TYPES = ("color", "count")
    NUMERIC_TYPES = frozenset({"count"})
    REQUIRED_FIELDS = ("question_type", "answer")

    def load_docs(self, data_root, *, limit=None, seed=0):
        docs = json.loads((Path(data_root) / "toy.json").read_text())
        for doc in docs:
            doc["benchmark"] = self.NAME
            doc["_media"] = []
        base.assign_doc_ids(docs, [d["id"] for d in docs])
        return base.seeded_subset(docs, limit, seed)

    def prompt_text(self, doc, prompt_kind):
        base.check_prompt_kind(prompt_kind)
        return doc["question"]

    def target(self, record):
        if self.question_type(record) in self.NUMERIC_TYPES:
            return numeric_target(record, "answer")
        return str_field(record, "answer").lower()

    def score_official(self, text, target):
        if isinstance(target, float):
            return mean_relative_accuracy(to_float(text.strip()), target)
        return 1.0 if text.strip().lower() == target else 0.0
'''

TOY_DOCS = [
    {"id": 1, "question_type": "color", "question": "Colour of the box?", "answer": "red"},
    {"id": 2, "question_type": "color", "question": "Colour of the cup?", "answer": "blue"},
    {"id": 3, "question_type": "count", "question": "How many chairs?", "answer": "10"},
    {"id": 4, "question_type": "count", "question": "How many lamps?", "answer": "10"},
    {"id": 5, "question_type": "color", "question": "Colour of the pen?", "answer": "red"},
]
REPLIES = ["Red", "<answer>green</answer>", "<answer>12</answer>", "<answer>10</answer> <answer>12</answer>", "red"]


def _load_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[Benchmark]:
    (tmp_path / "toy_bench.py").write_text(TOY_MODULE)
    module = _load_file(tmp_path / "toy_bench.py", "toy_bench")
    bench = register(module.ToyBench())
    try:
        yield bench
    finally:
        BENCHMARKS.pop(bench.NAME, None)


@pytest.fixture(scope="module")
def score_cli() -> ModuleType:
    return _load_file(REPO_ROOT / "eval" / "score.py", "eval_score_cli")


def _predictions(toy: Benchmark, tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "toy.json").write_text(json.dumps(TOY_DOCS))
    docs = toy.load_docs(tmp_path / "data")
    assert [d["doc_id"] for d in docs] == ["1", "2", "3", "4", "5"]
    lines = [{**toy.record(d), "prediction": reply} for d, reply in zip(docs, REPLIES, strict=True)]
    assert all("_media" not in line for line in lines)
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_toy_benchmark_from_one_file_scores_through_eval_score(
    toy: Benchmark, tmp_path: Path, score_cli: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert get_benchmark("toybench") is toy and get_benchmark("TOY") is toy
    assert resolve_benchmarks("toy vsi") == ["VSI-Bench", "Toy-Bench"]
    preds = _predictions(toy, tmp_path)
    per_sample = tmp_path / "scored.jsonl"

    # official: policy 1 takes the LAST answer tag. Per sample: "Red" == red -> 1; green != blue -> 0;
    # MRA(12, 10): relative error 0.2 passes thresholds 0.50..0.75 (6 of 10; 0.2 <= 1 - 0.8 is false
    # in float64) -> 0.6; the last tag "12" again -> 0.6; "red" -> 1. color 2/3, count 60, overall
    # = the sample mean (1+0+.6+.6+1)/5 = 64 (the mean of the type means would be 63.3).
    assert score_cli.main(["--benchmark", "Toy-Bench", "--predictions", str(preds),
                           "--per-sample", str(per_sample)]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert (out["benchmark"], out["scorer"], out["n"], out["groups"]) == ("Toy-Bench", "official", 5, {})
    assert out["overall"] == pytest.approx(64.0)
    assert out["per_type"] == pytest.approx({"color": 200 / 3, "count": 60.0})
    assert (out["color"], out["count"]) == (out["per_type"]["color"], out["per_type"]["count"])
    scores = [json.loads(line)["score"] for line in per_sample.read_text().splitlines()]
    assert scores == pytest.approx([1.0, 0.0, 0.6, 0.6, 1.0])

    # spatialladder: the release takes the FIRST complete tag, so reply 4 reads "10" -> 1.0;
    # count (0.6 + 1) / 2 = 80, overall (1+0+.6+1+1)/5 = 72. The toy keeps the official rule.
    assert score_cli.main(["--benchmark", "Toy-Bench", "--predictions", str(preds), "--scorer", "spatialladder"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scorer"] == "spatialladder" and out["overall"] == pytest.approx(72.0)
    assert out["per_type"] == pytest.approx({"color": 200 / 3, "count": 80.0})

    # The runner's scoring (results.score_records) reaches the toy by name too.
    records = [json.loads(line) for line in preds.read_text().splitlines()]
    summary, rows = score_records("Toy-Bench", records, "official")
    assert summary["overall"] == pytest.approx(64.0)
    assert [(r["doc_id"], r["question_type"], r["score"]) for r in rows] == [
        ("1", "color", 1.0), ("2", "color", 0.0), ("3", "count", 0.6), ("4", "count", 0.6), ("5", "color", 1.0)
    ]  # fmt: skip


def test_toy_bad_record_names_file_line_and_field(
    toy: Benchmark, tmp_path: Path, score_cli: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "bad.jsonl"
    rows = [{"question_type": "color", "answer": "red", "prediction": "red"},
            {"question_type": "size", "answer": "big", "prediction": "big"}]  # fmt: skip
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert score_cli.main(["--benchmark", "Toy-Bench", "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{preds}:2: question_type: unknown question_type 'size' for Toy-Bench"), err


def test_register_refuses_clashes_and_bad_declarations(toy: Benchmark) -> None:
    with pytest.raises(ValueError, match=r"\['vsi'\] is taken by VSI-Bench"):

        class Clash(type(toy)):  # type: ignore[misc]
            NAME = "Other-Bench"
            ALIASES = ("VSI",)

        register(Clash())
    with pytest.raises(ValueError, match="NUMERIC_TYPES"):

        class BadNumeric(type(toy)):  # type: ignore[misc]
            NAME = "Bad-Bench"
            ALIASES = ()
            NUMERIC_TYPES = frozenset({"weight"})

        register(BadNumeric())
    with pytest.raises(TypeError, match="REQUIRED_FIELDS"):

        class NoFields(Benchmark):
            NAME = "Empty-Bench"
            QUESTION_TYPES = ("a",)

        register(NoFields())
    assert list(BENCHMARKS)[-1] == "Toy-Bench" and "Other-Bench" not in BENCHMARKS


def test_no_benchmark_or_scorer_dispatch_outside_benchmark_modules() -> None:
    """Benchmark knowledge lives in benchmarks/<name>.py; base.py is the one place picking the scorer."""
    allowed = {REPO_ROOT / "spatialladder" / "evaluation" / "benchmarks" / "base.py"}
    pattern = re.compile(r"\b(benchmark|bench_name|scorer)\s*[!=]=|\.NAME\s*[!=]=|[!=]=\s*\"(VSI|SPBench|CV|SPAR|ViewSpatial|MMSI|MindCube)")
    files = [*(REPO_ROOT / "spatialladder" / "evaluation").rglob("*.py"), *(REPO_ROOT / "eval").glob("*.py")]
    offenders = []
    for path in files:
        benchmark_module = path.parent.name == "benchmarks" and path.name not in ("__init__.py", "base.py")
        if benchmark_module or path in allowed:
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []


def _scores(bench: str, overall: float | None) -> dict[str, object]:
    return {"benchmark": bench, "scorer": "official", "n": 4, "overall": overall, "per_type": {}, "groups": {},
            "prompt_kind": "official", "limit": None, "n_skipped_missing_media": 0}  # fmt: skip


def test_report_extended_table_comes_from_the_registry(toy: Benchmark) -> None:
    """A benchmark outside the paper's layout gets a column in the extended table, with the published
    rows and sources its module declares, and nothing in report.py names it."""

    class RefToy(type(toy)):  # type: ignore[misc]
        NAME = "Ref-Bench"
        ALIASES = ()
        REFERENCE_SCORES = (
            ReferenceScore("Qwen2.5-VL-3B-Instruct", 41.25, "Toy et al., table 2"),
            ReferenceScore("Oracle", 100.0, "by construction"),
        )

    ref = register(RefToy())
    try:
        results = {
            "m1": {"VSI-Bench": _scores("VSI-Bench", 30.0), "Ref-Bench": _scores("Ref-Bench", 12.345),
                   "MMSI-Bench": _scores("MMSI-Bench", 25.0)},
            "m2": {"Toy-Bench": _scores("Toy-Bench", None)},
        }  # fmt: skip
        assert extended_benchmarks(results) == ["MMSI-Bench", "Toy-Bench", "Ref-Bench"]  # registry order
        md, csv_text = render_report(results)
    finally:
        BENCHMARKS.pop(ref.NAME, None)
    assert md.index("## Main table") < md.index("## Extended benchmarks") < md.index("## Per-type scores")
    assert "| Model | MMSI-Bench | Toy-Bench | Ref-Bench |" in md
    # Published rows merge by model across benchmarks (MMSI's module declares 3B, 7B and chance).
    assert "| Qwen2.5-VL-3B-Instruct *(published)* | 26.5 | – | 41.2 |" in md
    assert "| Oracle *(published)* | – | – | 100.0 |" in md
    assert "| Random guessing *(published)* | 25.0 | – | – |" in md
    assert "| m1 (official) | 25.0 | – | 12.3 |" in md and "| m2 (official) | – | – | – |" in md
    assert "- Ref-Bench, Qwen2.5-VL-3B-Instruct: 41.25 (Toy et al., table 2)" in md
    assert "- MMSI-Bench, Qwen2.5-VL-3B-Instruct: 26.5 (InternRobotics/MMSI-Bench README leaderboard)" in md
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert rows[0][-3:] == ["MMSI-Bench", "Toy-Bench", "Ref-Bench"]
    by_model = {(r[0], r[1]): r for r in rows[1:]}
    assert by_model[("m1", "evaluated")][-3:] == ["25.0", "", "12.345"]
    assert by_model[("Oracle", "published")][4:] == [""] * (len(rows[0]) - 5) + ["100.0"]
    assert by_model[("SpatialLadder-3B", "paper")][-3:] == ["", "", ""]
    assert all(len(r) == len(rows[0]) for r in rows)

    # Only the paper's benchmarks evaluated: no extended section, the CSV keeps the paper's columns.
    md, csv_text = render_report({"m1": {"VSI-Bench": _scores("VSI-Bench", 30.0)}})
    assert "Extended" not in md and csv_text.splitlines()[0].endswith(",Out-of-domain Overall")
