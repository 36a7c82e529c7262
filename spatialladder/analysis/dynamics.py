"""Training dynamics of a run: SFT loss, GRPO reward curves and benchmark score per checkpoint.

Reads each stage's ``trainer_state.json`` (``log_history``, written by ``trainer.save_state()``; the
newest ``checkpoint-*/trainer_state.json`` when the stage has not finished). SFT stages log ``loss``;
the GRPO stage logs TRL 1.16's keys (``reward``, ``reward_std``, ``rewards/<name>/mean``,
``completions/mean_length``, ``kl``, ...) plus this project's ``reward_std_within_group``
(:mod:`spatialladder.training.grpo_trainer`). Benchmark scores come from the eval runner's
``scores.json`` under ``STAGE/checkpoint_eval/<step-N|final>/<benchmark>/``, which
:func:`evaluate_checkpoints` writes (the paper's "VSI-Bench every 400 steps" on a ``--limit`` subset).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spatialladder.analysis.common import checkpoints, is_model_dir, ordered_stage_dirs, pyplot, write_json

CHECKPOINT_EVAL_DIR = "checkpoint_eval"
# GRPO panels: (title, keys drawn on it). Reward keys are "rewards/<reward function name>/mean".
GRPO_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accuracy reward", ("rewards/accuracy/mean",)),
    ("format reward", ("rewards/format/mean",)),
    ("reward std: within group, batch (--)", ("reward_std_within_group", "reward_std")),
    ("completion length (tokens)", ("completions/mean_length",)),
    ("KL to reference", ("kl",)),
)
_STEP_NAME_RE = re.compile(r"step-(\d+)$")


def trainer_state_path(stage_dir: Path) -> Path:
    """The stage's own ``trainer_state.json``, else its newest checkpoint's."""
    stage_dir = Path(stage_dir)
    own = stage_dir / "trainer_state.json"
    if own.is_file():
        return own
    for _, ckpt in reversed(checkpoints(stage_dir)):
        if (ckpt / "trainer_state.json").is_file():
            return ckpt / "trainer_state.json"
    raise FileNotFoundError(f"{stage_dir}: no trainer_state.json (nor in any checkpoint-*)")


def read_trainer_state(stage_dir: Path) -> tuple[Path, dict[str, Any]]:
    path = trainer_state_path(stage_dir)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(state.get("log_history"), list):
        raise ValueError(f"{path}: log_history: missing or not a list")
    return path, state


def series(history: Sequence[dict[str, Any]], key: str) -> dict[str, list[float]]:
    """``{"steps": [...], "values": [...]}`` of the training-log entries that carry a number for ``key``."""
    steps, values = [], []
    for entry in history:
        value = entry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            steps.append(int(entry.get("step", len(steps))))
            values.append(float(value))
    return {"steps": steps, "values": values}


def stage_kind(history: Sequence[dict[str, Any]]) -> str:
    """``"grpo"`` when the log has GRPO reward entries, else ``"sft"``."""
    return "grpo" if any("reward" in e for e in history) else "sft"


def checkpoint_scores(stage_dir: Path, global_step: int | None) -> list[dict[str, Any]]:
    """Overall benchmark scores of the stage's evaluated checkpoints, by step (``final`` = the stage's
    final model at ``global_step``)."""
    rows = []
    for scores in sorted((Path(stage_dir) / CHECKPOINT_EVAL_DIR).glob("*/*/scores.json")):
        name, benchmark = scores.parent.parent.name, scores.parent.name
        m = _STEP_NAME_RE.search(name)
        step = int(m.group(1)) if m else (global_step if name == "final" else None)
        if step is None:
            continue
        result = json.loads(scores.read_text(encoding="utf-8"))
        rows.append({"step": step, "checkpoint": name, "benchmark": benchmark, "overall": result.get("overall"),
                     "n": result.get("n"), "limit": result.get("limit")})  # fmt: skip
    return sorted(rows, key=lambda r: (r["benchmark"], r["step"], r["checkpoint"] == "final"))


def collect(run_dir: Path) -> dict[str, Any]:
    """Every stage's curves: a single stage folder, or ``WORK_DIR`` holding all of them."""
    run_dir = Path(run_dir)
    try:
        trainer_state_path(run_dir)
        stage_dirs = [run_dir]
    except FileNotFoundError:
        stage_dirs = ordered_stage_dirs(run_dir, require="trainer_state")
    if not stage_dirs:
        raise FileNotFoundError(f"{run_dir}: no stage with a trainer_state.json (a stage folder or WORK_DIR)")
    stages: dict[str, Any] = {}
    for stage_dir in stage_dirs:
        path, state = read_trainer_state(stage_dir)
        history = state["log_history"]
        kind = stage_kind(history)
        keys = ["loss", "learning_rate", "grad_norm"]
        if kind == "grpo":
            reward_means = sorted({k for e in history for k in e if re.fullmatch(r"rewards/[^/]+/mean", k)})
            keys += [
                "reward",
                *reward_means,
                *(k for _, ks in GRPO_PANELS for k in ks if k not in reward_means),
            ]
        stages[stage_dir.name] = {
            "kind": kind,
            "path": str(stage_dir),
            "trainer_state": str(path),
            "global_step": state.get("global_step"),
            "series": {k: s for k in dict.fromkeys(keys) if (s := series(history, k))["steps"]},
            "checkpoint_scores": checkpoint_scores(stage_dir, state.get("global_step")),
        }
    return {"run_dir": str(run_dir), "stages": stages}


