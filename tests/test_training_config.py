"""Stage settings checked at parse time and defaults that follow the paper (GRPO KL, max_samples)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trl
from trl import ModelConfig

from spatialladder.data import load_records, select_max_samples
from spatialladder.training.config import ConfigError, SpatialLadderArguments, parse_args
from spatialladder.training.entry import load_stage_records
from spatialladder.training.grpo import GRPOConfig, spatial_rows

REPO = Path(__file__).resolve().parents[1]
GRPO_RECIPES = (
    "configs/recipes/stage3_grpo.yaml",
    "configs/recipes/demo/stage3_grpo.yaml",
    "configs/recipes/demo/learn/stage3_grpo.yaml",
)


def _parse_grpo(*argv: str):
    return parse_args((SpatialLadderArguments, GRPOConfig, ModelConfig), list(argv))


def test_kl_is_the_papers_plain_k3() -> None:
    assert trl.GRPOConfig(output_dir="x", report_to="none", bf16=False).use_bias_correction_kl is True  # TRL
    assert GRPOConfig(output_dir="x", report_to="none").use_bias_correction_kl is False
    for recipe in GRPO_RECIPES:
        _, grpo_args, _ = _parse_grpo("--config", str(REPO / recipe), "--bf16", "false")
        assert grpo_args.use_bias_correction_kl is False and grpo_args.beta == 0.01
        assert "use_bias_correction_kl: false" in (REPO / recipe).read_text()


def test_string_choices_fail_at_parse_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = REPO / "configs/recipes/demo/stage3_grpo.yaml"
    with pytest.raises(SystemExit):  # argparse: command-line choices
        _parse_grpo("--config", str(recipe), "--importance_sampling_level", "bogus")
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    _, ok, _ = _parse_grpo("--config", str(recipe), "--importance_sampling_level", "sequence")
    assert ok.importance_sampling_level == "sequence"
    for key, value in (
        ("importance_sampling_level", "bogus"),
        ("scale_rewards", "groups"),
        ("prompt_kind", "cot"),
    ):
        bad = tmp_path / f"{key}.yaml"
        bad.write_text(recipe.read_text() + f"{key}: {value}\n")
        with pytest.raises(ConfigError, match=rf"{key}: '{value}' is not one of .* \(from recipe {bad}\)"):
            _parse_grpo("--config", str(bad))


def test_grpo_checkpoints_must_fall_on_generation_boundaries() -> None:
    common = {"output_dir": "x", "report_to": "none", "per_device_train_batch_size": 2,
              "gradient_accumulation_steps": 2, "steps_per_generation": 4}  # fmt: skip
    # one generated batch serves 4 micro-steps = 2 optimizer steps: a checkpoint at an odd step
    # would fall inside it, and TRL does not save the batch
    with pytest.raises(ValueError, match="save_steps=3 would save checkpoints inside a generation batch"):
        GRPOConfig(save_steps=3, **common)
    assert GRPOConfig(save_steps=4, **common).save_steps == 4
    with pytest.raises(ValueError, match="multiple of 8"):
        GRPOConfig(save_steps=2, num_iterations=2, **common)


def test_max_samples_is_one_rule_for_sft_and_grpo(synthetic_data_dir: Path) -> None:
    assert select_max_samples(list(range(10)), 4) == [0, 2, 5, 7]
    assert select_max_samples(list(range(3)), 5) == [0, 1, 2] == select_max_samples(list(range(3)), None)
    data = synthetic_data_dir / "spld_spatial_data.jsonl"
    records = load_records(data, synthetic_data_dir / "media", kind="spatial", check_media=False)
    args = SpatialLadderArguments(data_files=[str(data)], media_root=str(synthetic_data_dir / "media"),
                                  max_samples=6, skip_validation=True)  # fmt: skip
    # the loader both entry points use
    rows = spatial_rows(
        load_stage_records(args, GRPOConfig(output_dir="x", report_to="none"), kind="spatial")
    )
    expected = [records[i * len(records) // 6] for i in range(6)]  # spans the file, not its head
    assert [row["question_id"] for row in rows] == [int(r.question_id) for r in expected]
    assert [row["question_id"] for row in rows] != [int(r.question_id) for r in records[:6]]


def test_whole_run_train_loss_counts_the_steps_before_a_resume() -> None:
    from spatialladder.training.modeling import whole_run_train_loss

    # Logged every step; resumed at step 2; the resumed call averaged steps 3-4 to 1.0.
    history = [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 2.0}, {"step": 4, "loss": 1.0}]
    assert whole_run_train_loss(history, 4, 1.0, start_step=2) == (4.0 + 2.0 + 1.0 + 1.0) / 4
    assert whole_run_train_loss(history, 4, 1.75, start_step=0) == 1.75  # not resumed: the Trainer's own
    # Logged every 2 steps, checkpoint at step 3: step 3's loss was never logged, so the mean covers
    # steps 1-2 (mean 3.0) and step 4 (1.0).
    assert whole_run_train_loss([{"step": 2, "loss": 3.0}], 4, 1.0, start_step=3) == (3.0 * 2 + 1.0) / 3
