"""Project instances into frames: 2D boxes with depth-tested visibility and the visibility filters.

For an instance and a frame:

- *in view*: the instance's points in front of the camera (z > ``near``) whose colour-image
  projection falls inside the image; ``truncation`` = 1 - in-view points / all points;
- *visible*: in-view points the depth map confirms: the depth image (its own intrinsics and
  resolution) at the point's nearest pixel is valid (> 0) and not nearer than the point by more
  than ``depth_tolerance`` metres; ``occlusion`` = 1 - (depth pixels with a visible point) /
  (depth pixels with any in-view point), so the object's own far side does not count as occluded;
- the 2D box is the floor/ceil of the visible points' colour-image pixel extent, clipped to
  ``[0, width-1] x [0, height-1]`` (the grounding rows' ``bbox_2d`` convention, original pixels).

A detection is kept when truncation <= ``max_truncation``, occlusion <= ``max_occlusion``, at least
``min_visible_points`` points are visible and both box sides are >= ``min_box_fraction`` of the
image's shorter side; otherwise it is dropped with the reason (``truncated``, ``occluded``,
``too_small``). An instance with no visible point is simply not in the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from spatialladder.construction.scene import Frame, Instance, Intrinsics

TRUNCATED, OCCLUDED, TOO_SMALL = "truncated", "occluded", "too_small"


@dataclass(frozen=True)
class VisibilityConfig:
    near: float = 0.1
    depth_tolerance: float = 0.1
    max_truncation: float = 0.3
    max_occlusion: float = 0.5
    min_visible_points: int = 10
    min_box_fraction: float = 0.04


@dataclass(frozen=True)
class Detection:
    """An instance as one frame sees it. ``box`` is set only when every filter passed."""

    visible_fraction: float  # (1 - truncation) * (1 - occlusion); 0 = not seen at all
    truncation: float
    occlusion: float
    box: tuple[int, int, int, int] | None
    reason: str | None  # why it was dropped (None: kept, or not seen at all)
    extent: tuple[int, int, int, int] | None = None  # box of the visible points before the filters


def read_depth_m(frame: Frame) -> np.ndarray:
    """The frame's depth map in metres (ScanNet: uint16 millimetres, 0 = no measurement)."""
    with Image.open(frame.depth_path) as im:
        return np.asarray(im, dtype=np.float64) / 1000.0


def box_of(uv: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer ``[x1, y1, x2, y2]`` around pixel coordinates, clipped to the image."""
    x1 = int(math.floor(max(float(uv[:, 0].min()), 0.0)))
    y1 = int(math.floor(max(float(uv[:, 1].min()), 0.0)))
    x2 = int(math.ceil(min(float(uv[:, 0].max()), width - 1.0)))
    y2 = int(math.ceil(min(float(uv[:, 1].max()), height - 1.0)))
    return x1, y1, x2, y2


def detect(
    instance: Instance, frame: Frame, depth_m: np.ndarray, color: Intrinsics, depth: Intrinsics,
    cfg: VisibilityConfig = VisibilityConfig(),
) -> Detection:  # fmt: skip
    pc = frame.world_to_camera(instance.points)
    n = len(pc)
    front = pc[:, 2] > cfg.near
    uv = color.project(pc)
    in_view = (
        front
        & (uv[:, 0] >= 0)
        & (uv[:, 0] <= color.width - 1)
        & (uv[:, 1] >= 0)
        & (uv[:, 1] <= color.height - 1)
    )
    n_view = int(in_view.sum())
    truncation = 1.0 - n_view / n
    if n_view == 0:
        return Detection(0.0, truncation, 1.0, None, None)
    duv = np.rint(depth.project(pc[in_view])).astype(np.int64)
    dh, dw = depth_m.shape
    inside = (duv[:, 0] >= 0) & (duv[:, 0] < dw) & (duv[:, 1] >= 0) & (duv[:, 1] < dh)
    measured = np.zeros(n_view)
    measured[inside] = depth_m[duv[inside, 1], duv[inside, 0]]
    ok = inside & (measured > 0) & (pc[in_view, 2] <= measured + cfg.depth_tolerance)
    n_vis = int(ok.sum())
    # Occlusion is measured on the object's depth-image footprint, not per point: the far side of
    # the object itself is hidden behind its near side, which is not occlusion by something else.
    pixel = duv[:, 1] * dw + duv[:, 0]
    footprint = np.unique(pixel[inside])
    occlusion = 1.0 - len(np.unique(pixel[ok])) / len(footprint) if len(footprint) else 1.0
    if n_vis == 0:
        return Detection(0.0, truncation, occlusion, None, None)
    extent = box_of(uv[in_view][ok], color.width, color.height)
    min_side = cfg.min_box_fraction * min(color.width, color.height)
    if truncation > cfg.max_truncation:
        reason: str | None = TRUNCATED
    elif occlusion > cfg.max_occlusion or n_vis < cfg.min_visible_points:
        reason = OCCLUDED
    elif extent[2] - extent[0] < min_side or extent[3] - extent[1] < min_side:
        reason = TOO_SMALL
    else:
        reason = None
    seen = (1.0 - truncation) * (1.0 - occlusion)
    return Detection(seen, truncation, occlusion, extent if reason is None else None, reason, extent)
