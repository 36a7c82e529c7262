"""Does the ladder learn? Figures of the demo's held-out evaluation and its training curves.

    python -m spatialladder.demo.learning WORK_DIR [--models base stage1_grounding ... final-blind]

Reads ``WORK_DIR/eval/<model>/<benchmark>/{predictions,per_sample_scores}.jsonl`` (the eval runner's
files) for the held-out miniatures of :mod:`spatialladder.demo.learnable` and each stage's
``trainer_state.json``, and writes

* ``WORK_DIR/eval/learning.json``: per model and modality ``{"accuracy", "chance", "n",
  "format_rate"}`` (format = a valid ``<think>…</think><answer>…</answer>`` reply), the GRPO reward
  over its first and last steps, the number of steps with a non-zero gradient norm, and the margins
  the demo is meant to show (``checks``);
* ``WORK_DIR/eval/report.md``: the runner's report with the learning table first;
* ``WORK_DIR/plots/training.png``: loss per SFT stage; GRPO reward, format reward and KL per step.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spatialladder.answers import is_think_answer_format
from spatialladder.demo.learnable import LEARNABLE_BENCHMARKS, MODALITIES
from spatialladder.evaluation.report import write_report

__all__ = [
    "GRPO_STAGE",
    "SFT_STAGES",
    "binomial_sd",
    "grpo_reward_trend",
    "learning_checks",
    "learning_preface",
    "modality_figures",
    "plot_training",
    "render_learning_table",
    "write_learning",
]

SFT_STAGES: tuple[str, ...] = ("stage1_grounding", "stage2_spatial", "coldstart")
GRPO_STAGE = "stage3_grpo"
BLIND_SUFFIX = "-blind"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def binomial_sd(chance: float, n: int) -> float:
    """Standard deviation of the accuracy of n independent guesses at ``chance``."""
    return math.sqrt(chance * (1.0 - chance) / n) if n else float("nan")


def modality_figures(eval_dir: str | Path, model: str) -> dict[str, dict[str, Any]]:
    """``{modality: {"accuracy", "chance", "n", "format_rate", "benchmark"}}`` of one evaluated model.

    Accuracy is the mean per-sample score of the runner's scorer; chance the mean of 1/(number of
    options) over the questions; format rate the share of replies in the thinking format."""
    out: dict[str, dict[str, Any]] = {}
    for modality in MODALITIES:
        bench = LEARNABLE_BENCHMARKS[modality][0]
        bench_dir = Path(eval_dir) / model / bench
        if not (bench_dir / "per_sample_scores.jsonl").is_file():
            continue
        scores = _jsonl(bench_dir / "per_sample_scores.jsonl")
        preds = _jsonl(bench_dir / "predictions.jsonl")
        n = len(scores)
        out[modality] = {
            "accuracy": sum(float(s["score"]) for s in scores) / n if n else float("nan"),
            "chance": sum(1.0 / len(p["options"]) for p in preds) / len(preds) if preds else float("nan"),
            "n": n,
            "format_rate": sum(is_think_answer_format(p["prediction"]) for p in preds) / len(preds) if preds else 0.0,
            "benchmark": bench,
        }
    return out


def _log_history(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / "trainer_state.json"
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("log_history", []))


def grpo_reward_trend(stage_dir: str | Path, window: int | None = None) -> dict[str, Any] | None:
    """Mean reward over the first and the last ``window`` logged GRPO steps (default: a third of
    them, at least one), the steps with a non-zero ``grad_norm`` and the largest one.

    ``rose`` says whether the rise is clear: larger than two standard errors of the difference of the
    two window means, each standard error estimated from its window's step-to-step spread (a rise
    inside the noise of single steps is not counted)."""
    steps = [e for e in _log_history(Path(stage_dir)) if "reward" in e]
    if not steps:
        return None
    k = window or max(1, len(steps) // 3)
    grads = [float(e["grad_norm"]) for e in steps if e.get("grad_norm") is not None]
    first = [float(e["reward"]) for e in steps[:k]]
    last = [float(e["reward"]) for e in steps[-k:]]

    def sem(values: list[float]) -> float:
        if len(values) < 2:
            return float("inf")
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))

    rise = sum(last) / k - sum(first) / k
    rise_se = math.hypot(sem(first), sem(last))
    nonzero = sum(g > 0 for g in grads)
    return {
        "steps": len(steps),
        "window": k,
        "first_mean_reward": sum(first) / k,
        "last_mean_reward": sum(last) / k,
        "rise": rise,
        "rise_se": rise_se,
        "rose": rise > 2 * rise_se,
        "nonzero_grad_norm_steps": nonzero,
        "max_grad_norm": max(grads) if grads else None,
    }


def learning_checks(
    models: Mapping[str, Mapping[str, Mapping[str, Any]]],
    final: str,
    blind: str | None,
    base: str | None,
    *,
    require_format: bool = True,
    grpo: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The demo's margins, per modality: final accuracy >= chance + 3 sd, blind within 2 sd of
    chance, base at or below chance + 2 sd, and (``require_format``: models evaluated with the
    thinking prompt) the final thinking-format rate >= 0.9; with ``grpo`` (a
    :func:`grpo_reward_trend`), a ``grpo`` row: the reward rose by > 2 standard errors and some
    gradients were non-zero."""
    checks: dict[str, Any] = {}
    for modality, fig in models.get(final, {}).items():
        sd = binomial_sd(fig["chance"], fig["n"])
        row: dict[str, Any] = {"sd": sd, "final_above_chance_3sd": fig["accuracy"] >= fig["chance"] + 3 * sd}
        if require_format:
            row["final_format_rate_at_least_0.9"] = fig["format_rate"] >= 0.9
        if blind and modality in models.get(blind, {}):
            b = models[blind][modality]
            row["blind_within_2sd_of_chance"] = abs(b["accuracy"] - b["chance"]) <= 2 * binomial_sd(b["chance"], b["n"])
        if base and modality in models.get(base, {}):
            b = models[base][modality]
            row["base_at_most_chance_plus_2sd"] = b["accuracy"] <= b["chance"] + 2 * binomial_sd(b["chance"], b["n"])
        checks[modality] = row
    if grpo is not None:
        checks["grpo"] = {"reward_rose_2se": bool(grpo["rose"]),
                          "some_gradients_nonzero": grpo["nonzero_grad_norm_steps"] > 0}  # fmt: skip
    checks["all_passed"] = all(v for row in checks.values() if isinstance(row, dict) for v in row.values()
                               if isinstance(v, bool))  # fmt: skip
    return checks


