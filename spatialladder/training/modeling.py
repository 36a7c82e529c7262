"""Model / processor loading and checkpoint bookkeeping shared by the SFT stages and GRPO.

* :func:`load_processor` applies the run's pixel bounds to the image *and* video processors;
  :func:`load_model` loads float32 master weights (bf16 compute = the run's ``bf16`` switch),
  resolves ``attn_implementation: auto``, and freezes the ViT on request.
* Whether a stage starts is decided in one place, :func:`check_start`: a finished run (its
  ``DONE`` marker, written after the final model and processor by :func:`write_done_marker`) is
  skipped, and a missing or incomplete input checkpoint is refused, naming what is missing
  (:func:`input_checkpoint_problems`). An interrupted run resumes from its newest complete
  ``checkpoint-*`` (:func:`find_resume_checkpoint`).

Importing this module is cheap (no torch / transformers at import time): the ladder's pre-launch
check (``python -m spatialladder.training.ladder plan``) uses it before any process is launched.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DONE_MARKER = "DONE"
ADAPTER_DIR = "adapter"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# The language model's projections only; the ViT uses `qkv`/`proj` and would otherwise match the MLP names.
DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


# ---------------------------------------------------------------------------------------------
# Checkpoint checks (stdlib only)
# ---------------------------------------------------------------------------------------------


def looks_like_local_path(name: str) -> bool:
    """Whether a ``model_name_or_path`` means a directory rather than a Hub id like ``org/name``.

    A Hub id is ``org/name`` that exists neither as a path nor with ``org`` as a local directory
    (so ``outputs/stage1`` counts as local even before it exists).
    """
    parts = name.split("/")
    hub_like = len(parts) == 2 and all(parts) and not name.startswith((".", "~"))
    return not hub_like or os.path.exists(name) or os.path.isdir(parts[0])


def checkpoint_problems(path: str | os.PathLike[str]) -> list[str]:
    """What keeps ``path`` from being a loadable model + processor checkpoint ([] when complete).

    Complete = ``config.json``, the weights (a single file, or an index and every shard it names)
    and the processor (``processor_config.json``/``preprocessor_config.json`` and a tokenizer).
    """
    root = Path(path).expanduser()
    if not root.exists():
        return [f"{root}: no such directory"]
    if not root.is_dir():
        return [f"{root}: not a directory"]
    problems = []
    if not (root / "config.json").is_file():
        problems.append(f"{root}: config.json missing")
    index = next((root / name for name in _WEIGHT_INDEXES if (root / name).is_file()), None)
    if index is not None:
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            problems.append(f"{index}: unreadable weight index ({exc})")
        else:
            problems += [
                f"{root}: weight shard {s} (listed in {index.name}) missing"
                for s in shards
                if not (root / s).is_file()
            ]
    elif not any((root / name).is_file() for name in _WEIGHT_FILES):
        problems.append(f"{root}: model weights missing (no {' / '.join(_WEIGHT_FILES + _WEIGHT_INDEXES)})")
    if not any((root / name).is_file() for name in _PROCESSOR_FILES):
        problems.append(f"{root}: processor files missing (no {' / '.join(_PROCESSOR_FILES)})")
    if not any((root / name).is_file() for name in _TOKENIZER_FILES):
        problems.append(f"{root}: tokenizer files missing (no {' / '.join(_TOKENIZER_FILES)})")
    return problems


def is_finished(output_dir: str | os.PathLike[str]) -> bool:
    """Whether ``output_dir`` holds a finished run (its ``DONE`` marker is written last)."""
    return (Path(output_dir) / DONE_MARKER).is_file()


class StageInputError(ValueError):
    """A stage's input or setting that keeps it from starting (a missing or incomplete input
    checkpoint, data file, media root, ...), found before any model is loaded; the message names it."""


def input_checkpoint_problems(model_name_or_path: str) -> list[str]:
    """What keeps ``model_name_or_path`` from being a stage's input ([] for a usable one or a Hub id):
    :func:`checkpoint_problems`, and ``checkpoint-*`` directories without a ``DONE`` marker (the
    stage that writes it was interrupted: its checkpoints are not its final model)."""
    if not looks_like_local_path(model_name_or_path):
        return []
    problems = checkpoint_problems(model_name_or_path)
    root = Path(model_name_or_path).expanduser()
    if root.is_dir() and not is_finished(root) and any(root.glob("checkpoint-*")):
        problems.append(
            f"{root}: has checkpoint-* but no {DONE_MARKER} marker: the stage that writes it did not finish "
            "(rerun it)"
        )
    return problems


def check_start(model_name_or_path: str | None, output_dir: str | os.PathLike[str]) -> bool:
    """Whether a stage writing ``output_dir`` from ``model_name_or_path`` trains: False (logged) when
    ``output_dir`` already holds a finished run; raises :class:`StageInputError`, naming every
    problem, when the input checkpoint is not set, missing or incomplete.

    The one place this is decided: the stage scripts ask it before launching
    (:mod:`spatialladder.training.ladder`) and the entry points again in-process, so a direct
    ``python -m spatialladder.training.sft`` run behaves the same.
    """
    if is_finished(output_dir):
        logger.info(
            "already finished (%s): skipping; delete %s to train it again",
            Path(output_dir) / DONE_MARKER,
            output_dir,
        )
        return False
    if not model_name_or_path:
        raise StageInputError(
            "model_name_or_path is not set: a stage after the first reads the previous stage's output, "
            "which run_scripts/<stage>.sh passes (or give --model_name_or_path)"
        )
    problems = input_checkpoint_problems(model_name_or_path)
    if problems:
        raise StageInputError(
            f"refusing to start: input checkpoint {model_name_or_path} is missing or incomplete:\n  "
            + "\n  ".join(problems)
        )
    return True


def _checkpoint_complete(path: Path) -> bool:
    # trainer_state.json is written after model, optimizer and scheduler states; a run killed while
    # saving leaves a directory without it (or without the weights), which must not be resumed.
    has_weights = any(
        (path / n).is_file() for n in _WEIGHT_FILES + _WEIGHT_INDEXES + ("adapter_model.safetensors",)
    )
    return (path / "trainer_state.json").is_file() and (has_weights or any(path.glob("global_step*")))


def find_resume_checkpoint(output_dir: str | os.PathLike[str]) -> str | None:
    """The newest complete ``checkpoint-N`` under ``output_dir`` (None when there is none).

    transformers lists the checkpoints (``get_last_checkpoint`` is the newest of ``sort_checkpoints``);
    a newest one that a kill interrupted while saving is skipped, with a warning, for the one before:
    the Trainer saves that step again when it gets there.
    """
    # Imported here: this module stays torch-free for the pre-launch check.
    from transformers.trainer_utils import sort_checkpoints

    if not Path(output_dir).is_dir():
        return None
    for checkpoint in reversed(sort_checkpoints(str(output_dir))):
        if _checkpoint_complete(Path(checkpoint)):
            return checkpoint
        logger.warning("skipping incomplete checkpoint %s (interrupted while saving)", checkpoint)
    return None


def write_done_marker(output_dir: str | os.PathLike[str], info: dict[str, Any]) -> Path:
    """Write ``OUTPUT_DIR/DONE`` (JSON) atomically; call it after everything else is saved."""
    path = Path(output_dir) / DONE_MARKER
    tmp = path.with_name(f".{DONE_MARKER}.tmp")
    tmp.write_text(json.dumps({"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def checkpoint_global_step(checkpoint_dir: str | os.PathLike[str] | None) -> int:
    """The optimizer step a ``checkpoint-*`` was saved at (0 for None: a fresh run)."""
    if not checkpoint_dir:
        return 0
    return int(json.loads((Path(checkpoint_dir) / "trainer_state.json").read_text())["global_step"])


def whole_run_train_loss(
    log_history: Sequence[dict[str, Any]], global_step: int, run_train_loss: float | None, start_step: int
) -> float | None:
    """Mean training loss over *all* steps of a run that may have been resumed at ``start_step``.

    The Trainer's ``train_loss`` averages only the steps of the current call (``start_step`` to
    ``global_step``); the steps before the resume are in the restored log history, each logged
    ``loss`` being the mean over the steps since the previous entry. Exact when the checkpoint's
    step was a logging step (``save_steps`` a multiple of ``logging_steps``, as in every recipe);
    otherwise the steps between the last log and the checkpoint are left out of the mean.
    """
    if run_train_loss is None or global_step <= 0:
        return run_train_loss
    total, steps, previous = 0.0, 0, 0
    for entry in sorted((e for e in log_history if "loss" in e), key=lambda e: e["step"]):
        if entry["step"] > start_step:
            break
        total += float(entry["loss"]) * (entry["step"] - previous)
        steps += entry["step"] - previous
        previous = entry["step"]
    run_steps = global_step - start_step
    total += float(run_train_loss) * run_steps
    steps += run_steps
    return total / steps if steps else run_train_loss


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def resolve_attn_implementation(requested: str | None) -> str:
    """``None``/``auto`` -> flash_attention_2 on CUDA with flash-attn installed, else sdpa."""
    if requested not in (None, "", "auto"):
        return str(requested)
    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def master_weights_dtype(model_args: Any) -> Any:
    """The dtype a *training* run loads its weights in: float32, the optimizer's master weights.

    bf16 compute is the run's ``bf16`` switch: the Trainer's autocast over fp32 weights on one GPU
    or DDP, DeepSpeed's bf16 engine (which keeps its own fp32 master copy) under ZeRO. Loading the
    weights themselves in bf16 would make the weights *and* AdamW's state bf16, where updates at
    lr 1e-5 mostly round away, so ``dtype: bfloat16``/``float16`` is refused, except with LoRA
    (``use_peft``), where the half-precision base weights are frozen and the adapters train in fp32.
    ``auto`` (or unset) means float32.
    """
    import torch

    requested = getattr(model_args, "dtype", None)
    if requested in (None, "", "auto", "float32"):
        return torch.float32
    if requested in ("bfloat16", "float16") and getattr(model_args, "use_peft", False):
        return getattr(torch, requested)
    if requested in ("bfloat16", "float16"):
        switch = "bf16" if requested == "bfloat16" else "fp16"
        raise ValueError(
            f"dtype: {requested} would train {requested} weights and optimizer state with no float32 master "
            f"copy (updates at lr 1e-5 round away). Training keeps float32 master weights: set dtype: float32 "
            f"(or auto) and {switch}: true for {requested} compute (autocast; DeepSpeed keeps its own master "
            "copy). Only LoRA (use_peft: true) loads a frozen base model in a half dtype."
        )
    raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {requested!r}")


def _effective_pixel_bounds(sub_processor: Any) -> tuple[Any, Any]:
    """(min, max) pixels an image / video processor resizes to: transformers 5 reads them from
    ``size`` (shortest_edge / longest_edge) when it processes."""
    size = getattr(sub_processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    return get("shortest_edge"), get("longest_edge")


def check_pixel_bounds(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Raise ``ValueError`` naming requested and effective values unless the image and video
    processors of ``processor`` (and the resize rule grounding boxes are rescaled with) use the
    requested bounds; an unset bound is not checked."""
    from spatialladder.geometry import ResizeRule

    effective: dict[str, tuple[Any, Any]] = {}
    for name in ("image_processor", "video_processor"):
        sub = getattr(processor, name, None)
        if sub is not None:
            effective[name] = _effective_pixel_bounds(sub)
    if getattr(processor, "image_processor", None) is not None:
        rule = ResizeRule.from_processor(processor)
        effective["box rescaling (ResizeRule)"] = (rule.min_pixels, rule.max_pixels)
    wrong = [
        f"{name} min_pixels={lo}, max_pixels={hi}"
        for name, (lo, hi) in effective.items()
        if (min_pixels is not None and lo != min_pixels) or (max_pixels is not None and hi != max_pixels)
    ]
    if wrong:
        raise ValueError(
            f"pixel budget not applied: requested min_pixels={min_pixels}, max_pixels={max_pixels}, "
            "but the loaded " + "; ".join(wrong)
        )


