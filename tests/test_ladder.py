"""The ladder's one declaration and the pre-launch plan of a stage (what run_scripts/_common.sh
launches), and the one shape of the SFT and GRPO entry points before training: skip, refuse, fail
fast, each the same way. Nothing here loads a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spatialladder.training import grpo, sft
from spatialladder.training.ladder import LADDER, Settings, plan, previous_stage, stage_input
from spatialladder.training.modeling import StageInputError

REPO = Path(__file__).resolve().parents[1]
SFT, GRPO = "spatialladder.training.sft", "spatialladder.training.grpo"


def test_the_ladder_is_declared_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [(s.name, s.entry) for s in LADDER] == [
        ("stage1_grounding", SFT),
        ("stage2_spatial", SFT),
        ("coldstart", SFT),
        ("stage3_grpo", GRPO),
    ]
    assert [previous_stage(s.name) for s in LADDER] == [None, *LADDER[:-1]]
    monkeypatch.chdir(REPO)
    # demo: WORK_DIR defaults to outputs/demo, stage 1 starts from the tiny model there
    demo = Settings.from_env({"DEMO": "1"})
    assert (demo.work_dir, stage_input("stage1_grounding", demo, {})) == (
        "outputs/demo",
        "outputs/demo/tiny-qwen25vl",
    )
    assert stage_input("coldstart", demo, {}) == "outputs/demo/stage2_spatial"
    # MODEL is one stage's input; empty variables count as unset
    assert stage_input("coldstart", Settings.from_env({"DEMO": "1", "MODEL": "m", "WORK_DIR": ""}), {}) == "m"
    # without WORK_DIR, the previous stage's recipe (in RECIPE_DIR) gives its output, not this stage's RECIPE
    recipe_dir = Settings.from_env({"RECIPE_DIR": "configs/recipes/demo", "RECIPE": "elsewhere.yaml"})
    assert stage_input("stage3_grpo", recipe_dir, {}) == "outputs/demo/coldstart"


@pytest.fixture
def work(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """WORK_DIR whose stage 1 is finished (the tiny model stands in for its output)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "stage1_grounding").symlink_to(tiny_model_dir, target_is_directory=True)
    return work


def test_plan_of_a_stage(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    settings = Settings.from_env({"WORK_DIR": str(work), "DATA_DIR": "/data/26k"})
    assert plan("stage2_spatial", settings, ["--max_steps", "3"]) == [
        SFT,
        "--config", "configs/recipes/stage2_spatial.yaml",
        "--model_name_or_path", str(work / "stage1_grounding"),
        "--output_dir", str(work / "stage2_spatial"),
        "--data_files", "/data/26k/spld_spatial_data.jsonl",
        "--media_root", "/data/26k/images",
        "--max_steps", "3",
    ]  # fmt: skip
    # an --output_dir override is the directory the stage is checked against
    (work / "elsewhere").mkdir()
    (work / "elsewhere" / "DONE").write_text("{}")
    assert plan("stage2_spatial", settings, ["--output_dir", str(work / "elsewhere")]) is None
    # finished: nothing to launch, even with its input gone
    (work / "stage2_spatial").mkdir()
    (work / "stage2_spatial" / "DONE").write_text("{}")
    (work / "stage1_grounding").unlink()
    assert plan("stage2_spatial", settings) is None
    # the next stage now refuses its input, naming it
    with pytest.raises(StageInputError, match=r"input checkpoint .*stage2_spatial is missing or incomplete"):
        plan("coldstart", settings)
    with pytest.raises(StageInputError, match="unknown stage 'stage4'; the ladder is stage1_grounding, "):
        plan("stage4", settings)


def test_plan_refuses_an_interrupted_input_and_prints_nothing(work: Path) -> None:
    """Through the CLI the stage scripts run: stdout is the plan only, the refusal is on stderr."""
    (work / "stage2_spatial" / "checkpoint-8").mkdir(parents=True)
    env = {**os.environ, "WORK_DIR": str(work), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "spatialladder.training.ladder", "plan", "coldstart"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert (
        f"[coldstart] ERROR: refusing to start: input checkpoint {work / 'stage2_spatial'}" in result.stderr
    )
    assert "has checkpoint-* but no DONE marker" in result.stderr
    demo = [*cmd[:-1], "stage2_spatial", "--demo", "--seed", "3"]  # --demo = DEMO=1, as in the scripts
    result = subprocess.run(
        demo, cwd=REPO, env={**env, "DATA_DIR": "/d"}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        SFT, "--config", "configs/recipes/demo/stage2_spatial.yaml", "--model_name_or_path", str(work / "stage1_grounding"),
        "--output_dir", str(work / "stage2_spatial"), "--data_files", "/d/spld_spatial_data.jsonl", "--media_root",
        "/d/images", "--seed", "3",
    ]  # fmt: skip


# ------------------------------------------------------------------ the entry points, one shape


def _args(tmp_path: Path, recipe: str, model: Path, data: Path, *extra: str) -> list[str]:
    return ["--config", str(REPO / recipe), "--model_name_or_path", str(model), "--output_dir", str(tmp_path / "out"),
            "--data_files", str(data / "spld_spatial_data.jsonl"), "--media_root", str(data / "media"), *extra]  # fmt: skip


ENTRY_POINTS = [
    pytest.param(sft.main, "configs/recipes/demo/stage2_spatial.yaml", id="sft"),
    pytest.param(grpo.main, "configs/recipes/demo/stage3_grpo.yaml", id="grpo"),
]


@pytest.mark.parametrize("main, recipe", ENTRY_POINTS)
def test_entry_points_skip_refuse_and_fail_fast_alike(
    main, recipe: str, tmp_path: Path, tiny_model_dir: Path, synthetic_data_dir: Path, capsys
) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "no-such-model"
    assert main(_args(tmp_path, recipe, missing, synthetic_data_dir)) == 2
    err = capsys.readouterr().err
    assert f"refusing to start: input checkpoint {missing} is missing or incomplete" in err
    assert f"{missing}: no such directory" in err and not out.exists()

    assert main(_args(tmp_path, recipe, tiny_model_dir, tmp_path / "no-data")) == 2
    captured = capsys.readouterr()
    assert f"data file not found: {tmp_path / 'no-data' / 'spld_spatial_data.jsonl'}" in captured.err
    assert "data file not found" not in captured.out and not out.exists()

    assert main([*_args(tmp_path, recipe, tiny_model_dir, synthetic_data_dir), "--max_samples", "0"]) == 2
    assert "max_samples must be >= 1, got 0" in capsys.readouterr().err

    out.mkdir()
    (out / "DONE").write_text(json.dumps({"global_step": 7}))
    assert (
        main(_args(tmp_path, recipe, missing, synthetic_data_dir)) == 0
    )  # finished: its input is not needed
    captured = capsys.readouterr()
    assert f"already finished ({out / 'DONE'}): skipping" in captured.out and "skipping" not in captured.err
    assert json.loads((out / "DONE").read_text()) == {"global_step": 7}