def evaluate_checkpoints(
    stage_dir: Path,
    *,
    benchmarks: Sequence[str],
    data_root: Sequence[str],
    limit: int | None,
    eval_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score every saved ``checkpoint-N`` of a stage (and its final model) with the eval runner,
    into ``STAGE/checkpoint_eval/step-N/<benchmark>/scores.json`` (resumable like any eval run)."""
    from spatialladder.evaluation.runner import parse_args, run

    stage_dir = Path(stage_dir)
    saved = [(step, path) for step, path in checkpoints(stage_dir) if is_model_dir(path)]
    models = [f"step-{step}={path}" for step, path in saved]
    try:
        final_step = read_trainer_state(stage_dir)[1].get("global_step")
    except (FileNotFoundError, ValueError):
        final_step = None
    if is_model_dir(stage_dir) and final_step not in {step for step, _ in saved}:
        models.append(f"final={stage_dir}")  # the final weights, unless a checkpoint already holds them
    if not models:
        raise FileNotFoundError(f"{stage_dir}: no checkpoint-* with weights and no final model to evaluate")
    argv = [arg for m in models for arg in ("--model", m)]
    argv += ["--benchmarks", ",".join(benchmarks), "--output-dir", str(stage_dir / CHECKPOINT_EVAL_DIR)]
    argv += [arg for root in data_root for arg in ("--data-root", root)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    for key, value in (eval_options or {}).items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return run(parse_args(argv))


def plot(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """``sft_loss.png`` (one panel per SFT stage), ``grpo_dynamics.png`` (one figure per GRPO stage
    when there are several) and ``checkpoint_scores.png``; returns the files written."""
    plt = pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    stages = data["stages"]
    sft = [(n, s) for n, s in stages.items() if s["kind"] == "sft" and "loss" in s["series"]]
    if sft:
        fig, axes = plt.subplots(1, len(sft), figsize=(4 * len(sft), 3.2), squeeze=False)
        for ax, (name, stage) in zip(axes[0], sft):
            s = stage["series"]["loss"]
            ax.plot(s["steps"], s["values"], marker=".", color="tab:blue")
            ax.set(title=f"{name}: loss", xlabel="step", ylabel="loss")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(_save(fig, out_dir / "sft_loss.png", plt))
    grpo = [(n, s) for n, s in stages.items() if s["kind"] == "grpo"]
    for name, stage in grpo:
        fig, axes = plt.subplots(1, len(GRPO_PANELS), figsize=(3.6 * len(GRPO_PANELS), 3.2), squeeze=False)
        for ax, (title, keys) in zip(axes[0], GRPO_PANELS):
            for i, key in enumerate(keys):
                s = stage["series"].get(key)
                if s:
                    ax.plot(s["steps"], s["values"], marker=".", linestyle="-" if i == 0 else "--", label=key)
            if not any(stage["series"].get(k) for k in keys):
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            ax.set(title=title, xlabel="step")
            ax.grid(alpha=0.3)
        fig.suptitle(f"{name} (GRPO)")
        fig.tight_layout()
        fname = "grpo_dynamics.png" if len(grpo) == 1 else f"grpo_dynamics_{name}.png"
        written.append(_save(fig, out_dir / fname, plt))
    scored = [(n, s) for n, s in stages.items() if s["checkpoint_scores"]]
    if scored:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for name, stage in scored:
            for bench in sorted({r["benchmark"] for r in stage["checkpoint_scores"]}):
                rows = [
                    r
                    for r in stage["checkpoint_scores"]
                    if r["benchmark"] == bench and r["overall"] is not None
                ]
                ax.plot(
                    [r["step"] for r in rows],
                    [r["overall"] for r in rows],
                    marker="o",
                    label=f"{name} {bench}",
                )
        ax.set(title="benchmark score per checkpoint", xlabel="step", ylabel="overall (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out_dir / "checkpoint_scores.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args: Any) -> int:
    """``dynamics RUN_DIR``: optional checkpoint evaluation, then ``dynamics.json`` and the PNGs."""
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "analysis" / "dynamics"
    if args.eval_checkpoints:
        if not args.data_root:
            raise SystemExit("dynamics: --eval-checkpoints needs --data-root")
        stage_dir = run_dir / args.eval_checkpoints if (run_dir / args.eval_checkpoints).is_dir() else run_dir
        evaluate_checkpoints(stage_dir, benchmarks=args.benchmarks.split(","), data_root=args.data_root,
                             limit=args.limit, eval_options=args.eval_options)  # fmt: skip
    data = collect(run_dir)
    files = plot(data, out)
    data["figures"] = [str(f) for f in files]
    write_json(out / "dynamics.json", data)
    for name, stage in data["stages"].items():
        lengths = ", ".join(f"{k} x{len(s['steps'])}" for k, s in stage["series"].items())
        print(f"{name} ({stage['kind']}): {lengths}")
    print(f"wrote {out / 'dynamics.json'} and {len(files)} figure(s) in {out}")
    return 0