def load_processor(
    model_name_or_path: str,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """The checkpoint's processor with the run's pixel bounds on images and video frames alike.

    The bounds are passed as ``min_pixels``/``max_pixels``: Qwen2-VL's image and video processors
    apply those *after* ``size`` and after the checkpoint's own keys, so they win whatever the
    config's format (the Hub's Qwen2.5-VL ``preprocessor_config.json`` has top-level
    ``min_pixels``/``max_pixels``, which override a ``size`` kwarg). They are kept the
    transformers-5 way (``size = {shortest_edge, longest_edge}``), which
    :meth:`spatialladder.geometry.ResizeRule.from_processor` reads. A bound left unset keeps the
    checkpoint's. The effective bounds are checked after loading (:func:`check_pixel_bounds`).
    """
    from transformers import AutoProcessor

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision:
        kwargs["revision"] = revision
    if min_pixels is not None:
        kwargs["min_pixels"] = int(min_pixels)
    if max_pixels is not None:
        kwargs["max_pixels"] = int(max_pixels)
    processor = AutoProcessor.from_pretrained(model_name_or_path, **kwargs)
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_pixel_bounds(processor, min_pixels, max_pixels)
    return processor


def freeze_vision_tower(model: Any) -> int:
    """Freeze the ViT of every vision backbone in ``model`` (patch merger stays trainable).

    Returns the number of parameters frozen.
    """
    frozen = 0
    for module in model.modules():
        visual = getattr(module, "visual", None)
        if visual is None or not hasattr(visual, "parameters"):
            continue
        merger = getattr(visual, "merger", None)
        keep = {id(p) for p in merger.parameters()} if merger is not None else set()
        for param in visual.parameters():
            if id(param) not in keep and param.requires_grad:
                param.requires_grad_(False)
                frozen += param.numel()
    if frozen == 0:
        raise ValueError(
            f"freeze_vision_tower: {type(model).__name__} has no `.visual` vision tower to freeze"
        )
    return frozen


def load_model(model_args: Any, training_args: Any = None, *, freeze_vision: bool = False) -> Any:
    """``AutoModelForImageTextToText`` from ``model_args`` (a ``trl.ModelConfig``) for training.

    Weights load in float32 (:func:`master_weights_dtype`; bf16 compute is the run's ``bf16``),
    ``attn_implementation`` accepts ``auto``; the KV cache is disabled when gradient checkpointing
    is on.
    """
    from transformers import AutoModelForImageTextToText

    from spatialladder.positions import install_original_positions

    dtype = master_weights_dtype(model_args)
    attn = resolve_attn_implementation(model_args.attn_implementation)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "attn_implementation": attn,
        "trust_remote_code": getattr(training_args, "trust_remote_code", False),
    }
    if getattr(model_args, "model_revision", None) not in (None, "main"):
        kwargs["revision"] = model_args.model_revision
    model = AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **kwargs)
    install_original_positions(model)  # Qwen2.5-VL's own M-RoPE layout after videos (spatialladder.positions)
    if training_args is not None and getattr(training_args, "gradient_checkpointing", False):
        model.config.use_cache = False
        if hasattr(model.config, "text_config"):
            model.config.text_config.use_cache = False
    if freeze_vision:
        n = freeze_vision_tower(model)
        logger.info("froze %.1fM vision-tower parameters", n / 1e6)
    logger.info("loaded %s (dtype=%s, attn_implementation=%s)", model_args.model_name_or_path, dtype, attn)
    return model


