"""Runner pieces without generation (command line, resume files, merge, missing media up front, report,
shard by video), in-process tiny-model runs (missing media skipped, batched == unbatched generation, the
checkpoint's repetition penalty), and real processes: the output-folder lock and ranks that die with
their launcher."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spatialladder.demo.benchmark_fixtures import make_fixtures
from spatialladder.evaluation.benchmarks import BENCHMARKS
from spatialladder.evaluation.ranks import LAUNCHER_PID_ENV, LOCK_FILE, OutputLock
from spatialladder.evaluation.report import PAPER_ROWS, main_row, render_report
from spatialladder.evaluation.runner import (
    EXIT_LOCKED,
    EXIT_MISSING_MEDIA,
    EvalConfig,
    _repair_tail,
    done_doc_ids,
    merge_rank_files,
    parse_args,
    read_jsonl_tolerant,
    run,
    shard_docs,
    shard_indices,
)
from spatialladder.geometry import ResizeRule

REPO = Path(__file__).resolve().parents[1]

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


# ------------------------------------------------------------------------------------------------
# Command line (EvalConfig through HfArgumentParser)
# ------------------------------------------------------------------------------------------------
def test_command_line_flags_fill_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--output-dir", str(tmp_path), "--data-root", "/data"]
    cfg = parse_args([*base, "--model", "a=/m/a", "--model", "b=/m/b", "--benchmarks", "VSI-Bench,CV-Bench",
                      "--prompt-kind", "direct", "--num-frames", "8", "--min-pixels", "3136", "--max-pixels", "12544",
                      "--max-new-tokens", "16", "--batch-size", "2", "--no-report", "--blind", "--num-samples", "3",
                      "--temperature", "0.7", "--repetition-penalty", "1.2", "--limit", "5", "--skip-missing-media",
                      "--frame-cache-dir", "", "--num-processes", "2"])  # fmt: skip
    assert cfg.models == [("a", "/m/a"), ("b", "/m/b")] and cfg.benchmarks == ["VSI-Bench", "CV-Bench"]
    assert (cfg.prompt_kind, cfg.num_frames, cfg.min_pixels, cfg.max_pixels) == ("direct", 8, 3136, 12544)
    assert (cfg.max_new_tokens, cfg.batch_size, cfg.limit, cfg.num_samples) == (16, 2, 5, 3)
    assert not cfg.report and cfg.blind and cfg.skip_missing_media and cfg.frame_cache is None
    gen = cfg.generation_params()
    assert gen["repetition_penalty"] == 1.2 and gen["do_sample"] and gen["num_return_sequences"] == 3
    assert cfg.for_model("/m/a") is cfg  # an explicit penalty is never replaced by the checkpoint's

    default = parse_args([*base, "--model", "m"])
    assert default.report and not default.blind and default.repetition_penalty is None
    assert default.frame_cache == tmp_path / ".frame_cache" and default.benchmarks[0] == "VSI-Bench"
    for bad, flag in ((["--batch-size", "0"], "--batch-size"), (["--limit", "0"], "--limit"),
                      (["--model", "x=/other"], "collide"), (["--benchmarks", "NoSuchBench"], "NoSuchBench")):  # fmt: skip
        with pytest.raises(SystemExit) as err:
            parse_args([*base, "--model", "x=/m", *bad])
        assert flag in str(err.value)
    with pytest.raises(SystemExit):
        parse_args(["--output-dir", str(tmp_path), "--data-root", "/data"])  # --model is required
    capsys.readouterr()


# ------------------------------------------------------------------------------------------------
# Shard by video
# ------------------------------------------------------------------------------------------------
def test_shard_keeps_each_video_on_one_rank_and_balances_groups() -> None:
    # groups: a = {0, 1, 2}, c = {6, 7}, b = {3}, {4}, {5}; dealt largest first to the emptiest rank:
    # a -> r0 (3, 0), c -> r1 (3, 2), b -> r1 (3, 3), 4 -> r0 (tie: lowest rank) (4, 3), 5 -> r1 (4, 4)
    assert shard_indices(["a", "a", "a", "b", None, None, "c", "c"], 2) == [[0, 1, 2, 4], [3, 5, 6, 7]]
    assert shard_indices([None] * 7, 3) == [[i for i in range(7) if i % 3 == r] for r in range(3)]  # images
    assert shard_indices(["v"] * 4, 3) == [[0, 1, 2, 3], [], []]


def test_two_ranks_decode_each_video_once(fx: Path) -> None:
    from spatialladder.evaluation.media import FrameCache

    bench = BENCHMARKS["VSI-Bench"]
    docs = bench.load_docs(fx)
    videos = {m.path for d in docs for m in d["_media"]}
    assert len(videos) >= 2 and len(docs) > len(videos)
    decodes, seen = 0, []
    for rank in range(2):  # each rank with its own cache, as in separate processes
        cache = FrameCache(None, resize=ResizeRule(28, 4 * 28 * 28, 16 * 28 * 28))
        shard = shard_docs(docs, rank, 2)
        assert shard  # both ranks work
        for doc in shard:
            bench.build_request(doc, prompt_kind="thinking", num_frames=4, media=cache)
        decodes += cache.stats.decodes
        seen += [d["doc_id"] for d in shard]
    assert sorted(seen) == sorted(d["doc_id"] for d in docs)  # every doc once
    assert decodes == len(videos)


# ------------------------------------------------------------------------------------------------
# repetition_penalty: the checkpoint's by default, recorded, an explicit value wins
# ------------------------------------------------------------------------------------------------
def test_repetition_penalty_defaults_to_the_checkpoints(fx: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    from spatialladder.evaluation.runner import _generation_config, checkpoint_repetition_penalty, load_model

    instruct = tmp_path / "instruct-like"
    shutil.copytree(tiny_model_dir, instruct)
    gen_file = instruct / "generation_config.json"
    gen_file.write_text(json.dumps({**json.loads(gen_file.read_text()), "repetition_penalty": 1.05}))
    assert checkpoint_repetition_penalty(str(tiny_model_dir)) == 1.0  # the tiny model sets none
    assert checkpoint_repetition_penalty(str(instruct)) == 1.05
    assert checkpoint_repetition_penalty(str(tmp_path / "no-config")) == 1.0

    model, _ = load_model(str(instruct), torch.device("cpu"))
    settings = EvalConfig(output_dir=tmp_path)
    assert _generation_config(model, settings).repetition_penalty == 1.05  # unset: the model's own
    assert _generation_config(model, settings.for_model(str(instruct))).repetition_penalty == 1.05
    explicit = EvalConfig(output_dir=tmp_path, repetition_penalty=1.0)
    assert _generation_config(model, explicit).repetition_penalty == 1.0
    del model

    out = tmp_path / "out"
    args = ["--model", f"inst={instruct}", "--data-root", str(fx), "--output-dir", str(out), "--benchmarks",
            "CV-Bench", "--limit", "2", "--no-report", *SMALL]  # fmt: skip
    run(parse_args(args))
    bench_dir = out / "inst" / "CV-Bench"
    assert json.loads((bench_dir / "scores.json").read_text())["generation"]["repetition_penalty"] == 1.05
    assert json.loads((bench_dir / "run_config.json").read_text())["generation"]["repetition_penalty"] == 1.05
    lines = [json.loads(x) for x in (bench_dir / "predictions.jsonl").read_text().splitlines()]
    assert {x["generation"]["repetition_penalty"] for x in lines} == {1.05}
    with pytest.raises(SystemExit, match="repetition_penalty"):  # replies of another penalty never mix
        run(parse_args([*args, "--repetition-penalty", "1.0"]))


# ------------------------------------------------------------------------------------------------
# One run per output folder; ranks die with their launcher (real processes)
# ------------------------------------------------------------------------------------------------
HOLD_LOCK = (
    "import sys\nfrom spatialladder.evaluation.ranks import OutputLock\n"
    "OutputLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\nsys.stdin.read()\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (LAUNCHER_PID_ENV, "TORCHELASTIC_RUN_ID")}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_a_second_run_refuses_while_the_first_lives_and_takes_over_when_it_died(
    fx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        cfg = parse_args(["--model", str(tmp_path / "no-such-model"), "--data-root", str(fx),
                          "--output-dir", str(out), *SMALL])  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            run(cfg)
        assert exc.value.code == EXIT_LOCKED
        err = capsys.readouterr().err
        assert f"pid {holder.pid} " in err and "in use by another evaluation run" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # refused before writing anything
    finally:
        holder.kill()  # dies without releasing: its lock record stays in the file
        holder.wait()
    lock = OutputLock(out)
    stale = lock.acquire()  # the kernel dropped the dead holder's flock: taken over
    assert stale is not None and stale["pid"] == holder.pid
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert (out / LOCK_FILE).read_text() == "" and OutputLock(out).acquire() is None  # a clean release


RANK_DRIVER = (
    "import os, time\nfrom spatialladder.evaluation.ranks import rank_state\n"
    "state = rank_state()\nprint(f'rank {state.process_index} {os.getpid()}', flush=True)\n"
    "while True:\n    time.sleep(60)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["run_eval.sh", "torchrun"])
def test_ranks_die_with_their_launcher(tmp_path: Path, how: str) -> None:
    """SIGKILL the launcher of a 2-rank job: both ranks (which would otherwise wait forever) die too.
    ``run_eval.sh`` exports the launcher's pid before exec'ing it; a bare ``torchrun`` job relies on
    the rank's parent at start."""
    driver = tmp_path / "rank.py"
    driver.write_text(RANK_DRIVER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(port), str(driver)]  # fmt: skip
    if how == "run_eval.sh":  # the same two lines as eval/run_eval.sh
        cmd = ["bash", "-c", f'export {LAUNCHER_PID_ENV}=$$; exec "$@"', "launch", *torchrun]
    else:
        cmd = torchrun
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    assert launcher.stdout is not None
    pids: dict[int, int] = {}
    try:
        while len(pids) < 2:
            line = launcher.stdout.readline()
            assert line, "the ranks did not start"
            if line.startswith(b"rank "):  # libraries may log to stdout too (DeepSpeed's accelerator line)
                _, rank, pid = line.split()
                pids[int(rank)] = int(pid)
        launcher.kill()
        launcher.wait()
        # The ranks share the launcher's stdout: EOF means every rank has exited. The deadline only
        # guards against hanging the suite when they do not.
        fd = launcher.stdout.fileno()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready and not os.read(fd, 4096):
                break
        else:
            pytest.fail(f"ranks {pids} still running after their launcher was killed")
    finally:
        launcher.kill()  # a no-op when the test got that far; otherwise nothing of this test outlives it
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # only reached when the test fails: the ranks it started
        launcher.stdout.close()
