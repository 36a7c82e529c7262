"""``python -m spatialladder.analysis {entropy,attention,dynamics,ladder} ...`` (see README, "Analysis")."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from spatialladder.evaluation.benchmarks import PROMPT_KINDS

# Generation settings shared with the eval runner (same names and defaults as eval/run_eval.sh).
EVAL_OPTIONS = ("prompt_kind", "num_frames", "min_pixels", "max_pixels", "max_new_tokens", "batch_size")


def _generation_parent(
    prompt_kinds: Sequence[str] = PROMPT_KINDS, default: str = "thinking"
) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("generation (as eval/run_eval.sh)")
    g.add_argument(
        "--prompt-kind",
        default=default,
        choices=prompt_kinds,
        help=f"default {default}"
        + ("; auto = the prompt each stage was trained with" if "auto" in prompt_kinds else ""),
    )
    g.add_argument("--num-frames", type=int, default=32, help="frames per video")
    g.add_argument("--min-pixels", type=int, default=16 * 28 * 28)
    g.add_argument("--max-pixels", type=int, default=512 * 28 * 28, help="per image or frame")
    g.add_argument("--max-new-tokens", type=int, default=1024)
    g.add_argument("--batch-size", type=int, default=4)
    return p


def _questions_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("questions")
    g.add_argument("--benchmark", help="a benchmark the eval harness loads (VSI-Bench, SPBench-SI, ...)")
    g.add_argument(
        "--data-root",
        action="append",
        default=[],
        metavar="DIR|NAME=DIR",
        help="benchmark data root (as eval/run_eval.sh)",
    )
    g.add_argument("--questions", help="a SpatialLadder-26k-format spatial jsonl (spld_spatial_data.jsonl)")
    g.add_argument("--media-root", help="media root of --questions (default: its folder's images/ or media/)")
    g.add_argument("--limit", type=int, default=None, help="a seeded subset of N questions")
    g.add_argument("--seed", type=int, default=0, help="seed of the subset and of sampling")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spatialladder.analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen, questions = _generation_parent(), _questions_parent()

    p = sub.add_parser("entropy", parents=[questions, gen], help="semantic entropy of K sampled answers")
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--output-dir", required=True, help="predictions (resumable) and entropy.json")
    p.add_argument(
        "-k", "--num-samples", type=int, default=8, help="answers sampled per question (default 8)"
    )
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument(
        "--rel-tol", type=float, default=None, help="numbers within this relative tolerance are one answer"
    )

    p = sub.add_parser(
        "attention", parents=[questions, gen], help="attention share on visual tokens and boxes"
    )
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--output-dir", required=True, help="attention.json and overlay PNGs")
    p.add_argument(
        "--grounding", help="a SpatialLadder-26k grounding jsonl: also the share inside the target box"
    )
    p.add_argument("--overlays", type=int, default=4, help="PNG overlays for the first N samples")
    p.add_argument(
        "--answer-source",
        default="generated",
        choices=("generated", "reference"),
        help="attention of the model's greedy reply (default) or of the reference answer",
    )

    p = sub.add_parser("dynamics", parents=[gen], help="training curves and benchmark score per checkpoint")
    p.add_argument("run_dir", help="one stage's output directory, or WORK_DIR with all stages")
    p.add_argument("--out", help="default RUN_DIR/analysis/dynamics")
    p.add_argument(
        "--eval-checkpoints",
        metavar="STAGE",
        help="first evaluate every checkpoint-* of STAGE (a folder of RUN_DIR, or RUN_DIR itself)",
    )
    p.add_argument("--benchmarks", default="VSI-Bench", help="benchmarks for --eval-checkpoints")
    p.add_argument("--data-root", action="append", default=[], metavar="DIR|NAME=DIR")
    p.add_argument(
        "--limit", type=int, default=None, help="a seeded subset per benchmark for --eval-checkpoints"
    )

    ladder_gen = _generation_parent(("auto", "direct", "thinking"), "auto")
    p = sub.add_parser(
        "ladder", parents=[ladder_gen], help="semantic entropy and attention share per stage of a run"
    )
    p.add_argument("work_dir", help="WORK_DIR of run_scripts/run_all.sh (stage folders, base model)")
    p.add_argument("--out", help="default WORK_DIR/analysis/ladder")
    p.add_argument("--questions", help="spatial jsonl (default WORK_DIR/synthetic/spld_spatial_data.jsonl)")
    p.add_argument(
        "--grounding", help="grounding jsonl (default WORK_DIR/synthetic/spld_grounding_data.jsonl)"
    )
    p.add_argument("--media-root", help="default: the jsonl folder's media/ or images/")
    p.add_argument("--limit", type=int, default=16, help="questions per stage (entropy)")
    p.add_argument("--attention-limit", type=int, default=8, help="grounding samples per stage (attention)")
    p.add_argument("-k", "--num-samples", type=int, default=8)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base", help="base model (default WORK_DIR/tiny-qwen25vl when present)")
    p.add_argument("--overlays", type=int, default=2, help="attention overlays per stage")
    p.add_argument("--answer-source", default="generated", choices=("generated", "reference"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.eval_options = {k: getattr(args, k) for k in EVAL_OPTIONS if hasattr(args, k)}
    module = importlib.import_module(f"spatialladder.analysis.{args.command}")
    from spatialladder.data import DatasetValidationError
    from spatialladder.evaluation.benchmarks import BenchmarkDataError

    try:
        return module.main(args)
    except (FileNotFoundError, DatasetValidationError, BenchmarkDataError) as err:  # bad input: no traceback
        print(f"analysis {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
