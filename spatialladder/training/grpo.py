"""Stage 3: GRPO with verifiable rewards on SpatialLadder spatial questions (images, 8 views, video).

    python -m spatialladder.training.grpo --config configs/recipes/stage3_grpo.yaml [--key value ...]
    accelerate launch --config_file configs/accelerate/<cfg>.yaml -m spatialladder.training.grpo --config ...

A recipe is one flat YAML mapping over three dataclasses (parsed like the SFT stages, see
:func:`spatialladder.training.config.parse_args`): :class:`~spatialladder.training.config.SpatialLadderArguments`
(data files, media root, pixel bounds, ``video_frames``, ``video_fps``, ``vision_dummy``, ...),
:class:`GRPOConfig` (TRL's, plus ``reward_funcs``, ``sample_log_every`` and the ``gspo`` loss switch)
and ``trl.ModelConfig`` (model path = the cold-start checkpoint, dtype, attention).

Rows of ``spld_spatial_data.jsonl`` become a text-only thinking-prompt conversation plus media
columns (:func:`spatial_rows`); :class:`~spatialladder.training.grpo_trainer.SpatialGRPOTrainer`
feeds the media to generation and to every log-prob forward. The reference model is the initial
model (TRL loads it from the same path). The run has the shape of the SFT entry point
(:mod:`spatialladder.training.entry`): skipped when finished (``DONE``), refused before the model
loads on a missing input, validated data, resumed from the newest complete checkpoint.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trl
from datasets import Dataset

from spatialladder.prompts import build_prompt
from spatialladder.rewards import get_reward_funcs
from spatialladder.training.config import SpatialLadderArguments, cuda_bf16_available
from spatialladder.training.conversations import subsample_frames
from spatialladder.training.entry import (
    finish_stage,
    load_stage_processor,
    load_stage_records,
    log_rows,
    run_main,
    start_stage,
)
from spatialladder.training.grpo_trainer import IMAGES_COLUMN, VIDEO_COLUMN, MediaConfig, SpatialGRPOTrainer
from spatialladder.training.modeling import StageInputError, load_model, peft_config_for

logger = logging.getLogger(__name__)

# The loss switch: TRL loss types plus "gspo" = sequence-level importance ratios (GSPO) with the
# per-sequence token mean ("grpo" aggregation), as the GSPO paper sets it up.
LOSS_CHOICES = ("grpo", "dr_grpo", "dapo", "gspo", "bnpo")


def _trl_help(name: str) -> str:
    return str(trl.GRPOConfig.__dataclass_fields__[name].metadata.get("help", ""))


@dataclass
class GRPOConfig(trl.GRPOConfig):
    """TRL's ``GRPOConfig`` with this project's stage-3 additions and defaults.

    * ``reward_funcs``: names in :data:`spatialladder.rewards.REWARD_FUNCS`; ``reward_weights``
      (TRL's field) weights them, default all 1. The logged ``rewards/<name>/mean`` are unweighted,
      ``reward`` is the weighted sum the advantages come from.
    * ``loss_type`` defaults to ``grpo`` (the paper: token mean per sequence, then mean over
      sequences; TRL's own default is ``dapo``) and also accepts ``gspo``.
    * ``bf16`` unset = auto (bf16 on a bf16-capable CUDA GPU, fp32 elsewhere).
    * ``use_bias_correction_kl`` defaults to False: the paper's KL is plain k3.
    * ``importance_sampling_level``, ``scale_rewards``, ``multi_objective_aggregation`` have their
      choices checked at parse time.
    * ``save_steps`` must put checkpoints on generation boundaries (``save_steps x
      gradient_accumulation_steps`` a multiple of ``steps_per_generation x num_iterations``): TRL
      does not save a generated batch, so only there is a resumed run identical to an
      uninterrupted one.
    """

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "accuracy"],
        metadata={"help": "Reward functions by name (spatialladder.rewards.REWARD_FUNCS)."},
    )
    sample_log_every: int = field(
        default=50,
        metadata={
            "help": "Append sampled prompts, completions and rewards to OUTPUT_DIR/samples.jsonl every N steps (0: off)."
        },
    )
    loss_type: str = field(
        default="grpo",
        metadata={
            "help": "grpo (paper), dr_grpo, dapo, bnpo, or gspo (sequence-level ratios).",
            "choices": list(LOSS_CHOICES),
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision; unset = auto (bf16 on a bf16-capable CUDA GPU, else fp32)."},
    )
    # The paper's KL is plain k3; TRL 1.16 defaults to multiplying it by the importance ratio
    # (same value on-policy, a different gradient).
    use_bias_correction_kl: bool = field(
        default=False,
        metadata={
            "help": _trl_help("use_bias_correction_kl") + " Default here: False (the paper's plain k3)."
        },
    )
    # String settings TRL checks only when first used (a typo would fail at the first loss step):
    # their choices make parse_args refuse a bad value up front.
    importance_sampling_level: str = field(
        default="token",
        metadata={"help": _trl_help("importance_sampling_level"), "choices": ["token", "sequence"]},
    )
    scale_rewards: str = field(
        default="group",
        metadata={"help": _trl_help("scale_rewards"), "choices": ["group", "batch", "none"]},
    )
    multi_objective_aggregation: str = field(
        default="sum_then_normalize",
        metadata={
            "help": _trl_help("multi_objective_aggregation"),
            "choices": ["sum_then_normalize", "normalize_then_sum"],
        },
    )

    def __post_init__(self) -> None:
        if self.loss_type == "gspo":
            self.loss_type, self.importance_sampling_level = "grpo", "sequence"
        if self.bf16 is None:
            self.bf16 = (not self.fp16) and (not self.use_cpu) and cuda_bf16_available()
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = [self.reward_funcs]
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(
                f"{len(self.reward_funcs)} reward_funcs but {len(self.reward_weights)} reward_weights"
            )
        super().__post_init__()
        if self.remove_unused_columns:
            raise ValueError("remove_unused_columns must be False: the rewards read the answer columns")
        micro_steps_per_generation = self.steps_per_generation * self.num_iterations
        if (
            self.save_strategy == "steps"
            and self.save_steps >= 1
            and (int(self.save_steps) * self.gradient_accumulation_steps) % micro_steps_per_generation
        ):
            raise ValueError(
                f"save_steps={self.save_steps} would save checkpoints inside a generation batch "
                f"(one batch serves steps_per_generation={self.steps_per_generation} x num_iterations="
                f"{self.num_iterations} micro-steps, gradient_accumulation_steps={self.gradient_accumulation_steps} "
                "per optimizer step) and TRL does not save that batch, so a resume would regenerate it: "
                "choose save_steps so that save_steps x gradient_accumulation_steps is a multiple of "
                f"{micro_steps_per_generation}"
            )


def spatial_rows(
    records: Sequence[Any],
    prompt_kind: str = "thinking",
    video_frames: int | None = None,
    system: str | None = None,
) -> list[dict[str, Any]]:
    """Spatial records as GRPO rows: a text-only prompt (the thinking prompt by default) and the
    media as path lists (``media_images``: 1 or 8 views; ``media_video``: the frames, uniformly
    subsampled to ``video_frames``). The answer columns reach the rewards as keyword arguments."""
    rows = []
    for rec in records:
        paths = [str(p) for p in rec.images]
        is_video = rec.data_type == "video"
        if is_video and video_frames:
            paths = subsample_frames(paths, video_frames)
        prompt = [{"role": "user", "content": build_prompt(rec.question, rec.options, prompt_kind)}]
        if system:
            prompt.insert(0, {"role": "system", "content": system})
        rows.append(
            {
                "prompt": prompt,
                IMAGES_COLUMN: [] if is_video else paths,
                VIDEO_COLUMN: paths if is_video else [],
                "answer": str(rec.answer),
                "question_type": rec.question_type,
                "options": list(rec.options) if rec.options else None,
                "data_type": rec.data_type,
                "question_id": int(rec.question_id),
            }
        )
    return rows


def build_trainer(
    script_args: SpatialLadderArguments,
    training_args: GRPOConfig,
    model_args: Any,
    processor: Any,
    rows: list[dict[str, Any]],
) -> SpatialGRPOTrainer:
    return SpatialGRPOTrainer(
        model=load_model(model_args, training_args, freeze_vision=script_args.freeze_vision_tower),
        reward_funcs=get_reward_funcs(training_args.reward_funcs),  # weighted by TRL's reward_weights
        args=training_args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        peft_config=peft_config_for(model_args),
        media_config=MediaConfig(video_fps=script_args.video_fps),
        vision_dummy=script_args.vision_dummy,
        sample_log_every=training_args.sample_log_every,
    )  # the reference model is loaded by TRL from the same checkpoint


def train(
    script_args: SpatialLadderArguments,
    training_args: GRPOConfig,
    model_args: Any,
    prepare_rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> dict[str, Any] | None:
    """Run stage 3; returns the ``DONE`` info (None when the stage had already finished).

    ``prepare_rows`` rearranges the training rows (the multi-rank tests put a text-only row on one
    rank and media on the other)."""
    start = start_stage(script_args, training_args, model_args)
    if start is None:
        return None
    if script_args.prompt_kind not in ("auto", "thinking"):
        raise StageInputError(
            f"stage 3 trains on the thinking prompt; got prompt_kind={script_args.prompt_kind!r}"
        )
    processor = load_stage_processor(script_args, training_args, model_args)
    records = load_stage_records(script_args, training_args, kind="spatial")
    rows = spatial_rows(records, "thinking", script_args.video_frames, script_args.system_message)
    if prepare_rows is not None:
        rows = prepare_rows(rows)
    log_rows(rows, script_args)
    trainer = build_trainer(script_args, training_args, model_args, processor, rows)
    extra_info = {
        "reward_funcs": list(training_args.reward_funcs),
        "loss_type": training_args.loss_type,
        "importance_sampling_level": training_args.importance_sampling_level,
    }
    return finish_stage(
        trainer, processor, start, script_args, model_args, num_rows=len(rows), extra_info=extra_info
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(train, GRPOConfig, argv)


if __name__ == "__main__":
    sys.exit(main())
