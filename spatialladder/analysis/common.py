"""Small helpers shared by the analysis commands: the stages of a run, JSON out, matplotlib."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from spatialladder.evaluation.runner import _atomic_write_text

# The ladder's stage folders in training order (run_scripts/run_all.sh with WORK_DIR) and the base
# model the demo builds; any other stage-like folder of a run follows these, sorted by name.
STAGE_ORDER: tuple[str, ...] = ("stage1_grounding", "stage2_spatial", "coldstart", "stage3_grpo")
BASE_DIRS: tuple[str, ...] = ("tiny-qwen25vl",)
_CHECKPOINT_RE = re.compile(r"checkpoint-(\d+)$")


def write_json(path: Path, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON (NaN is not valid JSON: callers pass None)."""
    _atomic_write_text(Path(path), json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return Path(path)


def checkpoints(stage_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint-N`` folder of a stage, by step."""
    found = []
    for p in Path(stage_dir).glob("checkpoint-*"):
        m = _CHECKPOINT_RE.search(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def is_model_dir(path: Path) -> bool:
    """A loadable checkpoint: a config and weights (the final model of a stage, or the base model)."""
    path = Path(path)
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))
    return (path / "config.json").is_file() and has_weights


def ordered_stage_dirs(run_dir: Path, *, require: str) -> list[Path]:
    """Stage folders of ``run_dir`` in ladder order; ``require`` = "trainer_state" (a training
    log: the stage's own or one of its checkpoints') or "model" (final weights)."""
    run_dir = Path(run_dir)

    def ok(p: Path) -> bool:
        if require == "model":
            return is_model_dir(p)
        return (p / "trainer_state.json").is_file() or any(
            (c / "trainer_state.json").is_file() for _, c in checkpoints(p)
        )

    subdirs = (
        [p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if run_dir.is_dir()
        else []
    )
    known = [run_dir / s for s in STAGE_ORDER if (run_dir / s).is_dir()]
    others = sorted(p for p in subdirs if p.name not in STAGE_ORDER and p.name not in BASE_DIRS)
    return [p for p in known + others if ok(p)]


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
