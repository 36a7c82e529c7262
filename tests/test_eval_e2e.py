"""End to end through eval/run_eval.sh with the tiny model on the miniature of every registered benchmark
(the paper's six and the extended ones): scores + report beside the paper rows and the published rows;
a 2-process run equals a 1-process run; a run killed midway and rerun ends with identical scores and no
duplicated or missing doc_ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spatialladder.demo.benchmark_fixtures import make_fixtures
from spatialladder.evaluation.benchmarks import BENCHMARKS
from spatialladder.evaluation.runner import shard_docs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "eval" / "run_eval.sh"
LIMIT = 2


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-fixtures-e2e")
    make_fixtures(root, seed=2, per_type=1)
    return root


def _cmd(model: Path, data: Path, out: Path, nproc: int, *extra: str) -> list[str]:
    return ["bash", str(SCRIPT), "--model", f"tiny={model}", "--benchmarks", "all", "--data-root", str(data),
            "--output-dir", str(out), "--num-processes", str(nproc), "--prompt-kind", "thinking",
            "--num-frames", "4", "--min-pixels", str(4 * 28 * 28), "--max-pixels", str(64 * 28 * 28),
            "--batch-size", "1", "--max-new-tokens", "6", "--scorer", "official", "--limit", str(LIMIT), *extra]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHON"] = sys.executable
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _predictions(out: Path, bench: str) -> list[tuple[str, str]]:
    lines = (out / "tiny" / bench / "predictions.jsonl").read_text().splitlines()
    return [(r["doc_id"], r["prediction"]) for r in map(json.loads, lines)]


def _scores(out: Path, bench: str) -> dict[str, object]:
    s = json.loads((out / "tiny" / bench / "scores.json").read_text())
    return {k: s[k] for k in ("n", "overall", "per_type", "groups", "scorer")}


@pytest.fixture(scope="module")
def reference(fx: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    _run(_cmd(tiny_model_dir, fx, out, 1))
    return out


def test_single_process_run_scores_every_benchmark_and_reports(reference: Path) -> None:
    assert {"VSI-Bench-Debiased", "MMSI-Bench", "MindCube-Tiny"} <= set(BENCHMARKS)
    for bench in BENCHMARKS:
        d = reference / "tiny" / bench
        scores = json.loads((d / "scores.json").read_text())
        assert scores["n"] == LIMIT and scores["scorer"] == "official" and scores["limit"] == LIMIT
        assert scores["overall"] is not None and scores["n_skipped_missing_media"] == 0
        preds = [json.loads(x) for x in (d / "predictions.jsonl").read_text().splitlines()]
        assert len({p["doc_id"] for p in preds}) == LIMIT
        assert all(p["generation"]["do_sample"] is False and p["prompt_kind"] == "thinking" for p in preds)
        assert len((d / "per_sample_scores.jsonl").read_text().splitlines()) == LIMIT
    report = (reference / "report.md").read_text()
    assert "Qwen2.5-VL-3B (base) *(paper)*" in report and "SpatialLadder-3B *(paper)*" in report
    assert "| tiny (official) |" in report and "### SPAR-Bench" in report
    extended = report[report.index("## Extended benchmarks"):report.index("## Per-type scores")]
    assert "| Model | VSI-Bench-Debiased | MMSI-Bench | MindCube-Tiny |" in extended
    assert "| Qwen2.5-VL-3B-Instruct *(published)* | 22.7 | 26.5 | 37.8 |" in extended
    tiny_row = next(line for line in extended.splitlines() if line.startswith("| tiny (official) |"))
    overalls = [json.loads((reference / "tiny" / b / "scores.json").read_text())["overall"]
                for b in ("VSI-Bench-Debiased", "MMSI-Bench", "MindCube-Tiny")]  # fmt: skip
    assert tiny_row == "| tiny (official) | " + " | ".join(f"{v:.1f}" for v in overalls) + " |"
    assert "### MindCube-Tiny" in report
    csv_lines = (reference / "report.csv").read_text().splitlines()
    assert csv_lines[0].endswith(",VSI-Bench-Debiased,MMSI-Bench,MindCube-Tiny")
    assert [line.split(",")[1] for line in csv_lines[1:]] == ["paper"] * 2 + ["published"] * 3 + ["evaluated"]
    assert csv_lines[-1].startswith("tiny,evaluated,official,thinking,")
    stats = json.loads((reference / "media_cache_stats.rank0.json").read_text())
    assert stats["decodes"] == len(stats["decoded_paths"])  # every video decoded once


def test_two_processes_match_one(reference: Path, fx: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out2"
    _run(_cmd(tiny_model_dir, fx, out, 2))
    videos = set()
    for bench in BENCHMARKS:
        docs = BENCHMARKS[bench].load_docs(fx, limit=LIMIT)
        videos |= {m.path for d in docs for m in d["_media"] if m.kind == "video"}
        with_docs = {r for r in (0, 1) if shard_docs(docs, r, 2)}  # the docs of one video stay on one rank
        assert {r for r in (0, 1) if (out / "tiny" / bench / f"predictions.rank{r}.jsonl").exists()} == with_docs
        assert _predictions(out, bench) == _predictions(reference, bench)
        assert _scores(out, bench) == _scores(reference, bench)
    assert (out / "tiny" / "CV-Bench" / "predictions.rank1.jsonl").exists()  # really sharded
    stats = [json.loads((out / f"media_cache_stats.rank{r}.json").read_text()) for r in (0, 1)]
    assert sum(s["decodes"] for s in stats) == len(videos)  # each video decoded once per run
    assert (out / "report.md").exists()


def test_killed_run_resumes_to_identical_scores(reference: Path, fx: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out-kill"
    proc = subprocess.Popen(_cmd(tiny_model_dir, fx, out, 1), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 180
    written = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            written = sum(len(p.read_text().splitlines()) for p in out.rglob("predictions.rank*.jsonl"))
            if written >= 5:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 5 <= written < LIMIT * len(BENCHMARKS)
    # Simulate a kill in the middle of a write as well: a truncated last line.
    rank_file = next(out.rglob("predictions.rank0.jsonl"))
    with open(rank_file, "a") as f:
        f.write('{"doc_id": "999", "prediction": "trunc')
    _run(_cmd(tiny_model_dir, fx, out, 1))
    for bench in BENCHMARKS:
        preds = _predictions(out, bench)
        ids = [d for d, _ in preds]
        assert len(ids) == len(set(ids)) == LIMIT
        assert preds == _predictions(reference, bench)
        assert _scores(out, bench) == _scores(reference, bench)
        raw = [json.loads(x)["doc_id"] for p in (out / "tiny" / bench).glob("predictions.rank*.jsonl")
               for x in p.read_text().splitlines() if x.endswith("}")]  # fmt: skip
        assert len(raw) == len(set(raw)) == LIMIT  # nothing generated twice
