"""The analysis commands on a short real ladder: ``DEMO=1 run_scripts/run_all.sh --max_steps 2``
(tiny model, synthetic data, the four stages' real trainer logs and checkpoints)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ["stage1_grounding", "stage2_spatial", "coldstart", "stage3_grpo"]
GRPO_KEYS = (
    "rewards/accuracy/mean",
    "rewards/format/mean",
    "reward_std_within_group",
    "completions/mean_length",
    "kl",
)
SMALL = [
    "--max-new-tokens",
    "8",
    "--min-pixels",
    "3136",
    "--max-pixels",
    "12544",
    "--num-frames",
    "4",
    "--batch-size",
    "4",
]


@pytest.fixture(scope="module")
def short_ladder(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, synthetic_data_dir: Path
) -> Path:
    """Two optimizer steps per stage, a checkpoint after each (save_total_limit keeps both). The
    session's tiny model and synthetic data stand in for the ones run_all.sh would build."""
    work = tmp_path_factory.mktemp("analysis-ladder") / "work"
    work.mkdir()
    (work / "tiny-qwen25vl").symlink_to(tiny_model_dir, target_is_directory=True)
    (work / "synthetic").symlink_to(synthetic_data_dir, target_is_directory=True)
    result = subprocess.run(
        ["bash", "run_scripts/run_all.sh", "--max_steps", "2", "--save_steps", "1"],
        cwd=REPO, env={**os.environ, "DEMO": "1", "WORK_DIR": str(work)}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return work


@pytest.mark.slow
def test_dynamics_on_the_real_ladder(short_ladder: Path, tmp_path: Path) -> None:
    from PIL import Image

    from spatialladder.analysis.__main__ import main
    from spatialladder.demo.benchmark_fixtures import make_fixtures

    make_fixtures(tmp_path / "bench", seed=1, per_type=1)
    argv = ["dynamics", str(short_ladder), "--out", str(tmp_path / "dyn"), "--eval-checkpoints", "stage3_grpo",
            "--benchmarks", "VSI-Bench", "--data-root", str(tmp_path / "bench"), "--limit", "2", *SMALL]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((tmp_path / "dyn" / "dynamics.json").read_text())
    assert list(data["stages"]) == STAGES
    for stage in STAGES[:3]:
        assert data["stages"][stage]["kind"] == "sft"
        assert data["stages"][stage]["series"]["loss"]["steps"] == [1, 2]  # logging_steps 1, max_steps 2
    grpo = data["stages"]["stage3_grpo"]
    assert grpo["kind"] == "grpo"
    for key in GRPO_KEYS:
        assert grpo["series"][key]["steps"] == [1, 2], key
    # checkpoint-1 and checkpoint-2 scored; the final model is checkpoint-2's weights and is not rescored
    assert [(r["step"], r["checkpoint"], r["n"]) for r in grpo["checkpoint_scores"]] == [
        (1, "step-1", 2),
        (2, "step-2", 2),
    ]
    for name in ("sft_loss.png", "grpo_dynamics.png", "checkpoint_scores.png"):
        with Image.open(tmp_path / "dyn" / name) as img:
            assert img.width > 300


@pytest.mark.slow
def test_ladder_table_and_figure_on_the_real_ladder(short_ladder: Path, tmp_path: Path) -> None:
    from spatialladder.analysis.__main__ import main

    out = tmp_path / "ladder"
    argv = [
        "ladder",
        str(short_ladder),
        "--out",
        str(out),
        "--limit",
        "3",
        "-k",
        "3",
        "--attention-limit",
        "2",
        *SMALL,
    ]
    assert main(argv) == 0
    data = json.loads((out / "ladder.json").read_text())
    rows = data["rows"]
    assert [r["stage"] for r in rows] == ["base", *STAGES]
    assert [r["prompt_kind"] for r in rows] == ["direct", "direct", "direct", "thinking", "thinking"]
    for r in rows:
        assert 0.0 <= r["semantic_entropy"] <= math.log(3) + 1e-9
        assert 0.0 < r["visual_share"] < 1.0 and len(r["visual_share_per_layer"]) == 2
        assert 0.0 <= r["box_share"] <= 1.0 and 0.0 < r["box_chance"] < 1.0
        stage_entropy = json.loads((out / r["stage"] / "entropy" / "entropy.json").read_text())
        assert stage_entropy["overall"]["mean_entropy"] == r["semantic_entropy"]
        assert len(stage_entropy["per_question"]) == 3 and all(
            q["k"] == 3 for q in stage_entropy["per_question"]
        )
        assert (out / r["stage"] / "attention" / "attention.json").is_file()
    table = (out / "ladder.md").read_text().splitlines()
    assert len(table) == 2 + len(rows) and all(
        f"| {r['stage']} |" in table[i + 2] for i, r in enumerate(rows)
    )
    assert (out / "ladder.png").stat().st_size > 10_000
