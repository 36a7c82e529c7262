"""Which training engine a run actually uses, and a hard stop when it is not the one asked for.

accelerate quietly drops DeepSpeed in some setups (``use_cpu: true`` in the config or
``ACCELERATE_USE_CPU`` in the environment turn a DeepSpeed config into plain DDP, and the ZeRO-3
vision dummy then resolves to off). A researcher who asked for ZeRO-3 must not train on something
else without knowing, so the entry points call :func:`check_engine` once their trainer exists: it
logs one line naming the engine and ZeRO stage in use and raises :class:`EngineMismatchError` when
the requested engine differs.

The request comes from ``SPATIALLADDER_ENGINE`` (``run_scripts/_common.sh`` sets it from the
accelerate config it launches with, see :func:`requested_engine_of_config`) or, for a plain
``accelerate launch`` of a DeepSpeed config, from the ``ACCELERATE_USE_DEEPSPEED`` /
``ACCELERATE_DEEPSPEED_*`` variables accelerate's launcher sets.

    python -m spatialladder.training.engine requested configs/accelerate/zero3.yaml [--cpu]  # deepspeed-zero3
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("spatialladder.engine")

ENGINE_ENV = "SPATIALLADDER_ENGINE"


class EngineMismatchError(RuntimeError):
    """The run would train with another engine than the one requested."""


def _zero_stage_of_json(path: str | os.PathLike) -> int:
    with open(path) as fh:
        return int(json.load(fh).get("zero_optimization", {}).get("stage", 0))


def requested_engine_of_config(config_file: str | os.PathLike, *, cpu: bool = False) -> str:
    """``deepspeed-zero<N>`` for a DeepSpeed accelerate config, ``ddp`` for a multi-process one,
    ``single`` otherwise. A relative ``deepspeed_config_file`` is resolved like accelerate does
    (against the working directory).

    Raises ``ValueError`` for a DeepSpeed config that cannot run as written: ``use_cpu: true``
    (accelerate then launches without DeepSpeed) and, on CPU (``cpu``), a ``mixed_precision`` key
    (every rank exits with status 2 in accelerate's DeepSpeed setup).
    """
    import yaml

    config = yaml.safe_load(Path(config_file).read_text()) or {}
    kind = str(config.get("distributed_type", "NO")).upper()
    if kind == "DEEPSPEED":
        if config.get("use_cpu"):
            raise ValueError(f"{config_file}: use_cpu: true makes accelerate drop DeepSpeed; remove it")
        if cpu and "mixed_precision" in config:
            raise ValueError(
                f"{config_file}: a mixed_precision key stops DeepSpeed on CPU; remove it "
                "(precision comes from the recipe's bf16 switch)"
            )
        ds = config.get("deepspeed_config") or {}
        if ds.get("deepspeed_config_file"):
            stage = _zero_stage_of_json(ds["deepspeed_config_file"])
        else:
            stage = int(ds.get("zero_stage", 0))
        return f"deepspeed-zero{stage}"
    if kind.startswith("MULTI_"):
        return "ddp"
    return "single"


def requested_engine() -> str | None:
    """The engine this launch asked for (see the module docstring); None when nothing says."""
    if os.environ.get(ENGINE_ENV):
        return os.environ[ENGINE_ENV]
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true", "yes"):
        if os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none").lower() != "none":
            return f"deepspeed-zero{_zero_stage_of_json(os.environ['ACCELERATE_DEEPSPEED_CONFIG_FILE'])}"
        return f"deepspeed-zero{int(os.environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', 0))}"
    return None


def engine_in_use(accelerator: Any) -> str:
    """``deepspeed-zero<N>``, ``ddp`` or ``single`` for an accelerate ``Accelerator``."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:
        return f"deepspeed-zero{int(plugin.zero_stage or 0)}"
    return "ddp" if accelerator.num_processes > 1 else "single"


def describe_engine(accelerator: Any) -> str:
    """One line for the training log, e.g. ``DeepSpeed ZeRO-3, 2 process(es), gloo on cpu``."""
    import torch.distributed as dist

    engine = engine_in_use(accelerator)
    names = {"ddp": "DDP (no DeepSpeed)", "single": "single process (no DeepSpeed)"}
    name = names.get(engine) or f"DeepSpeed ZeRO-{engine.removeprefix('deepspeed-zero')}"
    backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else "none"
    return f"{name}, {accelerator.num_processes} process(es), backend {backend} on {accelerator.device.type}"


def check_engine(accelerator: Any) -> str:
    """Log the engine in use; raise :class:`EngineMismatchError` when it is not the requested one.

    Only the DeepSpeed-or-not question and the ZeRO stage are enforced: a DDP config launched with
    one process legitimately runs as a single process.
    """
    actual, wanted = engine_in_use(accelerator), requested_engine()
    line = describe_engine(accelerator)
    logger.warning("training engine: %s", line)  # warning: shown on every rank and log level
    if wanted is not None and (wanted.startswith("deepspeed") or actual.startswith("deepspeed")):
        if wanted != actual:
            raise EngineMismatchError(
                f"requested training engine {wanted} but this process runs {line}. "
                "On a machine without GPUs, DeepSpeed needs DS_ACCELERATOR=cpu and --ddp_backend gloo, "
                "and must not be combined with use_cpu / ACCELERATE_USE_CPU (accelerate then drops "
                "DeepSpeed); run_scripts/_common.sh sets this up."
            )
    return actual


def _main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "requested" and argv[2:] in ([], ["--cpu"]):
        try:
            print(requested_engine_of_config(argv[1], cpu=argv[2:] == ["--cpu"]))
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    print(
        "usage: python -m spatialladder.training.engine requested ACCELERATE_CONFIG [--cpu]", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
