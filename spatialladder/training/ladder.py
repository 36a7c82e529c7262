"""The ladder, declared once: its stages in order, each one's entry point, recipe, input and output.

    python -m spatialladder.training.ladder stages                      # the stage names, in order
    python -m spatialladder.training.ladder plan STAGE [--key value ...]

A stage's input is the previous stage's output (the first stage's: its recipe's
``model_name_or_path``, or the tiny model in demo mode); its recipe is ``RECIPE_DIR/<stage>.yaml``;
its output is ``WORK_DIR/<stage>``, else its recipe's ``output_dir``. Adding a rung is one line in
:data:`LADDER` and one recipe per recipe folder.

``plan`` is what ``run_scripts/_common.sh`` runs before it launches a stage: it resolves the recipe,
input and output from the environment below, skips a finished stage and refuses one whose input
checkpoint is missing or incomplete (:func:`spatialladder.training.modeling.check_start`, which the
entry point asks again in-process), builds the demo's tiny model and synthetic data when they are
needed, and prints the entry module and its arguments, one per line (nothing when the stage is
finished; exit status 1 when it is refused). The shell then only picks the hardware and launches.

Environment (all optional): ``DEMO=1`` (demo recipes in ``configs/recipes/demo``, tiny model and
synthetic data; ``WORK_DIR`` defaults to ``outputs/demo``), ``WORK_DIR``, ``MODEL`` (this stage's
input), ``OUTPUT_DIR`` (this stage's output), ``DATA_DIR`` (``DATA_DIR/spld_*_data.jsonl`` and
``DATA_DIR/images``), ``RECIPE`` (this stage's recipe file), ``RECIPE_DIR`` (the folder of
``<stage>.yaml`` recipes).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spatialladder.training.modeling import StageInputError, check_start, is_finished

logger = logging.getLogger("spatialladder.ladder")

RECIPES = Path("configs/recipes")
DEMO_RECIPES = RECIPES / "demo"
DEMO_WORK_DIR = "outputs/demo"
TINY_MODEL_DIR = "tiny-qwen25vl"  # the demo's base model, under WORK_DIR
SYNTHETIC_DIR = "synthetic"  # the demo's data, under WORK_DIR


@dataclass(frozen=True)
class Stage:
    name: str
    entry: str  # the module ``accelerate launch -m`` runs


SFT, GRPO = "spatialladder.training.sft", "spatialladder.training.grpo"
# The chain: each stage starts from the output of the one before it.
LADDER: tuple[Stage, ...] = (
    Stage("stage1_grounding", SFT),  # perception
    Stage("stage2_spatial", SFT),  # understanding
    Stage("coldstart", SFT),  # reasoning format
    Stage("stage3_grpo", GRPO),  # reasoning
)


def get_stage(name: str) -> Stage:
    for stage in LADDER:
        if stage.name == name:
            return stage
    raise StageInputError(f"unknown stage {name!r}; the ladder is {', '.join(s.name for s in LADDER)}")


def previous_stage(name: str) -> Stage | None:
    index = LADDER.index(get_stage(name))
    return LADDER[index - 1] if index else None


@dataclass(frozen=True)
class Settings:
    """Where a run's stages read and write: the environment of a stage script, resolved."""

    demo: bool = False
    work_dir: str | None = None
    model: str | None = None
    output_dir: str | None = None
    data_dir: str | None = None
    recipe: str | None = None
    recipe_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def get(key: str) -> str | None:
            return env.get(key) or None  # set but empty = unset

        demo = get("DEMO") == "1"
        return cls(
            demo=demo,
            work_dir=get("WORK_DIR") or (DEMO_WORK_DIR if demo else None),
            model=get("MODEL"),
            output_dir=get("OUTPUT_DIR"),
            data_dir=get("DATA_DIR"),
            recipe=get("RECIPE"),
            recipe_dir=get("RECIPE_DIR"),
        )


def recipe_path(stage: str, settings: Settings) -> Path:
    """``RECIPE`` for this stage, else ``RECIPE_DIR/<stage>.yaml`` (default ``configs/recipes`` or,
    in demo mode, ``configs/recipes/demo``)."""
    if settings.recipe:
        return Path(settings.recipe)
    folder = Path(settings.recipe_dir) if settings.recipe_dir else DEMO_RECIPES if settings.demo else RECIPES
    return folder / f"{stage}.yaml"


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        recipe = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise StageInputError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise StageInputError(f"recipe {path} is not valid YAML: {exc}") from None
    if not isinstance(recipe, dict):
        raise StageInputError(f"recipe {path} must be a YAML mapping of key: value")
    return recipe


def stage_output(stage: str, settings: Settings, recipe: Mapping[str, Any]) -> str:
    """``WORK_DIR/<stage>``, else the recipe's ``output_dir`` (``OUTPUT_DIR`` applies to one stage
    and is the caller's)."""
    if settings.work_dir:
        return str(Path(settings.work_dir) / stage)
    if recipe.get("output_dir"):
        return str(recipe["output_dir"])
    raise StageInputError(
        f"no output directory for {stage}: set output_dir in its recipe, WORK_DIR or OUTPUT_DIR"
    )


