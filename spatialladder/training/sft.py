"""Supervised fine-tuning for every SFT rung of the ladder (stage 1, stage 2, cold start).

    python -m spatialladder.training.sft --config configs/recipes/stage1_grounding.yaml [--key value ...]
    accelerate launch --config_file configs/accelerate/zero3.yaml -m spatialladder.training.sft --config ...

The stages differ only in their recipe (data file, prompt kind, output dir). A run has the shape of
every entry point here (:mod:`spatialladder.training.entry`): a finished run (``DONE``) is skipped, a
missing input or data file is refused before the model loads, the whole data file is validated
(media included), TRL's ``SFTTrainer`` trains with
:class:`~spatialladder.training.collator.SpatialSFTCollator` (assistant-only loss for images,
multi-view and video), resuming from the newest complete ``checkpoint-*``, and the final model is
saved *with* its processor before ``OUTPUT_DIR/DONE``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from datasets import Dataset
from trl import SFTTrainer

from spatialladder.geometry import ResizeRule
from spatialladder.training.collator import SpatialSFTCollator, resolve_training_chat_template
from spatialladder.training.config import SFTConfig, SpatialLadderArguments
from spatialladder.training.conversations import ConversationSettings, records_to_samples
from spatialladder.training.entry import (
    finish_stage,
    load_stage_processor,
    load_stage_records,
    log_rows,
    run_main,
    start_stage,
)
from spatialladder.training.modeling import (
    CheckpointConversionResumeMixin,
    StageInputError,
    load_model,
    peft_config_for,
)
from spatialladder.training.zero3 import install_uniform_vision_forward, resolve_vision_dummy

logger = logging.getLogger(__name__)


class SpatialSFTTrainer(CheckpointConversionResumeMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` that resumes Qwen2.5-VL checkpoints with their weights (the mixin) and,
    when ``vision_dummy`` resolves on (ZeRO-2/3), runs the vision tower once per forward on every
    rank, as :class:`~spatialladder.training.grpo_trainer.SpatialGRPOTrainer` does."""

    def __init__(self, *args: Any, vision_dummy: bool | str | None = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if resolve_vision_dummy(vision_dummy, self.accelerator):
            install_uniform_vision_forward(self.model)
            logger.info("vision tower runs once per forward on every rank (ZeRO-3 safety)")


def train(
    script_args: SpatialLadderArguments,
    training_args: SFTConfig,
    model_args: Any,
    prepare_rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> dict[str, Any] | None:
    """Run one SFT stage; returns the ``DONE`` info (None when the stage had already finished).

    ``prepare_rows`` rearranges the training rows (the multi-rank tests put a text-only row on one
    rank and media on the other)."""
    start = start_stage(script_args, training_args, model_args)
    if start is None:
        return None
    processor = load_stage_processor(script_args, training_args, model_args)
    records = load_stage_records(script_args, training_args)
    settings = ConversationSettings(
        prompt_kind=script_args.prompt_kind,
        system_message=script_args.system_message,
        video_frames=script_args.video_frames,
        resize_rule=ResizeRule.from_processor(processor),
    )
    try:
        rows = records_to_samples(records, settings)
        if prepare_rows is not None:
            rows = prepare_rows(rows)
        collator = SpatialSFTCollator(
            processor,
            chat_template=resolve_training_chat_template(processor),
            max_length=training_args.max_length,
            video_fps=script_args.video_fps,
            pad_to_multiple_of=training_args.pad_to_multiple_of,
        )
        collator([rows[0]])  # render + process one sample before spending time on the model
    except ValueError as exc:
        raise StageInputError(str(exc)) from None
    log_rows(rows, script_args)

    trainer = SpatialSFTTrainer(
        model=load_model(model_args, training_args, freeze_vision=script_args.freeze_vision_tower),
        args=training_args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        data_collator=collator,
        peft_config=peft_config_for(model_args),
        vision_dummy=script_args.vision_dummy,
    )
    return finish_stage(trainer, processor, start, script_args, model_args, num_rows=len(rows))


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(train, SFTConfig, argv)


if __name__ == "__main__":
    sys.exit(main())
