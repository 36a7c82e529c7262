"""Which M-RoPE position convention Qwen2.5-VL runs under in this project, and the switch that sets it.

Qwen2.5-VL gives every token a 3D (temporal, height, width) rotary position. **Convention in force:
the original one** (:data:`POSITION_CONVENTION`): the block that follows an image or a video starts
at *the largest position that vision block used + 1*, over all three axes. That is what the model
was pretrained with (the Qwen release, transformers 4.49-4.5x, the official ``qwen-vl-finetune``
code, vLLM and SGLang).

Why a switch: the pinned transformers 5.23 ``Qwen2_5_VLModel.get_rope_index`` lays out the vision
tokens themselves like the original, but starts whatever follows a vision block at its *spatial*
extent only (``start + max(h, w)`` merged patches). For an image that is the same thing; for a
video the temporal axis (``start + tokens_per_second * second_per_grid_ts * (T - 1)``) usually
reaches further, so the question after a 32-frame VSI-Bench video (16 temporal grids at 2 fps:
temporal positions up to start + 30) is encoded at start + 13 for a 10x13 merged grid: on top of
the video's later frames. Upstream report: https://github.com/huggingface/transformers/issues/45381.

:func:`install_original_positions` patches ``get_rope_index`` on one loaded model's backbone (not
the class): transformers 5.23 computes every multimodal position through that method, in a plain
forward (``compute_3d_position_ids``, which also stores the ``rope_deltas`` that cached decoding
steps add to the text position) and in ``generate`` (``_prepare_position_ids_for_generation``;
decode steps then continue each axis from the prefill's last position + 1), so one method covers
training, log-prob forwards, generation prefill and decoding, with or without left padding.

Before patching, :func:`check_stock_convention` (once per process, no model forward) verifies that
the pinned transformers still computes the 5.23 layout on a hand-worked video case and raises
:class:`PositionConventionChanged` if not: when upstream fixes the bug, drop this module (and its
calls in ``training/modeling.py``, ``training/grpo_trainer.py`` and ``evaluation/runner.py``),
and record the new value in the eval run signature.
"""

from __future__ import annotations

import logging
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "POSITION_CONVENTION",
    "STOCK_CONVENTION",
    "UPSTREAM_REPORT",
    "PositionConventionChanged",
    "check_stock_convention",
    "install_original_positions",
    "original_convention_positions",
    "position_convention",
    "resume_hint",
]

#: Recorded in every eval run config (``run_signature``); a resumed run under another value is refused.
POSITION_CONVENTION = "qwen2.5-vl-original: next block at vision block max position + 1"
#: What an unpatched transformers 5.23 model computes.
STOCK_CONVENTION = "transformers-5.23: next block at vision block start + spatial extent"
UPSTREAM_REPORT = "https://github.com/huggingface/transformers/issues/45381"

_INSTALLED_ATTR = "_spatialladder_position_convention"
_checked_stock = False


class PositionConventionChanged(RuntimeError):
    """The pinned transformers no longer computes the positions this module corrects."""


