"""Configuration dataclasses shared by the SFT stages and stage-3 GRPO.

A run is configured by three dataclasses parsed together by :class:`trl.TrlParser` from a YAML
recipe plus ``--key value`` command-line overrides (open-r1 style):

* :class:`SpatialLadderArguments`: what this project adds (data files, pixel budget, frames,
  prompt kind, freezing, ...). GRPO reuses it as is.
* :class:`SFTConfig`: TRL's ``SFTConfig`` with defaults that fit vision-language SFT here.
* ``trl.ModelConfig``: model path, dtype, attention implementation, LoRA settings, resolved in
  :mod:`spatialladder.training.modeling`: ``attn_implementation`` (unset or ``auto``:
  flash_attention_2 on CUDA with flash-attn installed, else sdpa) and ``dtype``, the dtype of the
  *master* weights: float32 (``auto`` too); bf16 compute is the training config's ``bf16`` switch
  (autocast, or DeepSpeed's bf16 engine), and ``bfloat16``/``float16`` are refused (LoRA aside).

:func:`parse_args` turns an unknown recipe key into one short error naming the key and the recipe,
and a value outside a field's ``choices`` (recipe or command line) into one naming the field.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import trl
import yaml

PROMPT_KIND_CHOICES = ("auto", "grounding", "direct", "thinking")
DEFAULT_MIN_PIXELS = 16 * 28 * 28
DEFAULT_MAX_PIXELS = 128 * 28 * 28


@dataclass
class SpatialLadderArguments:
    """Project arguments: data, media handling and model options that TRL has no field for."""

    data_files: list[str] = field(
        default_factory=list,
        metadata={"help": "SpatialLadder-26k jsonl file(s) to train on (all of one kind)."},
    )
    media_root: str | None = field(
        default=None,
        metadata={"help": "Directory the rows' image paths are relative to (images.zip unpacked)."},
    )
    data_kind: str | None = field(
        default=None,
        metadata={
            "help": "grounding, spatial or coldstart; unset: from the file name, else the first row.",
            "choices": ["grounding", "spatial", "coldstart"],
        },
    )
    prompt_kind: str = field(
        default="auto",
        metadata={
            "help": "Prompt for spatial rows: direct (stage 2) or thinking; auto = grounding rows -> "
            "grounding, spatial rows -> direct, cold-start rows keep their own prompt.",
            "choices": list(PROMPT_KIND_CHOICES),
        },
    )
    system_message: str | None = field(
        default=None,
        metadata={"help": "System message; unset keeps the chat template's default one."},
    )
    min_pixels: int = field(
        default=DEFAULT_MIN_PIXELS,
        metadata={"help": "Lower pixel bound per image / video frame (Qwen2.5-VL smart_resize)."},
    )
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS,
        metadata={"help": "Upper pixel bound per image / video frame; grounding boxes are rescaled to it."},
    )
    video_frames: int = field(
        default=16,
        metadata={"help": "Video rows are uniformly subsampled to at most this many frames."},
    )
    video_fps: float = field(
        default=2.0,
        metadata={
            "help": "Frame rate assumed for a frame list (qwen-vl-utils' value); sets the temporal M-RoPE "
            "step (second_per_grid_ts). Same value as in GRPO and evaluation."
        },
    )
    num_views: int = field(default=8, metadata={"help": "Views per multi_view row (validation)."})
    max_samples: int | None = field(
        default=None,
        metadata={"help": "Train on N evenly spaced rows only (smoke runs / fixed small sets)."},
    )
    skip_validation: bool = field(
        default=False,
        metadata={
            "help": "Skip decoding every media file before training (row structure is still checked). "
            "Only for data validated before with `python -m spatialladder.data.validate`."
        },
    )
    freeze_vision_tower: bool = field(
        default=False,
        metadata={"help": "Freeze the ViT (the patch merger/projector stays trainable). Paper: trainable."},
    )
    merge_lora: bool = field(
        default=True,
        metadata={
            "help": "With use_peft: save the final model with the LoRA weights merged in (the next stage and "
            "evaluation load it directly); the adapter alone is kept in OUTPUT_DIR/adapter."
        },
    )
    vision_dummy: str = field(
        default="auto",
        metadata={
            "help": "Run the vision tower exactly once per forward on every rank (true/false/auto = only "
            "under DeepSpeed ZeRO-2/3, where ranks would otherwise hang); see spatialladder.training.zero3."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.data_files, str):
            self.data_files = [self.data_files]
        self.data_files = [str(f) for f in self.data_files]
        if self.min_pixels <= 0 or self.max_pixels < self.min_pixels:
            raise ValueError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if self.video_frames < 1:
            raise ValueError(f"video_frames must be >= 1, got {self.video_frames}")
        if self.video_fps <= 0:
            raise ValueError(f"video_fps must be > 0, got {self.video_fps}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {self.max_samples}")
        if str(self.vision_dummy).lower() not in ("auto", "true", "false"):
            raise ValueError(f"vision_dummy must be true, false or auto, got {self.vision_dummy!r}")


def cuda_bf16_available() -> bool:
    """Whether this process sees a CUDA device that computes in bf16."""
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


@dataclass
class SFTConfig(trl.SFTConfig):
    """TRL's ``SFTConfig`` with the defaults this project's SFT needs.

    * ``bf16`` unset means auto: bf16 on a CUDA GPU that supports it, fp32 on CPU (TRL's own
      default, ``not fp16``, makes every CPU run fail in ``TrainingArguments`` validation).
    * ``remove_unused_columns=False`` and ``skip_prepare_dataset``: rows keep their raw columns
      (prompt, target, media paths) until :class:`~spatialladder.training.collator.SpatialSFTCollator`
      renders, tokenizes and masks them per batch.
    * ``max_length=None``: truncation would cut vision placeholders or the answer; the collator
      raises instead when a sample is longer than a ``max_length`` that is set.
    """

    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision; unset = auto (bf16 on a bf16-capable CUDA GPU, else fp32)."},
    )
    remove_unused_columns: bool | None = field(
        default=False,
        metadata={"help": "Must stay False: the collator needs the raw sample columns."},
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Longest allowed sample in tokens (vision tokens included); unset = no limit."},
    )

    def __post_init__(self) -> None:
        if self.bf16 is None:
            self.bf16 = (not self.fp16) and (not self.use_cpu) and cuda_bf16_available()
        super().__post_init__()
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns must be False: the SFT collator reads the raw sample columns"
            )
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}


class ConfigError(ValueError):
    """A recipe or command line that cannot be parsed (unknown key, unreadable recipe, ...)."""


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """Parse ``--config RECIPE.yaml`` plus CLI overrides into ``dataclass_types`` instances.

    A recipe key or CLI flag that no dataclass knows raises :class:`ConfigError` naming it (and the
    recipe) before anything heavy happens; TRL alone reports recipe keys as ``--KEY VALUE`` pairs
    and only after parsing the command line.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    parser = trl.TrlParser(dataclass_types=list(dataclass_types))
    known = {action.dest for action in parser._actions}
    names = ", ".join(dataclass.__name__ for dataclass in dataclass_types)
    if "--config" in args:
        i = args.index("--config")
        if i + 1 >= len(args):
            raise ConfigError("--config needs a recipe path")
        recipe = args[i + 1]
        try:
            with open(recipe) as fh:
                config = yaml.safe_load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read recipe {recipe}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"recipe {recipe} is not valid YAML: {exc}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"recipe {recipe} must be a YAML mapping of key: value")
        unknown = sorted(key for key in config if key not in known and key != "env")
        if unknown:
            raise ConfigError(
                f"unknown key(s) in recipe {recipe}: {', '.join(unknown)} (not a field of {names})"
            )
    options = {opt for action in parser._actions for opt in action.option_strings} | {"--config"}
    flags = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    unknown_flags = sorted({f for f in flags if f not in options})
    if unknown_flags:
        raise ConfigError(f"unknown option(s): {', '.join(unknown_flags)} (not a field of {names})")
    parsed = parser.parse_args_and_config(args=args)
    # argparse checks `choices` on the command line only; recipe values arrive as defaults.
    for instance in parsed:
        for f in dataclasses.fields(instance):
            choices = f.metadata.get("choices")
            value = getattr(instance, f.name, None)
            if choices and value is not None and value not in choices:
                where = (
                    f"recipe {args[args.index('--config') + 1]}" if "--config" in args else "the command line"
                )
                raise ConfigError(
                    f"{f.name}: {value!r} is not one of {', '.join(map(str, choices))} (from {where})"
                )
    return parsed


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_PIXELS",
    "PROMPT_KIND_CHOICES",
    "ConfigError",
    "SFTConfig",
    "SpatialLadderArguments",
    "cuda_bf16_available",
    "parse_args",
]
