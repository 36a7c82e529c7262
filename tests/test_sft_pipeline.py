"""End to end on CPU: the demo ladder via run_scripts/, resume after SIGKILL, 2-process gloo,
refusals and fail-fast errors. The tiny model and synthetic data are built by the scripts."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("stage1_grounding", "stage2_spatial", "coldstart")
LOSS_RATIO = 0.8  # last logged training loss must be below this fraction of the first


def _run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 1500
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def _losses(stage_dir: Path) -> list[float]:
    state = json.loads((stage_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def _done(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "DONE").read_text())


@pytest.fixture(scope="session")
def demo_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``DEMO=1 run_scripts/run_all.sh`` once per session (shared by xdist workers via a lock)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's directory, common to all xdist workers
    work = root / "sft-demo-chain"
    with FileLock(str(root / "sft-demo-chain.lock")):
        if not (work / "coldstart" / "DONE").is_file():
            t0 = time.perf_counter()
            result = _run(["bash", "run_scripts/run_all.sh"], {"DEMO": "1", "WORK_DIR": str(work)})
            (root / "sft-demo-chain.log").write_text(result.stdout + result.stderr)
            assert result.returncode == 0, result.stderr[-4000:]
            (work / "chain_seconds").write_text(f"{time.perf_counter() - t0:.1f}")
    return work


@pytest.mark.slow
def test_demo_ladder_trains_each_stage(demo_chain: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from spatialladder.training.modeling import checkpoint_problems

    previous = demo_chain / "tiny-qwen25vl"
    for stage in STAGES:
        out = demo_chain / stage
        info = _done(out)
        assert info["base_model"] == str(previous)  # each stage starts from the one before
        losses = _losses(out)
        assert len(losses) >= 20 and info["global_step"] == 32
        assert losses[-1] < LOSS_RATIO * losses[0], (stage, losses[0], losses[-1])
        assert checkpoint_problems(out) == []  # final model + processor, loadable as the next input
        previous = out
    final = demo_chain / "coldstart"
    AutoProcessor.from_pretrained(final)
    AutoModelForImageTextToText.from_pretrained(final)


@pytest.mark.slow
def test_rerun_skips_finished_stages(demo_chain: Path) -> None:
    stamps = {s: (demo_chain / s / "DONE").stat().st_mtime_ns for s in STAGES}
    result = _run(["bash", "run_scripts/run_all.sh"], {"DEMO": "1", "WORK_DIR": str(demo_chain)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (demo_chain / "stage3_grpo" / "DONE").is_file()  # run_all.sh chains GRPO after cold start
    assert result.stderr.count("already finished") == len(STAGES) + 1
    assert "recipe configs/recipes/demo" not in result.stderr  # nothing was launched
    assert {s: (demo_chain / s / "DONE").stat().st_mtime_ns for s in STAGES} == stamps


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_to_the_same_end(
    demo_chain: Path, tmp_path: Path, check_resumed_equals_uninterrupted
) -> None:
    out = tmp_path / "stage1"
    env = {**os.environ, "DEMO": "1", "WORK_DIR": str(demo_chain), "OUTPUT_DIR": str(out)}
    cmd = ["bash", "run_scripts/stage1_grounding.sh"]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 300
        while not glob.glob(str(out / "checkpoint-*" / "trainer_state.json")):
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole launch: bash, accelerate, the trainer
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "DONE").exists()
    checkpoint = sorted(glob.glob(str(out / "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1]))[0]

    result = _run(cmd, {"DEMO": "1", "WORK_DIR": str(demo_chain), "OUTPUT_DIR": str(out)})
    assert result.returncode == 0, result.stderr[-4000:]
    resumed = _done(out)["resumed_from"]
    assert resumed is not None and Path(resumed).name.startswith("checkpoint-")
    assert int(Path(resumed).name.split("-")[1]) >= int(Path(checkpoint).name.split("-")[1])
    reference = demo_chain / "stage1_grounding"
    assert _done(out)["global_step"] == _done(reference)["global_step"] == 32
    # The resumed run continues the same trajectory: every weight, the optimizer, schedule and RNG
    # state and the logged losses equal the uninterrupted run's, bit for bit.
    figures = check_resumed_equals_uninterrupted(reference, out, demo_chain / "tiny-qwen25vl", final_step=32)
    print(f"SFT, 1 process, killed and resumed from {Path(resumed).name}: {figures}")
    assert _losses(out) == _losses(reference)
    # DONE's train_loss is the whole run's mean, not only the steps since the resume.
    assert _done(out)["train_loss"] == pytest.approx(_done(reference)["train_loss"], rel=1e-12)


@pytest.mark.slow
def test_two_process_cpu_launch(demo_chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {"DEMO": "1", "WORK_DIR": str(demo_chain), "NUM_PROCESSES": "2", "OUTPUT_DIR": str(out),
           "MODEL": str(demo_chain / "stage1_grounding")}  # fmt: skip
    # stage 2 data: every rank gets single-image, 8-view and video samples
    result = _run(["bash", "run_scripts/stage2_spatial.sh", "--max_steps", "3", "--save_strategy", "no"], env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "2 process(es)" in result.stderr
    info = _done(out)
    assert info["num_processes"] == 2 and info["global_step"] == 3


@pytest.mark.slow
def test_two_process_resume_is_bit_identical(
    tiny_model_dir: Path, synthetic_data_dir: Path, tmp_path: Path, check_resumed_equals_uninterrupted
) -> None:
    """2 gloo ranks, interrupted at checkpoint-3 (inside the second epoch: 8 samples, 4 per step)."""
    env = {
        "RECIPE": "configs/recipes/demo/stage2_spatial.yaml",
        "MODEL": str(tiny_model_dir),
        "NUM_PROCESSES": "2",
    }
    args = ["--data_files", str(synthetic_data_dir / "spld_spatial_data.jsonl"),
            "--media_root", str(synthetic_data_dir / "media"), "--max_samples", "8", "--max_steps", "4",
            "--save_steps", "3", "--save_total_limit", "3"]  # fmt: skip
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    result = _run(["bash", "run_scripts/stage2_spatial.sh", *args], {**env, "OUTPUT_DIR": str(uninterrupted)})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    resumed.mkdir()
    shutil.copytree(uninterrupted / "checkpoint-3", resumed / "checkpoint-3")  # what a killed run leaves
    result = _run(["bash", "run_scripts/stage2_spatial.sh", *args], {**env, "OUTPUT_DIR": str(resumed)})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    info = _done(resumed)
    assert info["num_processes"] == 2 and info["resumed_from"].endswith("checkpoint-3")
    figures = check_resumed_equals_uninterrupted(uninterrupted, resumed, tiny_model_dir, final_step=4)
    print(f"SFT, 2 processes: {figures}")
    assert _losses(resumed) == _losses(uninterrupted)  # restored history (steps 1-3) + step 4
    assert info["train_loss"] == pytest.approx(_done(uninterrupted)["train_loss"], rel=1e-12)


@pytest.mark.slow
def test_lora_run_saves_merged_model_and_adapter(demo_chain: Path, tmp_path: Path) -> None:
    from spatialladder.training.modeling import checkpoint_problems

    out = tmp_path / "lora"
    result = _run(
        [sys.executable, "-m", "spatialladder.training.sft", "--config", "configs/recipes/demo/stage1_grounding.yaml",
         "--model_name_or_path", str(demo_chain / "tiny-qwen25vl"), "--output_dir", str(out),
         "--data_files", str(demo_chain / "synthetic" / "spld_grounding_data.jsonl"),
         "--media_root", str(demo_chain / "synthetic" / "media"),
         "--use_peft", "true", "--lora_r", "4", "--freeze_vision_tower", "true",
         "--max_steps", "2", "--save_strategy", "no"],
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    info = _done(out)
    assert info["lora"] and info["merged"]
    assert checkpoint_problems(out) == []  # merged weights + processor: a normal checkpoint
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "LORA.md").is_file()


# ------------------------------------------------------------------------------ refusals


def _stage_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"DEMO": "1", "WORK_DIR": str(tmp_path / "work"), **extra}


def test_stage_refuses_missing_or_incomplete_input(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = _run(["bash", "run_scripts/stage2_spatial.sh"], _stage_env(tmp_path, MODEL=str(missing)))
    assert result.returncode != 0
    assert "refusing to start" in result.stderr and f"{missing}: no such directory" in result.stderr

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    result = _run(["bash", "run_scripts/coldstart.sh"], _stage_env(tmp_path, MODEL=str(partial)))
    assert result.returncode != 0 and "refusing to start" in result.stderr
    assert "model weights missing" in result.stderr and "processor files missing" in result.stderr

    # The default input of stage 2 is WORK_DIR/stage1_grounding: an interrupted stage 1 (only
    # checkpoints, no final model) is refused too, naming it.
    (tmp_path / "work" / "stage1_grounding" / "checkpoint-8").mkdir(parents=True)
    result = _run(["bash", "run_scripts/stage2_spatial.sh"], _stage_env(tmp_path))
    assert result.returncode != 0 and f"{tmp_path / 'work' / 'stage1_grounding'}" in result.stderr
    assert "config.json missing" in result.stderr
    assert not (tmp_path / "work" / "stage2_spatial").exists()


def test_run_all_stops_at_first_failure(tmp_path: Path) -> None:
    result = _run(
        ["bash", "run_scripts/run_all.sh"],
        {"WORK_DIR": str(tmp_path / "work"), "MODEL": str(tmp_path / "absent-base")},
    )
    assert result.returncode != 0
    assert "[stage1_grounding] ERROR: refusing to start" in result.stderr
    assert "[stage2_spatial]" not in result.stderr and "[coldstart]" not in result.stderr


def _sft(*args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "spatialladder.training.sft", *args], timeout=300)


def _refused_before_loading(result: subprocess.CompletedProcess, out: Path) -> bool:
    """Exit 2 without loading the model (its log line) or creating the output directory."""
    log = result.stdout + result.stderr
    return (
        result.returncode == 2 and "Loading weights" not in log and "loaded " not in log and not out.exists()
    )


def test_bad_recipe_key_fails_fast_naming_it(tmp_path: Path) -> None:
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(
        (REPO / "configs/recipes/demo/stage1_grounding.yaml").read_text() + "learnig_rate: 1.0e-5\n"
    )
    result = _sft("--config", str(recipe))
    assert result.returncode == 2
    assert f"unknown key(s) in recipe {recipe}: learnig_rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_or_media_fails_fast_naming_it(
    tmp_path: Path, tiny_model_dir: Path, synthetic_data_dir: Path
) -> None:
    base = ["--config", "configs/recipes/demo/stage1_grounding.yaml", "--model_name_or_path", str(tiny_model_dir),
            "--output_dir", str(tmp_path / "out")]  # fmt: skip
    missing = tmp_path / "nope" / "spld_grounding_data.jsonl"
    result = _sft(*base, "--data_files", str(missing), "--media_root", str(synthetic_data_dir / "media"))
    assert _refused_before_loading(result, tmp_path / "out")
    assert f"data file not found: {missing}" in result.stderr

    data = str(synthetic_data_dir / "spld_grounding_data.jsonl")
    result = _sft(*base, "--data_files", data, "--media_root", str(tmp_path / "no-media"))
    assert _refused_before_loading(result, tmp_path / "out")
    assert f"media_root is not a directory: {tmp_path / 'no-media'}" in result.stderr

    # A broken row is reported as FILE:LINE: FIELD before any model is loaded.
    bad = tmp_path / "spld_grounding_data.jsonl"
    lines = Path(data).read_text().splitlines()
    row = json.loads(lines[2])
    row["answer"][0]["bbox_2d"] = [5, 5, 4000, 10]
    row["image"] = ["scene0000_00/missing.jpg"]
    bad.write_text("\n".join([*lines[:2], json.dumps(row), *lines[3:]]) + "\n")
    result = _sft(*base, "--data_files", str(bad), "--media_root", str(synthetic_data_dir / "media"))
    assert _refused_before_loading(result, tmp_path / "out")
    assert f"{bad}:3: image[0]: media file not found" in result.stderr