def peft_config_for(model_args: Any) -> Any:
    """TRL's LoRA config from ``model_args`` (None without ``use_peft``), defaulting the targets to
    the language model's projections (the ViT stays out unless targeted explicitly)."""
    from trl import get_peft_config

    if not model_args.use_peft:
        return None
    config = get_peft_config(model_args)
    if config.target_modules is None:
        config.target_modules = DEFAULT_LORA_TARGETS
    return config


# ---------------------------------------------------------------------------------------------
# Resuming
# ---------------------------------------------------------------------------------------------


class CheckpointConversionResumeMixin:
    """Trainer mixin: resume full-model checkpoints through ``from_pretrained``'s key mapping.

    transformers 5.23's ``Trainer._load_from_checkpoint`` loads ``checkpoint-*/model.safetensors``
    with a raw ``model.load_state_dict(..., strict=False)``, but ``save_pretrained`` wrote
    Qwen2.5-VL's *legacy* key names (``visual.*``, ``model.layers.*``) while the model's are
    ``model.visual.*``, ``model.language_model.*``: every weight is reported missing and the run
    silently resumes from the *initial* weights (with the checkpoint's optimizer state, step and
    schedule). Upstream: huggingface/transformers#43701 (open). This override loads the checkpoint
    with the model class's ``from_pretrained`` (which maps the keys) and copies it in strictly.
    DeepSpeed / FSDP / PEFT checkpoints keep the stock path (their own formats load correctly).
    """

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from accelerate.utils import is_peft_model

        target = self.model if model is None else model
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or is_peft_model(target):
            return super()._load_from_checkpoint(resume_from_checkpoint, model=model)  # type: ignore[misc]
        load_full_checkpoint_into(target, resume_from_checkpoint)
        return None


