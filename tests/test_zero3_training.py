"""DeepSpeed ZeRO-3 / ZeRO-2 for real: two gloo ranks on CPU, launched through run_scripts/_common.sh.

Every run goes through ``sl_launch`` (the stage scripts' launcher, so its hardware selection is
what is tested) with :mod:`tests.zero3_driver` as the entry point: the real SFT / GRPO entry point
with rows ordered so that the two ranks see different media on every step, a text-only rank
included (see ``RANK_PAIRS`` there). Each run is made once per session, shared by xdist workers
(file lock + result on disk), and reused by several tests.

DeepSpeed's CPU accelerator builds one communication op on first use (~2 min on 2 cores, then
cached under ~/.cache/torch_extensions); the session fixture builds it once before any launch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("deepspeed")

REPO = Path(__file__).resolve().parents[1]

SFT_RECIPE = "configs/recipes/demo/stage2_spatial.yaml"
GRPO_RECIPE = "configs/recipes/demo/stage3_grpo.yaml"
SFT_STEPS, SFT_SAVE = 8, 4
# Sequential sampler, one sample per rank and step: RANK_PAIRS decides what each rank sees.
SFT_ARGS = ["--train_sampling_strategy", "sequential", "--per_device_train_batch_size", "1",
            "--max_steps", str(SFT_STEPS), "--save_steps", str(SFT_SAVE)]  # fmt: skip
GRPO_STEPS, GRPO_SAVE = 4, 2
# One prompt x 2 generations per rank and step, prompts in RANK_PAIRS order; the driver's
# `char_share` reward varies within a group, so the weights move (demo rewards are all 0).
GRPO_ARGS = ["--shuffle_dataset", "false", "--num_generations", "2", "--gradient_accumulation_steps", "1",
             "--max_steps", str(GRPO_STEPS), "--save_steps", str(GRPO_SAVE), "--learning_rate", "1e-3",
             "--reward_funcs", "char_share", "--reward_weights", "1.0", "--sample_log_every", "0"]  # fmt: skip
LAUNCH_TIMEOUT = 420
ENGINE_LINE = re.compile(r"training engine: (.+)")


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def run_stage(
    data: Path,
    out: Path,
    kind: str,
    recipe: str,
    config: str,
    args: list[str],
    model: Path,
    timeout: float = LAUNCH_TIMEOUT,
    processes: int = 2,
) -> tuple[int | None, str]:
    """Launch ``tests.zero3_driver`` on ``processes`` ranks through ``sl_launch`` on the synthetic
    spatial rows in ``data``; returns (exit status or None when killed at the timeout, log). The whole
    process group is killed at the timeout (a rank stuck in a collective would otherwise hang forever)."""
    full_env = {
        **os.environ,
        "ZERO3_DRIVER_KIND": kind,
        "ACCELERATE_CONFIG": config,
        "NUM_PROCESSES": str(processes),
        "OMP_NUM_THREADS": "1",
    }
    entry_args = ["--config", recipe, "--model_name_or_path", str(model), "--output_dir", str(out),
                  "--data_files", str(data / "spld_spatial_data.jsonl"), "--media_root", str(data / "media")]  # fmt: skip
    script = 'source run_scripts/_common.sh; sl_launch tests.zero3_driver "$@"'
    log_path = out.parent / f"{out.name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", "-c", script, "bash", *entry_args, *args],
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    return rc, log_path.read_text()


def losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def weights(path: Path) -> dict[str, Any]:
    """The model's tensors as ``from_pretrained`` loads them (a ZeRO-3 save writes other key
    prefixes into model.safetensors than a plain one; the loader maps both)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(path).state_dict()


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


