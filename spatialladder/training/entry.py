"""What the SFT and GRPO entry points share, so that both have one shape.

Each entry point (:mod:`.sft`, :mod:`.grpo`) is ``main(argv) -> exit status`` = :func:`run_main` with
its ``train(script_args, training_args, model_args)``, and each ``train`` is:

1. :func:`start_stage`: skip a finished run, refuse a missing input checkpoint, a half-precision
   master-weights dtype or a missing data file / media root (:class:`StageInputError`, before any
   model is loaded), and pick the checkpoint an interrupted run resumes from;
2. :func:`load_stage_processor` and :func:`load_stage_records` (the whole data file validated, media
   included, on the main process; ``max_samples`` evenly spaced rows);
3. the stage's own rows and trainer;
4. :func:`finish_stage`: train (resuming), save the final model with its processor, then ``DONE``.

Logging goes through ``logging`` (the ``spatialladder`` logger): progress on stdout, errors on
stderr. An error found before training is one line naming its file, line, field or setting, and
exit status 2; anything later raises with its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import transformers
from trl import ModelConfig

from spatialladder.data import DatasetValidationError, load_records, select_max_samples
from spatialladder.training.config import ConfigError, SpatialLadderArguments, parse_args
from spatialladder.training.engine import check_engine
from spatialladder.training.modeling import (
    StageInputError,
    check_start,
    checkpoint_global_step,
    find_resume_checkpoint,
    load_processor,
    master_weights_dtype,
    save_final_model,
    whole_run_train_loss,
    write_done_marker,
)

logger = logging.getLogger("spatialladder.training")

EXIT_STAGE_INPUT = 2  # a recipe, setting or input that cannot work, reported before training
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StdStreamHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` / ``sys.stderr`` as they are when a record is emitted: entry points
    called in-process (tests) see the streams of the moment, not those of an earlier call."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns one; the property wins
        pass


def setup_logging(training_args: Any = None) -> None:
    """This project's log lines: below ERROR on stdout, errors on stderr, at INFO on the logging
    process(es) (``training_args.should_log``) and WARNING on the others; datasets' and transformers'
    verbosity follow the run's ``log_level``. Idempotent."""
    root = logging.getLogger("spatialladder")
    for handler in [h for h in root.handlers if isinstance(h, _StdStreamHandler)]:
        root.removeHandler(handler)
    formatter = logging.Formatter(_LOG_FORMAT, datefmt="%H:%M:%S")
    out, err = _StdStreamHandler("stdout"), _StdStreamHandler("stderr")
    out.addFilter(lambda record: record.levelno < logging.ERROR)
    err.setLevel(logging.ERROR)
    for handler in (out, err):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    should_log = True if training_args is None else training_args.should_log
    root.setLevel(logging.INFO if should_log else logging.WARNING)
    if training_args is not None:
        level = training_args.get_process_log_level()
        datasets.utils.logging.set_verbosity(level)
        transformers.utils.logging.set_verbosity(level)
        transformers.utils.logging.enable_default_handler()
        transformers.utils.logging.enable_explicit_format()


def run_main(
    train: Callable[[Any, Any, Any], Any], training_config: type, argv: Sequence[str] | None = None
) -> int:
    """Parse ``--config RECIPE [--key value ...]`` into (:class:`SpatialLadderArguments`,
    ``training_config``, ``trl.ModelConfig``) and run ``train`` on them. Returns the exit status:
    0, or :data:`EXIT_STAGE_INPUT` with the problem logged when the recipe, a setting or an input
    cannot work."""
    setup_logging()
    try:
        script_args, training_args, model_args = parse_args(
            (SpatialLadderArguments, training_config, ModelConfig), argv
        )
    except (ConfigError, ValueError) as exc:  # ValueError: a field's own check (__post_init__)
        logger.error("%s", exc)
        return EXIT_STAGE_INPUT
    setup_logging(training_args)
    try:
        train(script_args, training_args, model_args)
    except StageInputError as exc:
        logger.error("%s", exc)
        return EXIT_STAGE_INPUT
    return 0


@dataclass(frozen=True)
class StageStart:
    """A stage that trains; ``resume_from`` is the checkpoint it continues from (None: from the start)."""

    resume_from: str | None


