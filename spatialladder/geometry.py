"""Image geometry: Qwen2.5-VL's resize rule, box rescaling and IoU.

The resize grid and pixel bounds are read from the processor's own configuration so that boxes
in training targets live in exactly the frame the model sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

Box = Sequence[float]


@dataclass(frozen=True)
class ResizeRule:
    """Qwen2-VL ``smart_resize`` parameters: side multiple ``factor`` (the processor's patch size x
    merge size), pixel-count bounds. Build it with :meth:`from_processor`: no default grid here."""

    factor: int
    min_pixels: int
    max_pixels: int

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of an image of the given size after the processor's resize."""
        new_h, new_w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return new_w, new_h

    @classmethod
    def from_processor(
        cls, processor: Any, *, min_pixels: int | None = None, max_pixels: int | None = None
    ) -> ResizeRule:
        """Read factor and pixel bounds from a processor or its image processor; an explicit
        ``min_pixels``/``max_pixels`` replaces the processor's bound (evaluation's per-call bounds).

        transformers 5.x keeps the bounds in ``size`` (``shortest_edge``/``longest_edge`` hold
        min/max *pixels*), older releases in ``min_pixels``/``max_pixels``; accept both.
        """
        ip = getattr(processor, "image_processor", processor)
        factor = int(ip.patch_size) * int(ip.merge_size)
        size = getattr(ip, "size", None) or {}
        get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
        min_px = min_pixels or getattr(ip, "min_pixels", None) or get("min_pixels") or get("shortest_edge")
        max_px = max_pixels or getattr(ip, "max_pixels", None) or get("max_pixels") or get("longest_edge")
        if min_px is None or max_px is None:
            raise ValueError(f"cannot read min/max pixels from {type(ip).__name__}.size={size!r}")
        return cls(factor=factor, min_pixels=int(min_px), max_pixels=int(max_px))


def rescale_box(box: Box, from_size: tuple[int, int], to_size: tuple[int, int]) -> list[int]:
    """Map an ``[x1, y1, x2, y2]`` box from a (width, height) frame into another, rounded to ints."""
    sx = to_size[0] / from_size[0]
    sy = to_size[1] / from_size[1]
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes; 0 for degenerate boxes."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    inter_w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    inter_h = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = inter_w * inter_h
    union = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1) + max(0.0, bx2 - bx1) * max(0.0, by2 - by1) - inter
    return inter / union if union > 0 else 0.0