def render_learning_table(learning: Mapping[str, Any]) -> str:
    """Markdown: one row per model, accuracy / chance / n / format rate per modality, then GRPO."""
    header = ["Model"] + [f"{m} acc (chance, n) / format" for m in MODALITIES]
    rows = []
    for model, figs in learning["models"].items():
        cells = [model]
        for m in MODALITIES:
            f = figs.get(m)
            cells.append("–" if f is None else
                         f"{f['accuracy']:.3f} ({f['chance']:.2f}, {f['n']}) / {f['format_rate']:.2f}")  # fmt: skip
        rows.append(cells)
    lines = ["## Learning on held-out questions", "",
             "Accuracy of the ladder's checkpoints on held-out pixel-grounded questions "
             "(spatialladder.demo.learnable), thinking prompt; *-blind* = every image and frame replaced "
             "by grey (`--blind`). Format = share of replies that are `<think>…</think><answer>…</answer>`.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    grpo = learning.get("grpo")
    if grpo:
        lines += ["", f"GRPO: mean reward over the first {grpo['window']} steps {grpo['first_mean_reward']:.3f}, "
                      f"over the last {grpo['window']} steps {grpo['last_mean_reward']:.3f} (rise {grpo['rise']:+.3f}, "
                      f"standard error {grpo['rise_se']:.3f}; {grpo['steps']} steps; "
                      f"non-zero grad_norm on {grpo['nonzero_grad_norm_steps']}, max {grpo['max_grad_norm'] or 0:.3f})."]  # fmt: skip
    checks = learning.get("checks")
    if checks:
        failed = [f"{m}: {k}" for m, row in checks.items() if isinstance(row, dict) for k, v in row.items()
                  if isinstance(v, bool) and not v]  # fmt: skip
        lines += ["", "Margins (final vs chance + 3 sd, blind within 2 sd, base <= chance + 2 sd, format >= 0.9, "
                      "GRPO reward rise > 2 standard errors, non-zero gradients): "
                      + ("all met." if not failed else "NOT met: " + "; ".join(failed))]  # fmt: skip
    return "\n".join(lines) + "\n"


def learning_preface(results_dir: str | Path) -> str:
    """The learning table of ``results_dir/learning.json`` for the top of report.md ("" without one)."""
    path = Path(results_dir) / "learning.json"
    if not path.is_file():
        return ""
    return render_learning_table(json.loads(path.read_text(encoding="utf-8")))


def plot_training(
    work_dir: str | Path, out_path: str | Path, grpo_trend: Mapping[str, Any] | None = None
) -> Path:
    """Loss per SFT stage (one panel) and GRPO reward, format reward and KL per step (one each); the
    reward panel marks the two window means of ``grpo_trend`` (:func:`grpo_reward_trend`, read from
    the GRPO stage when not given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = Path(work_dir)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    ax = axes[0]
    for stage in SFT_STAGES:
        hist = [e for e in _log_history(work / stage) if "loss" in e]
        if hist:
            ax.plot([e["step"] for e in hist], [e["loss"] for e in hist], label=stage)
    ax.set(title="SFT loss per stage", xlabel="step", ylabel="loss", yscale="log")
    ax.legend(fontsize=8)
    grpo = [e for e in _log_history(work / GRPO_STAGE) if "reward" in e]
    steps = [e["step"] for e in grpo]
    fmt_key = next((k for e in grpo for k in e if k.startswith("rewards/format") and k.endswith("/mean")), None)
    panels = [("GRPO reward (format + accuracy)", "reward"), ("GRPO format reward", fmt_key), ("GRPO KL", "kl")]
    for ax, (title, key) in zip(axes[1:], panels):
        if key is not None:
            ax.plot(steps, [e.get(key, float("nan")) for e in grpo], marker="o")
        ax.set(title=title, xlabel="step")
    trend = grpo_trend if grpo_trend is not None else grpo_reward_trend(work / GRPO_STAGE)
    if trend is not None and len(steps) >= 2 * trend["window"]:
        # the two window means that learning.json compares, over the steps they average
        k, ax = trend["window"], axes[1]
        ax.hlines([trend["first_mean_reward"], trend["last_mean_reward"]], [steps[0], steps[-k]],
                  [steps[k - 1], steps[-1]], colors="tab:red", linewidth=2.5,
                  label=f"mean of first / last {k}: {trend['rise']:+.2f} (se {trend['rise_se']:.2f})")  # fmt: skip
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def write_learning(work_dir: str | Path, models: Sequence[str], *, report: bool = True) -> dict[str, Any]:
    """Write learning.json (and the report and plot, see module doc); returns the learning dict."""
    work = Path(work_dir)
    eval_dir = work / "eval"
    figures = {m: modality_figures(eval_dir, m) for m in models}
    blind = next((m for m in models if m.endswith(BLIND_SUFFIX)), None)
    sighted = [m for m in models if m != blind]
    base = sighted[0] if sighted else None
    final = sighted[-1] if sighted else None
    grpo = grpo_reward_trend(work / GRPO_STAGE)
    learning: dict[str, Any] = {
        "models": figures,
        "final": final,
        "blind": blind,
        "base": base,
        "grpo": grpo,
        "checks": learning_checks(figures, final, blind, base, grpo=grpo) if final else {},
    }
    (eval_dir / "learning.json").write_text(json.dumps(learning, indent=2) + "\n", encoding="utf-8")
    if report:
        write_report(eval_dir, preface=learning_preface(eval_dir))
        plot_training(work, work / "plots" / "training.png", grpo_trend=grpo)
    return learning


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work_dir", type=Path)
    p.add_argument("--models", nargs="+", required=True,
                   help="evaluated model names: base first, the final stage last, then NAME-blind")  # fmt: skip
    args = p.parse_args(argv)
    learning = write_learning(args.work_dir, args.models)
    print(render_learning_table(learning))


if __name__ == "__main__":
    main()
