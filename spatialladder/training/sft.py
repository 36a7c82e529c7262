"""Supervised fine-tuning for every SFT rung of the ladder (stage 1, stage 2, cold start).

    python -m spatialladder.training.sft --config configs/recipes/stage1_grounding.yaml [--key value ...]
    accelerate launch --config_file configs/accelerate/zero3.yaml -m spatialladder.training.sft --config ...

The stages differ only in their recipe (data file, prompt kind, init checkpoint, output dir). A run:

1. parses the recipe + overrides (an unknown key fails at once, naming it);
2. checks the input checkpoint (config, weights, processor) and validates the whole data file,
   media included, before any model is loaded;
3. trains with TRL's ``SFTTrainer`` and :class:`~spatialladder.training.collator.SpatialSFTCollator`
   (assistant-only loss for images, multi-view and video), resuming from the newest complete
   ``checkpoint-*`` of ``output_dir`` when an earlier run was interrupted;
4. saves the final model *with* its processor, then writes ``OUTPUT_DIR/DONE``; a run whose
   ``output_dir`` already has ``DONE`` returns at once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from spatialladder.training.config import ConfigError, SFTConfig, SpatialLadderArguments, parse_args

logger = logging.getLogger("spatialladder.sft")


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _setup_logging(training_args: SFTConfig) -> None:
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    # This project's own lines (data counts, resume point, DONE) show on the logging process(es).
    logging.getLogger("spatialladder").setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def load_samples(
    script_args: SpatialLadderArguments, processor: Any, *, check_media: bool
) -> list[dict[str, Any]]:
    """Validate the data files (whole files, media decoded when ``check_media``) and turn their
    records into SFT samples. Raises the loader's errors, which name file, line and field."""
    from spatialladder.data import load_records, select_max_samples
    from spatialladder.geometry import ResizeRule
    from spatialladder.training.conversations import ConversationSettings, records_to_samples

    records = []
    for path in script_args.data_files:
        records += load_records(
            path,
            script_args.media_root,
            kind=script_args.data_kind,
            num_views=script_args.num_views,
            check_media=check_media,
        )
    records = select_max_samples(records, script_args.max_samples)
    settings = ConversationSettings(
        prompt_kind=script_args.prompt_kind,
        system_message=script_args.system_message,
        video_frames=script_args.video_frames,
        resize_rule=ResizeRule.from_processor(processor),
    )
    return records_to_samples(records, settings)


def check_inputs(script_args: SpatialLadderArguments, model_args: Any) -> None:
    """Fail fast, naming the problem, on a missing model / data / media path."""
    import os

    from spatialladder.training.modeling import (
        checkpoint_problems,
        looks_like_local_path,
        master_weights_dtype,
    )

    model = model_args.model_name_or_path
    if not model:
        _fail("model_name_or_path is not set (recipe key or --model_name_or_path)")
    try:
        master_weights_dtype(model_args)
    except ValueError as exc:
        _fail(str(exc))
    if looks_like_local_path(model):
        problems = checkpoint_problems(model)
        if problems:
            _fail("input checkpoint is missing or incomplete:\n  " + "\n  ".join(problems))
    if not script_args.data_files:
        _fail("data_files is empty (recipe key or --data_files)")
    for path in script_args.data_files:
        if not os.path.isfile(path):
            _fail(f"data file not found: {path}")
    if script_args.media_root is None:
        _fail("media_root is not set (recipe key or --media_root)")
    if not os.path.isdir(script_args.media_root):
        _fail(f"media_root is not a directory: {script_args.media_root}")


