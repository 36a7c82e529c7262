"""Runner pieces without generation (resume files, merge, missing media up front, report), plus an
in-process tiny-model run that skips missing media and checks batched == unbatched generation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spatialladder.evaluation.benchmarks import BENCHMARKS
from spatialladder.evaluation.fixtures import make_fixtures
from spatialladder.evaluation.report import PAPER_ROWS, main_row, render_report
from spatialladder.evaluation.runner import (
    EXIT_MISSING_MEDIA,
    _repair_tail,
    done_doc_ids,
    merge_rank_files,
    parse_args,
    read_jsonl_tolerant,
    run,
)

SMALL = ["--num-frames", "4", "--min-pixels", str(4 * 28 * 28), "--max-pixels", str(64 * 28 * 28),
         "--max-new-tokens", "4"]  # fmt: skip


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-fixtures-runner")
    make_fixtures(root, seed=1, per_type=1)
    return root


def test_tolerant_reader_and_tail_repair(tmp_path: Path) -> None:
    f = tmp_path / "predictions.rank0.jsonl"
    f.write_text('{"doc_id": "1", "prediction": "A"}\n{"doc_id": "2", "prediction": "B"}\n{"doc_id": "3", "pre')
    records, truncated = read_jsonl_tolerant(f)
    assert [r["doc_id"] for r in records] == ["1", "2"] and truncated
    _repair_tail(f)
    assert f.read_text().endswith('"B"}\n')
    assert read_jsonl_tolerant(f) == (records, False)
    f.write_text('{"doc_id": "1"}\n{broken\n{"doc_id": "2"}\n')
    with pytest.raises(RuntimeError, match=r"rank0.jsonl:2"):
        read_jsonl_tolerant(f)


def test_merge_sorts_dedups_and_requires_every_doc(tmp_path: Path) -> None:
    (tmp_path / "predictions.rank0.jsonl").write_text(
        "".join(json.dumps({"doc_id": d, "prediction": p}) + "\n" for d, p in [("10", "x"), ("2", "y")])
    )
    (tmp_path / "predictions.rank1.jsonl").write_text(
        "".join(json.dumps({"doc_id": d, "prediction": p}) + "\n" for d, p in [("1", "z"), ("2", "dup")])
        + '{"doc_id": "7", "predi'
    )
    assert done_doc_ids(tmp_path) == {"10", "2", "1"}
    merged = merge_rank_files(tmp_path, ["1", "2", "10"])
    assert [(r["doc_id"], r["prediction"]) for r in merged] == [("1", "z"), ("2", "y"), ("10", "x")]
    with pytest.raises(RuntimeError, match="no prediction"):
        merge_rank_files(tmp_path, ["1", "2", "10", "7"])


def test_parse_args_data_roots_and_models(tmp_path: Path) -> None:
    cfg = parse_args(["--model", str(tmp_path / "run" / "checkpoint-400"), "--model", "base=Qwen/Qwen2.5-VL-3B-Instruct",
                      "--data-root", "/data", "--data-root", "spbench=/sp", "--data-root", "CV-Bench=/cv",
                      "--output-dir", str(tmp_path), "--benchmarks", "all"])  # fmt: skip
    assert cfg.models == [("run-checkpoint-400", str(tmp_path / "run" / "checkpoint-400")),
                          ("base", "Qwen/Qwen2.5-VL-3B-Instruct")]  # fmt: skip
    assert cfg.data_roots["VSI-Bench"] == Path("/data") and cfg.data_roots["CV-Bench"] == Path("/cv")
    assert cfg.data_roots["SPBench-SI"] == cfg.data_roots["SPBench-MV"] == Path("/sp")
    assert cfg.max_pixels == 512 * 28 * 28 and cfg.prompt_kind == "thinking" and cfg.limit is None
    assert cfg.generation_params()["do_sample"] is False
    with pytest.raises(SystemExit):
        parse_args(["--model", "a", "--output-dir", "x", "--benchmarks", "VSI-Bench", "--data-root", "CV-Bench=/cv"])


def test_missing_media_listed_up_front(fx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(fx, data)
    vsi_docs = BENCHMARKS["VSI-Bench"].load_docs(data)
    video = vsi_docs[0]["_media"][0].path
    video.unlink()
    lost_vsi = sorted(d["doc_id"] for d in vsi_docs if d["_media"][0].path == video)
    vs_docs = BENCHMARKS["ViewSpatial-Bench"].load_docs(data)
    vs_docs[-1]["_media"][0].path.unlink()
    out = tmp_path / "out"
    cfg = parse_args(["--model", str(tmp_path / "no-such-model"), "--data-root", str(data),
                      "--output-dir", str(out), *SMALL])  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        run(cfg)  # fails before any model load: the model path does not even exist
    assert exc.value.code == EXIT_MISSING_MEDIA
    err = capsys.readouterr().err
    listed = json.loads((out / "missing_media.json").read_text())
    assert sorted(x["doc_id"] for x in listed["VSI-Bench"]) == lost_vsi
    assert [x["doc_id"] for x in listed["ViewSpatial-Bench"]] == [vs_docs[-1]["doc_id"]]
    for doc_id in lost_vsi:
        assert f"VSI-Bench doc {doc_id}: {video}" in err
    assert "--skip-missing-media" in err
    assert not (out / "no-such-model").exists()  # nothing generated


def _fake_scores(bench: str, overall: float, groups: dict[str, float]) -> dict[str, object]:
    return {"benchmark": bench, "scorer": "official", "n": 3, "overall": overall, "per_type": {}, "groups": groups,
            "prompt_kind": "thinking", "limit": None, "n_skipped_missing_media": 0, "n_docs": 3}  # fmt: skip


def test_report_layout_with_paper_rows_and_dashes() -> None:
    results = {"m": {
        "VSI-Bench": _fake_scores("VSI-Bench", 30.0, {"NQ": 20.0, "MCQ": 40.0}),
        "SPBench-SI": _fake_scores("SPBench-SI", 50.0, {"NQ": 50.0, "MCQ": 50.0}),
        "CV-Bench": _fake_scores("CV-Bench", 70.0, {"2D": 60.0, "3D": 80.0}),
    }}  # fmt: skip
    row = main_row(results["m"])
    assert row["VSI NQ"] == 20.0 and row["CV Avg"] == 70.0 and row["SPAR Low"] is None
    assert row["In-domain Overall"] is None  # SPB-MV missing: no overall of a partial group
    md, csv_text = render_report(results)
    assert "Qwen2.5-VL-3B (base) *(paper)*" in md and "SpatialLadder-3B *(paper)*" in md
    assert "| m (official) | 20.0 | 40.0 | 30.0 | 50.0 | 50.0 | 50.0 | – | – | – | – | 60.0 | 80.0 | 70.0 |" in md
    assert "`official`" in md
    lines = csv_text.splitlines()
    assert lines[0].startswith("model,source,scorer,prompt_kind,VSI NQ,VSI MCQ,VSI Avg")
    assert lines[1].startswith("Qwen2.5-VL-3B (base),paper,") and len(lines) == 4
    full = {b: _fake_scores(b, 40.0, {}) for b in BENCHMARKS}
    assert main_row(full)["In-domain Overall"] == 40.0 and main_row(full)["Out-of-domain Overall"] == 40.0
    assert PAPER_ROWS["SpatialLadder-3B"]["In-domain Overall"] == 62.3


@pytest.mark.slow
def test_skip_missing_media_counts_and_reports(fx: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(fx, data)
    docs = BENCHMARKS["SPBench-MV"].load_docs(data)
    gone = docs[1]["_media"][2].path
    gone.unlink()
    lost = [d["doc_id"] for d in docs if gone in [m.path for m in d["_media"]]]
    out = tmp_path / "out"
    cfg = parse_args(["--model", f"tiny={tiny_model_dir}", "--data-root", str(data), "--output-dir", str(out),
                      "--benchmarks", "SPBench-MV CV-Bench", "--skip-missing-media", "--batch-size", "3",
                      *SMALL])  # fmt: skip
    results = run(cfg)
    s = results["tiny"]["SPBench-MV"]
    assert s["n_skipped_missing_media"] == len(lost) == 1 and s["skipped_doc_ids"] == lost
    assert s["n"] == len(docs) - 1 and s["n_docs"] == len(docs)
    merged = [json.loads(x) for x in (out / "tiny" / "SPBench-MV" / "predictions.jsonl").read_text().splitlines()]
    assert lost[0] not in {r["doc_id"] for r in merged}
    report = (out / "report.md").read_text()
    assert f"1 of {len(docs)} docs skipped for missing media" in report

    # batched generation (batch 3, left padding) gives the same replies as one doc at a time
    cfg1 = parse_args(["--model", f"tiny={tiny_model_dir}", "--data-root", str(data), "--output-dir",
                       str(tmp_path / "out1"), "--benchmarks", "CV-Bench", "--batch-size", "1", "--no-report",
                       *SMALL])  # fmt: skip
    run(cfg1)
    batched = (out / "tiny" / "CV-Bench" / "predictions.jsonl").read_text().splitlines()
    single = (tmp_path / "out1" / "tiny" / "CV-Bench" / "predictions.jsonl").read_text().splitlines()
    assert [(json.loads(a)["doc_id"], json.loads(a)["prediction"]) for a in batched] == [
        (json.loads(b)["doc_id"], json.loads(b)["prediction"]) for b in single
    ]