def load_full_checkpoint_into(model: Any, checkpoint_dir: str) -> None:
    """Copy a ``save_pretrained`` checkpoint's weights into ``model`` (keys mapped like
    ``from_pretrained`` does; any missing or unexpected key raises)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    reference = type(model).from_pretrained(checkpoint_dir, dtype=dtype, device_map=None)
    result = model.load_state_dict(reference.state_dict(), strict=True)
    del reference
    logger.info("resumed weights from %s (%s)", checkpoint_dir, result)


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def save_final_model(
    trainer: Any, processor: Any, output_dir: str, *, base_model: str, merge_lora: bool = True
) -> dict[str, Any]:
    """Save the final model *with* its processor so the next stage and evaluation load the directory.

    Full fine-tuning: ``trainer.save_model`` (gathers ZeRO-3 shards) + the processor. LoRA: the
    adapter goes to ``OUTPUT_DIR/adapter``; with ``merge_lora`` the main process then reloads the
    base model, merges the adapter and saves the merged weights in ``OUTPUT_DIR`` (plus a note), so
    the directory loads like any full checkpoint. Returns a summary for the ``DONE`` marker.
    """
    from accelerate.utils import is_peft_model

    is_peft = is_peft_model(trainer.model)
    out = Path(output_dir)
    info: dict[str, Any] = {"base_model": base_model, "lora": bool(is_peft)}
    if not is_peft:
        trainer.save_model(str(out))
    else:
        adapter_dir = out / ADAPTER_DIR
        trainer.save_model(str(adapter_dir))
        info["adapter_dir"] = str(adapter_dir)
        trainer.accelerator.wait_for_everyone()
        if trainer.accelerator.is_main_process:
            if merge_lora:
                _merge_adapter(trainer, base_model, adapter_dir, out)
                note = (
                    f"The weights in this directory are `{base_model}` with the LoRA adapter of `{ADAPTER_DIR}/` "
                    "merged in; load the directory like any checkpoint. The raw adapter is kept in "
                    f"`{ADAPTER_DIR}/` (load it on top of the base model with peft).\n"
                )
            else:
                note = (
                    f"Only the LoRA adapter was saved (`{ADAPTER_DIR}/`, merge_lora=false). Load `{base_model}` "
                    f"and apply the adapter with `peft.PeftModel.from_pretrained(model, '{ADAPTER_DIR}')`; the "
                    "next stage needs a merged checkpoint.\n"
                )
            (out / "LORA.md").write_text(note)
        info["merged"] = bool(merge_lora)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(str(out))
    trainer.accelerator.wait_for_everyone()
    return info


def _merge_adapter(trainer: Any, base_model: str, adapter_dir: Path, out: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText
    from transformers.integrations import deepspeed as hf_deepspeed

    dtype = next((p.dtype for p in trainer.model.parameters() if p.is_floating_point()), torch.float32)
    # Only the main process merges: under ZeRO-3, from_pretrained would otherwise build the model
    # inside deepspeed.zero.Init, a collective the other ranks never join.
    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        base = AutoModelForImageTextToText.from_pretrained(base_model, dtype=dtype, device_map=None)
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        merged.save_pretrained(str(out))
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = ref