@pytest.fixture(scope="session")
def zero3_runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, synthetic_data_dir: Path
) -> Callable[[str], tuple[int | None, str, Path]]:
    """``get(name)`` -> (exit status, log, output dir) of a named run, made once per session."""
    from filelock import FileLock

    root = _shared_root(tmp_path_factory) / "zero3-runs"
    root.mkdir(exist_ok=True)
    with FileLock(str(root / "shm-op.lock")):
        # DeepSpeed's CPU accelerator builds one communication op on first use (~2 min on 2 cores,
        # then cached). Build it here, once and visibly, so no launch below (some run under a
        # timeout) pays for it; setup.sh does not, to keep the demo's set-up short.
        subprocess.run(
            [sys.executable, "-W", "ignore", "-c", "from deepspeed.comm.torch import build_shm_op; build_shm_op()"],
            env={**os.environ, "DS_ACCELERATOR": "cpu"},
            check=True,
            capture_output=True,
        )
    z3, z2, ddp = (
        "configs/accelerate/zero3.yaml",
        "configs/accelerate/zero2.yaml",
        "configs/accelerate/cpu.yaml",
    )
    plans: dict[str, tuple[str, str, str, list[str]]] = {
        "sft_zero3": ("sft", SFT_RECIPE, z3, SFT_ARGS),
        "sft_ddp": ("sft", SFT_RECIPE, ddp, SFT_ARGS),
        "sft_zero2": ("sft", SFT_RECIPE, z2, SFT_ARGS),
        "sft_zero3_no_dummy": ("sft", SFT_RECIPE, z3, [*SFT_ARGS, "--vision_dummy", "false"]),
        "grpo_zero3": ("grpo", GRPO_RECIPE, z3, GRPO_ARGS),
    }

    def get(name: str) -> tuple[int | None, str, Path]:
        out = root / name
        result = root / f"{name}.result.json"
        with FileLock(str(root / f"{name}.lock")):
            if not result.exists():
                if name.endswith("_resumed"):
                    # What a run killed right after checkpoint-N leaves behind: only checkpoint-N.
                    source_name = name.removesuffix("_resumed")
                    _, _, source = get(source_name)
                    save = SFT_SAVE if source_name.startswith("sft") else GRPO_SAVE
                    shutil.copytree(source / f"checkpoint-{save}", out / f"checkpoint-{save}")
                    kind, recipe, config, args = plans[source_name]
                else:
                    kind, recipe, config, args = plans[name]
                t0 = time.perf_counter()
                timeout = 150 if name.endswith("no_dummy") else LAUNCH_TIMEOUT
                rc, log = run_stage(
                    synthetic_data_dir, out, kind, recipe, config, args, tiny_model_dir, timeout
                )
                seconds = time.perf_counter() - t0
                result.write_text(json.dumps({"rc": rc, "seconds": seconds}))
                print(f"[zero3 tests] {name}: exit {rc} after {seconds:.0f} s")
            rc = json.loads(result.read_text())["rc"]
        return rc, (root / f"{name}.log").read_text(), out

    return get


def engines(log: str) -> set[str]:
    return set(ENGINE_LINE.findall(log))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_zero3_trains_mixed_media_with_a_text_only_rank(zero3_runs, tiny_model_dir: Path, kind: str) -> None:
    rc, log, out = zero3_runs(f"{kind}_zero3")
    assert rc == 0, log[-4000:]
    # the launcher really ran ZeRO-3 (no silent fallback to DDP), on both ranks
    assert engines(log) == {"DeepSpeed ZeRO-3, 2 process(es), backend gloo on cpu"}, engines(log)
    assert log.count("training engine:") == 2
    assert len(losses(out)) == (SFT_STEPS if kind == "sft" else GRPO_STEPS)
    moved = max_weight_diff(out, tiny_model_dir)
    assert moved > 1e-3, f"the weights barely moved ({moved}): the comparisons would prove nothing"