def original_convention_positions(
    stock_positions: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift transformers 5.23's ``get_rope_index`` output to the original convention.

    Each run of same-type tokens (text, an image, a video) is laid out by the stock method at a
    running start position, and its positions are ``start + offsets``; only where the *next* run
    starts differs between the conventions. So the original layout is the stock one plus, from
    each run boundary on, ``max(previous run) + 1 - first position of the next run`` (0 after a
    text run, 0 after an image, the temporal overhang after a video), all measured in stock
    positions. The vision positions themselves, the grid and ``second_per_grid_ts`` bookkeeping
    and the padding handling stay transformers'.

    Returns ``(position_ids [3, batch, seq], rope_deltas [batch, 1])`` like ``get_rope_index``:
    padded slots keep the stock value, and ``rope_deltas = max position + 1 - real length`` is
    what a cached decoding step adds to its text position.
    """
    import torch

    positions = stock_positions.clone()
    types_all = mm_token_type_ids.to(positions.device)
    deltas = []
    for b in range(positions.shape[1]):
        real = (
            attention_mask[b].to(positions.device).bool()
            if attention_mask is not None
            else torch.ones(positions.shape[2], dtype=torch.bool, device=positions.device)
        )
        row = stock_positions[:, b, real]  # (3, n_real), stock layout
        kinds = types_all[b, real]
        starts = (torch.nonzero(kinds[1:] != kinds[:-1]).flatten() + 1).tolist()
        shift = torch.zeros(row.shape[1], dtype=row.dtype, device=row.device)
        previous = 0
        for start in starts:
            overhang = row[:, previous:start].max() + 1 - row[0, start]
            shift[start:] += overhang
            previous = start
        fixed = row + shift
        positions[:, b, real] = fixed
        deltas.append(fixed.max() + 1 - fixed.shape[1])
    return positions, torch.stack(deltas).view(-1, 1).to(stock_positions.device)


def _original_rope_index(
    self: Any,
    input_ids: torch.LongTensor,
    mm_token_type_ids: torch.IntTensor,
    image_grid_thw: torch.LongTensor | None = None,
    video_grid_thw: torch.LongTensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``get_rope_index`` with the original convention (bound to one backbone instance)."""
    stock, _ = type(self).get_rope_index(
        self,
        input_ids,
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        video_grid_thw=video_grid_thw,
        second_per_grid_ts=second_per_grid_ts,
        attention_mask=attention_mask,
        **kwargs,
    )
    return original_convention_positions(stock, mm_token_type_ids, attention_mask)


def _probe_case(backbone: Any) -> tuple[dict[str, torch.Tensor], list[list[int]], list[list[int]]]:
    """One text token, a 3-grid video of one merged patch per grid (2 fps), one text token: the
    inputs, and the positions each convention gives them (worked out from the rules, per axis)."""
    import torch

    vision = backbone.config.vision_config
    merge = int(vision.spatial_merge_size)
    tps = float(vision.tokens_per_second)
    video_id = int(backbone.config.video_token_id)
    inputs = {
        "input_ids": torch.tensor([[0, video_id, video_id, video_id, 0]]),
        "mm_token_type_ids": torch.tensor([[0, 2, 2, 2, 0]]),
        "video_grid_thw": torch.tensor([[3, merge, merge]]),
        "second_per_grid_ts": torch.tensor([1.0]),
    }
    temporal = [1 + int(i * tps) for i in range(3)]  # the video starts at 1; 1 s per temporal grid
    stock_next = 1 + 1  # start + spatial extent (1 merged patch)
    original_next = max(temporal[-1], 1) + 1
    stock = [[0, *temporal, stock_next], [0, 1, 1, 1, stock_next], [0, 1, 1, 1, stock_next]]
    original = [[0, *temporal, original_next], [0, 1, 1, 1, original_next], [0, 1, 1, 1, original_next]]
    return inputs, stock, original


def check_stock_convention(model: Any) -> None:
    """Raise :class:`PositionConventionChanged` unless the installed transformers' own
    ``get_rope_index`` still gives 5.23's layout (and this module's correction the original one)
    on a hand-worked video case. Cheap: no model forward."""
    from spatialladder.training.zero3 import find_vision_backbone

    backbone = find_vision_backbone(model)
    inputs, stock_expected, original_expected = _probe_case(backbone)
    stock, _ = type(backbone).get_rope_index(backbone, **inputs)
    got = stock[:, 0].tolist()
    if got != stock_expected:
        import transformers

        fixed = got == original_expected
        raise PositionConventionChanged(
            f"transformers {transformers.__version__}: {type(backbone).__name__}.get_rope_index gave "
            f"{got} for [text, 3-grid video, text], expected transformers 5.23's {stock_expected}. "
            + (
                "It now follows Qwen2.5-VL's original convention (upstream fixed "
                f"{UPSTREAM_REPORT}): drop spatialladder/positions.py's switch and its calls."
                if fixed
                else "Its position layout changed: re-check spatialladder/positions.py against it."
            )
        )
    corrected, _ = original_convention_positions(stock, inputs["mm_token_type_ids"])
    if corrected[:, 0].tolist() != original_expected:
        raise PositionConventionChanged(
            f"spatialladder/positions.py's correction gave {corrected[:, 0].tolist()}, expected the "
            f"original convention's {original_expected}"
        )


def install_original_positions(model: Any) -> Any:
    """Make ``model`` (a loaded Qwen2.5-VL, possibly wrapped) compute the original positions.

    Patches ``get_rope_index`` on this model's backbone instance only (a deep copy, e.g. a
    reference model made with ``copy.deepcopy``, keeps the patch bound to the copy). Idempotent.
    Runs :func:`check_stock_convention` on the first call in the process. Returns the backbone.
    """
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    from spatialladder.training.zero3 import find_vision_backbone

    global _checked_stock
    backbone = find_vision_backbone(model)
    if not isinstance(backbone, Qwen2_5_VLModel):
        raise TypeError(
            f"install_original_positions: {type(backbone).__name__} is not a Qwen2.5-VL backbone; "
            "the position convention switch (spatialladder/positions.py) only knows Qwen2.5-VL"
        )
    if getattr(backbone, _INSTALLED_ATTR, None) == POSITION_CONVENTION:
        return backbone
    if not _checked_stock:
        check_stock_convention(backbone)
        _checked_stock = True
    # A bound method (not a closure) so that copy.deepcopy rebinds it to the copied backbone.
    backbone.get_rope_index = types.MethodType(_original_rope_index, backbone)
    backbone.rope_deltas = None  # deltas cached under the stock convention must not leak into decoding
    setattr(backbone, _INSTALLED_ATTR, POSITION_CONVENTION)
    logger.info("Qwen2.5-VL positions: %s (see %s)", POSITION_CONVENTION, UPSTREAM_REPORT)
    return backbone


def resume_hint(diff: dict[str, Any]) -> str:
    """What to tell a user whose eval results folder was written under another position convention
    (``diff``: setting -> (old, new) of a refused resume); empty when the convention is not at stake."""
    if "position_convention" not in diff:
        return ""
    old = diff["position_convention"][0]
    written = "before the convention was recorded" if old is None else f"under {old!r}"
    return (
        f". Its predictions were generated {written}: the text after a video whose frames reach past "
        f"its spatial extent sat at other positions ({UPSTREAM_REPORT}). Rerun this model/benchmark into "
        "a fresh --output-dir (or with --overwrite) rather than mixing the two"
    )


def position_convention(model: Any) -> str:
    """The convention ``model`` computes positions with: :data:`POSITION_CONVENTION` once
    :func:`install_original_positions` ran on it, else :data:`STOCK_CONVENTION`."""
    from spatialladder.training.zero3 import find_vision_backbone

    return getattr(find_vision_backbone(model), _INSTALLED_ATTR, STOCK_CONVENTION)