def train(
    script_args: SpatialLadderArguments,
    training_args: SFTConfig,
    model_args: Any,
    prepare_samples: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> dict[str, Any] | None:
    """Run one SFT stage; returns the ``DONE`` info (None when the stage had already finished).

    ``prepare_samples`` (optional, ``list -> list``) rearranges the loaded samples before training
    (tests use it to place text-only samples next to media samples on other ranks)."""
    from spatialladder.training.modeling import find_resume_checkpoint, is_finished

    _setup_logging(training_args)
    output_dir = training_args.output_dir
    if is_finished(output_dir):
        logger.info("%s already holds a finished run (DONE); nothing to do", output_dir)
        return None
    check_inputs(script_args, model_args)

    from datasets import Dataset

    from spatialladder.data import DatasetValidationError
    from spatialladder.training.collator import SpatialSFTCollator, resolve_training_chat_template
    from spatialladder.training.modeling import load_processor

    state = training_args.distributed_state
    try:
        processor = load_processor(
            model_args.model_name_or_path,
            min_pixels=script_args.min_pixels,
            max_pixels=script_args.max_pixels,
            revision=None if model_args.model_revision == "main" else model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
        )
    except ValueError as exc:  # the pixel budget did not take effect
        _fail(str(exc))
    # Validation decodes every media file once, on the main process; the others wait for it and
    # only re-read the rows (a failure on the main process ends the launch for every rank).
    with training_args.main_process_first(desc="data validation"):
        try:
            samples = load_samples(
                script_args, processor, check_media=not script_args.skip_validation and state.is_main_process
            )
        except (DatasetValidationError, FileNotFoundError, OSError, ValueError) as exc:
            _fail(str(exc))
    if prepare_samples is not None:
        samples = prepare_samples(samples)
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample["data_type"]] = counts.get(sample["data_type"], 0) + 1
    logger.info("%d samples from %s: %s", len(samples), ", ".join(script_args.data_files), counts)
    train_dataset = Dataset.from_list(samples)

    try:
        chat_template = resolve_training_chat_template(processor)
    except ValueError as exc:
        _fail(str(exc))
    collator = SpatialSFTCollator(
        processor,
        chat_template=chat_template,
        max_length=training_args.max_length,
        video_fps=script_args.video_fps,
        pad_to_multiple_of=training_args.pad_to_multiple_of,
    )
    try:
        collator([samples[0]])  # render + process one sample before spending time on the model
    except ValueError as exc:
        _fail(str(exc))

    from spatialladder.training.engine import check_engine
    from spatialladder.training.modeling import (
        checkpoint_global_step,
        load_model,
        peft_config_for,
        save_final_model,
        whole_run_train_loss,
        write_done_marker,
    )
    from spatialladder.training.zero3 import install_uniform_vision_forward, resolve_vision_dummy

    model = load_model(model_args, training_args, freeze_vision=script_args.freeze_vision_tower)
    SpatialSFTTrainer = _trainer_class()
    trainer = SpatialSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processor,
        data_collator=collator,
        peft_config=peft_config_for(model_args),
    )
    check_engine(trainer.accelerator)  # logs the engine + ZeRO stage; stops if not the requested one
    vision_dummy = {"true": True, "false": False}.get(str(script_args.vision_dummy).lower(), "auto")
    if resolve_vision_dummy(vision_dummy, trainer.accelerator):
        install_uniform_vision_forward(trainer.model)
        logger.info("vision tower runs once per forward on every rank (ZeRO-3 safety)")

    resume = training_args.resume_from_checkpoint or find_resume_checkpoint(output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    start_step = checkpoint_global_step(resume)  # before training: save_total_limit may delete it
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    info = save_final_model(
        trainer,
        processor,
        output_dir,
        base_model=model_args.model_name_or_path,
        merge_lora=script_args.merge_lora,
    )
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    info.update(
        global_step=trainer.state.global_step,
        # the whole run's mean, resumed or not (the Trainer's covers only the steps since the resume)
        train_loss=whole_run_train_loss(
            trainer.state.log_history,
            trainer.state.global_step,
            result.metrics.get("train_loss"),
            start_step,
        ),
        first_logged_loss=losses[0] if losses else None,
        last_logged_loss=losses[-1] if losses else None,
        resumed_from=resume,
        data_files=list(script_args.data_files),
        num_samples=len(samples),
        num_processes=trainer.accelerator.num_processes,
    )
    if trainer.accelerator.is_main_process:
        write_done_marker(output_dir, info)  # last: a DONE directory is always complete
        logger.info("finished: %s (global_step %d)", output_dir, trainer.state.global_step)
    trainer.accelerator.wait_for_everyone()
    return info


def _trainer_class() -> type:
    from trl import SFTTrainer

    from spatialladder.training.modeling import CheckpointConversionResumeMixin

    class SpatialSFTTrainer(CheckpointConversionResumeMixin, SFTTrainer):
        """TRL's SFTTrainer that resumes Qwen2.5-VL checkpoints with their weights (see the mixin)."""

    return SpatialSFTTrainer


def main(argv: Sequence[str] | None = None) -> None:
    from trl import ModelConfig

    try:
        script_args, training_args, model_args = parse_args(
            (SpatialLadderArguments, SFTConfig, ModelConfig), argv
        )
    except (ConfigError, ValueError) as exc:  # ValueError: a field's own check (__post_init__)
        _fail(str(exc))
    train(script_args, training_args, model_args)


if __name__ == "__main__":
    main()