@pytest.mark.slow
def test_zero3_sft_matches_ddp(zero3_runs) -> None:
    """Same rows, same order, same seed: ZeRO-3 and DDP give the same losses and final weights
    (ZeRO-3 only changes where the fp32 weights, gradients and optimizer state live)."""
    _, _, out = zero3_runs("sft_zero3")
    rc, log, out_ddp = zero3_runs("sft_ddp")
    assert rc == 0, log[-4000:]
    assert engines(log) == {"DDP (no DeepSpeed), 2 process(es), backend gloo on cpu"}
    assert losses(out) == pytest.approx(losses(out_ddp), abs=1e-4), (losses(out), losses(out_ddp))
    assert max_weight_diff(out, out_ddp) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_zero3_resume_restores_the_weights(zero3_runs, tiny_model_dir: Path, kind: str) -> None:
    rc, log, out = zero3_runs(f"{kind}_zero3")
    assert rc == 0, log[-4000:]
    assert max_weight_diff(out, tiny_model_dir) > 1e-3  # weights that move
    rc, log, resumed = zero3_runs(f"{kind}_zero3_resumed")
    assert rc == 0, log[-4000:]
    save = SFT_SAVE if kind == "sft" else GRPO_SAVE
    done = json.loads((resumed / "DONE").read_text())
    assert Path(done["resumed_from"]).name == f"checkpoint-{save}"
    assert "DeepSpeed ZeRO-3" in next(iter(engines(log)))
    # the resumed run continues the same trajectory: the losses after the checkpoint and the final
    # weights match the uninterrupted run's
    assert losses(resumed)[save:] == pytest.approx(losses(out)[save:], abs=1e-6)
    assert max_weight_diff(resumed, out) <= 1e-6


@pytest.mark.slow
def test_without_the_vision_dummy_zero3_ranks_fail(zero3_runs) -> None:
    """The same run with ``--vision_dummy false``: the ranks' parameter gathers disagree at the
    first text-only/media step; gloo reports it (NCCL would hang; a hang is killed at 150 s)."""
    rc, log, out = zero3_runs("sft_zero3_no_dummy")
    assert rc != 0
    assert not (out / "DONE").exists()
    assert "DeepSpeed ZeRO-3" in next(iter(engines(log)))
    assert rc is None or "collective mismatch" in log or "Connection reset by peer" in log, log[-3000:]


@pytest.mark.slow
def test_zero2_runs_like_ddp(zero3_runs) -> None:
    rc, log, out = zero3_runs("sft_zero2")
    assert rc == 0, log[-4000:]
    assert engines(log) == {"DeepSpeed ZeRO-2, 2 process(es), backend gloo on cpu"}, engines(log)
    _, _, out_ddp = zero3_runs("sft_ddp")
    assert losses(out) == pytest.approx(losses(out_ddp), abs=1e-4)
    assert max_weight_diff(out, out_ddp) < 1e-4


def test_deepspeed_dropped_by_accelerate_is_an_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    """What run_scripts used to do on a GPU-less machine: ACCELERATE_USE_CPU with a DeepSpeed config
    (accelerate then launches without DeepSpeed). The stage script refuses it before launching; an
    entry point launched that way anyway stops in check_engine (tests/test_engine.py)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    script = subprocess.run(
        ["bash", "run_scripts/stage2_spatial.sh", "--max_steps", "1"],
        cwd=REPO,
        env={
            **env,
            "RECIPE": SFT_RECIPE,
            "MODEL": str(tiny_model_dir),
            "OUTPUT_DIR": str(tmp_path / "s"),
            "ACCELERATE_CONFIG": "configs/accelerate/zero3.yaml",
        },  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode != 0
    message = "ACCELERATE_USE_CPU is set: accelerate would drop DeepSpeed"
    assert message in script.stderr, script.stderr[-2000:]
    assert "training engine" not in script.stdout + script.stderr  # refused before launching


@pytest.mark.slow
def test_generation_without_gather_is_refused_with_media_at_construction(
    tmp_path: Path, tiny_model_dir: Path, synthetic_data_dir: Path
) -> None:
    args = [*GRPO_ARGS, "--ds3_gather_for_generation", "false"]
    out = tmp_path / "grpo_no_gather"
    rc, log = run_stage(synthetic_data_dir, out, "grpo", GRPO_RECIPE, "configs/accelerate/zero3.yaml", args,
                        tiny_model_dir, processes=1)  # fmt: skip
    assert rc not in (0, None), log[-3000:]
    assert (
        "ds3_gather_for_generation=false is not supported with image/video data under DeepSpeed ZeRO-3" in log
    )
    assert "'loss'" not in log and not (out / "DONE").exists()  # refused before any step