def stage_input(stage: str, settings: Settings, recipe: Mapping[str, Any]) -> str:
    """``MODEL``, else the previous stage's output; the first stage's is the tiny model in demo mode,
    else its recipe's ``model_name_or_path``."""
    if settings.model:
        return settings.model
    previous = previous_stage(stage)
    if previous is not None:
        ladder_settings = dataclasses.replace(settings, recipe=None)  # RECIPE is this stage's file only
        previous_recipe = (
            {} if settings.work_dir else read_recipe(recipe_path(previous.name, ladder_settings))
        )
        return stage_output(previous.name, ladder_settings, previous_recipe)
    if settings.demo:
        return str(Path(settings.work_dir or DEMO_WORK_DIR) / TINY_MODEL_DIR)
    if recipe.get("model_name_or_path"):
        return str(recipe["model_name_or_path"])
    raise StageInputError(f"no input model for {stage}: set model_name_or_path in its recipe or MODEL")


def _last_value(args: Sequence[str], key: str) -> str | None:
    """The value a ``--key value`` / ``--key=value`` override gives (the last one wins, as in argparse)."""
    value = None
    for i, arg in enumerate(args):
        if arg == f"--{key}" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"--{key}="):
            value = arg.split("=", 1)[1]
    return value


# The demo builders are imported when used: they cost a non-demo plan about a second per stage.
def _prepare_demo_model(path: Path) -> None:
    from spatialladder.demo.tiny_model import MARKER_FILE, build_tiny_qwen25vl

    if not (path / MARKER_FILE).is_file():
        logger.info("building the tiny Qwen2.5-VL in %s", path)
        build_tiny_qwen25vl(path)


def _prepare_demo_data(root: Path) -> None:
    from spatialladder.synthetic import generate_dataset

    if not (root / "spld_coldstart_data.jsonl").is_file():
        logger.info("generating synthetic scenes in %s", root)
        generate_dataset(root, seed=0)


def plan(stage: str, settings: Settings, overrides: Sequence[str] = ()) -> list[str] | None:
    """The launch of ``stage``: ``[entry module, --config RECIPE, --model_name_or_path IN,
    --output_dir OUT, (--data_files ... --media_root ...), *overrides]``; None when the stage already
    finished. Raises :class:`StageInputError` when it cannot start (unknown stage, recipe, input)."""
    entry = get_stage(stage).entry
    path = recipe_path(stage, settings)
    if not path.is_file():
        raise StageInputError(f"recipe not found: {path}")
    recipe = read_recipe(path)
    output = (
        _last_value(overrides, "output_dir") or settings.output_dir or stage_output(stage, settings, recipe)
    )
    model = _last_value(overrides, "model_name_or_path") or stage_input(stage, settings, recipe)
    demo_model = (
        settings.demo and settings.work_dir and Path(model) == Path(settings.work_dir) / TINY_MODEL_DIR
    )
    if demo_model and not is_finished(output):
        _prepare_demo_model(Path(model))
    if not check_start(model, output):
        return None
    logger.info("input: %s", model)

    data_files = recipe.get("data_files") or []
    data_files = [data_files] if isinstance(data_files, str) else list(data_files)
    data: list[str] = []
    if settings.data_dir:
        root = Path(settings.data_dir)
        data = [
            "--data_files",
            *(str(root / Path(f).name) for f in data_files),
            "--media_root",
            str(root / "images"),
        ]
    elif settings.demo and settings.work_dir:
        root = Path(settings.work_dir) / SYNTHETIC_DIR
        _prepare_demo_data(root)
        data = [
            "--data_files",
            *(str(root / Path(f).name) for f in data_files),
            "--media_root",
            str(root / "media"),
        ]
    logger.info("recipe %s -> %s", path, output)
    return [
        entry,
        "--config",
        str(path),
        "--model_name_or_path",
        model,
        "--output_dir",
        output,
        *data,
        *overrides,
    ]


def _log_to_stderr(stage: str) -> None:
    """``[HH:MM:SS] [stage] message`` on stderr, as run_scripts/_common.sh logs (stdout carries the plan)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[%(asctime)s] [{stage}] %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger("spatialladder")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (file descriptor 1, native libraries included) to stderr:
    the demo builders may print, and stdout carries only the plan."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spatialladder.training.ladder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("stages", help="print the stage names, in order")
    plan_parser = sub.add_parser("plan", help="print the launch of STAGE (nothing when it is finished)")
    plan_parser.add_argument("stage")
    plan_parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, help="--key value overrides of the recipe"
    )
    args = parser.parse_args(argv)
    if args.command == "stages":
        print("\n".join(stage.name for stage in LADDER))
        return 0
    _log_to_stderr(args.stage)
    overrides = [arg for arg in args.overrides if arg != "--demo"]
    env = {**os.environ, "DEMO": "1"} if "--demo" in args.overrides else os.environ  # the scripts' flag
    try:
        with _stdout_to_stderr():
            command = plan(args.stage, Settings.from_env(env), overrides)
    except StageInputError as exc:
        logger.error("ERROR: %s", exc)
        return 1
    if command is not None:
        if any("\n" in arg for arg in command):
            logger.error("ERROR: an argument contains a line break: %r", command)
            return 1
        print("\n".join(command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
