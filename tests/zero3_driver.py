"""Launched entry point for the multi-rank engine tests (tests/test_zero3_training.py).

Runs the real SFT (``ZERO3_DRIVER_KIND=sft``) or GRPO (``grpo``) entry point on its recipe, with
one change: the training rows are put in an order that, with a sequential sampler
(``--train_sampling_strategy sequential`` for SFT, ``--shuffle_dataset false`` for GRPO) and two
ranks, gives every step a *different* batch per rank, including a text-only one
(:data:`RANK_PAIRS`). The synthetic data format has no text-only rows, so they are made here from
single-image rows with the media removed. Launched like a stage: ``sl_launch tests.zero3_driver --config ...``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Per step: (rank 0's batch, rank 1's batch); "text" = no image and no video.
RANK_PAIRS = [
    ("text", "single_image"),
    ("multi_view", "text"),
    ("text", "video"),
    ("video", "multi_view"),
    ("single_image", "video"),
    ("text", "multi_view"),
    ("single_image", "text"),
    ("multi_view", "single_image"),
]


def arrange(rows: list[dict[str, Any]], make_text_only: Any, steps: int) -> list[dict[str, Any]]:
    """Rows in rank-pair order (rank 0, rank 1, rank 0, ...) for ``steps`` steps, cycling per type."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_type.setdefault(row["data_type"], []).append(row)
    by_type["text"] = [make_text_only(r) for r in by_type["single_image"]]
    taken: dict[str, int] = {}
    out = []
    for step in range(steps):
        for kind in RANK_PAIRS[step % len(RANK_PAIRS)]:
            i = taken.get(kind, 0)
            taken[kind] = i + 1
            out.append(by_type[kind][i % len(by_type[kind])])
    return out


def char_share(completions: Any, **kwargs: Any) -> list[float]:
    """Share of spaces in a completion's text. The demo rewards are all 0 on an untrained model
    (no gradient, weights never move); this one varies within a group of samples, so GRPO steps
    move the weights and a resume can be checked against them."""
    from spatialladder.rewards import completion_text

    texts = [completion_text(c) for c in completions]
    return [t.count(" ") / max(len(t), 1) for t in texts]


def main() -> None:
    from spatialladder.rewards import REWARD_FUNCS, register
    from spatialladder.training import grpo, sft
    from spatialladder.training.config import SFTConfig
    from spatialladder.training.entry import run_main
    from spatialladder.training.grpo_trainer import IMAGES_COLUMN, VIDEO_COLUMN

    if "char_share" not in REWARD_FUNCS:
        register("char_share")(char_share)

    kind = os.environ["ZERO3_DRIVER_KIND"]
    steps = len(RANK_PAIRS)
    if kind == "sft":

        def text_only(row: dict[str, Any]) -> dict[str, Any]:
            return {**row, "images": [], "video": None, "data_type": "text"}

        module, config = sft, SFTConfig
    elif kind == "grpo":

        def text_only(row: dict[str, Any]) -> dict[str, Any]:
            return {**row, IMAGES_COLUMN: [], VIDEO_COLUMN: [], "data_type": "text"}

        module, config = grpo, grpo.GRPOConfig
    else:
        raise SystemExit(f"ZERO3_DRIVER_KIND must be sft or grpo, got {kind!r}")

    def train(script_args: Any, training_args: Any, model_args: Any) -> Any:
        return module.train(
            script_args, training_args, model_args, lambda rows: arrange(rows, text_only, steps)
        )

    sys.exit(run_main(train, config, sys.argv[1:]))


if __name__ == "__main__":
    main()