def start_stage(
    script_args: SpatialLadderArguments, training_args: Any, model_args: Any
) -> StageStart | None:
    """None for a finished stage (skipped); raises :class:`StageInputError` for one that cannot start
    (input checkpoint, dtype, data file, media root); else where it resumes from."""
    if not check_start(model_args.model_name_or_path, training_args.output_dir):
        return None
    try:
        master_weights_dtype(model_args)
    except ValueError as exc:
        raise StageInputError(str(exc)) from None
    if not script_args.data_files:
        raise StageInputError("data_files is empty (recipe key or --data_files)")
    for path in script_args.data_files:
        if not os.path.isfile(path):
            raise StageInputError(f"data file not found: {path}")
    if script_args.media_root is None:
        raise StageInputError("media_root is not set (recipe key or --media_root)")
    if not os.path.isdir(script_args.media_root):
        raise StageInputError(f"media_root is not a directory: {script_args.media_root}")
    resume = training_args.resume_from_checkpoint or find_resume_checkpoint(training_args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    return StageStart(resume_from=resume)


def load_stage_processor(script_args: SpatialLadderArguments, training_args: Any, model_args: Any) -> Any:
    """The input checkpoint's processor with the run's pixel bounds (refused when they do not apply)."""
    try:
        return load_processor(
            model_args.model_name_or_path,
            min_pixels=script_args.min_pixels,
            max_pixels=script_args.max_pixels,
            revision=None if model_args.model_revision in (None, "main") else model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
        )
    except ValueError as exc:  # the pixel budget did not take effect
        raise StageInputError(str(exc)) from None


def load_stage_records(
    script_args: SpatialLadderArguments, training_args: Any, *, kind: str | None = None
) -> list[Any]:
    """The records of ``script_args.data_files`` (``data_kind``, else ``kind``, else from the file
    name), ``max_samples`` of them evenly spaced over the files. Every row is validated; the media are
    decoded once, on the main process, while the others wait (unless ``skip_validation``)."""
    check_media = not script_args.skip_validation and training_args.distributed_state.is_main_process
    records: list[Any] = []
    # A failure on the main process ends the launch for every rank.
    with training_args.main_process_first(desc="data validation"):
        try:
            for path in script_args.data_files:
                records += load_records(
                    path,
                    script_args.media_root,
                    kind=script_args.data_kind or kind,
                    num_views=script_args.num_views,
                    check_media=check_media,
                )
        except (DatasetValidationError, OSError, ValueError) as exc:
            raise StageInputError(str(exc)) from None
    if not records:
        raise StageInputError(f"no rows in {', '.join(script_args.data_files)}")
    return select_max_samples(records, script_args.max_samples)


def log_rows(rows: Sequence[dict[str, Any]], script_args: SpatialLadderArguments) -> None:
    counts = dict(Counter(row["data_type"] for row in rows))
    logger.info("%d rows from %s: %s", len(rows), ", ".join(script_args.data_files), counts)


def finish_stage(
    trainer: Any,
    processor: Any,
    start: StageStart,
    script_args: SpatialLadderArguments,
    model_args: Any,
    *,
    num_rows: int,
    extra_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (resuming from ``start.resume_from``), save the final model with its processor, and write
    ``DONE`` last (a ``DONE`` directory is always complete). Returns the ``DONE`` info."""
    check_engine(trainer.accelerator)  # logs the engine + ZeRO stage; stops if not the requested one
    start_step = checkpoint_global_step(start.resume_from)  # before training: save_total_limit may delete it
    result = trainer.train(resume_from_checkpoint=start.resume_from)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()  # OUTPUT_DIR/trainer_state.json: the whole log history (losses, rewards, KL, ...)

    output_dir = trainer.args.output_dir
    info = save_final_model(
        trainer,
        processor,
        output_dir,
        base_model=model_args.model_name_or_path,
        merge_lora=script_args.merge_lora,
    )
    state = trainer.state
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    info.update(
        global_step=int(state.global_step),
        # the whole run's mean, resumed or not (the Trainer's covers only the steps since the resume)
        train_loss=whole_run_train_loss(
            state.log_history, state.global_step, result.metrics.get("train_loss"), start_step
        ),
        first_logged_loss=losses[0] if losses else None,
        last_logged_loss=losses[-1] if losses else None,
        resumed_from=start.resume_from,
        data_files=list(script_args.data_files),
        num_samples=num_rows,
        num_processes=trainer.accelerator.num_processes,
        **(extra_info or {}),
    )
    if trainer.accelerator.is_main_process:
        write_done_marker(output_dir, info)
        logger.info("finished: %s (global_step %d)", output_dir, state.global_step)
    trainer.accelerator.wait_for_everyone()
    return info


__all__ = [
    "EXIT_STAGE_INPUT",
    "StageInputError",
    "StageStart",
    "finish_stage",
    "load_stage_processor",
    "load_stage_records",
    "log_rows",
    "run_main",
    "setup_logging",
    "start_stage",
]
