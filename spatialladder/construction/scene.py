"""Scene model of a real 3D scan: object instances, room extent and posed RGB-D frames.

Coordinates are the scan's *axis-aligned* world frame (ScanNet's ``axisAlignment`` applied): z up,
metres, walls roughly parallel to x and y. Cameras follow the OpenCV convention (x right, y down,
z forward); ``pose`` maps camera coordinates to world coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Orientations tried by the minimum-area footprint search (degrees, [0, 90) covers every rectangle).
_OBB_STEP_DEG = 0.5


@dataclass(frozen=True)
class OrientedBox:
    """A box standing upright: ``center`` (x, y, z), ``size`` (extent along its own x and y axes, height)
    and ``heading`` (radians, rotation of its own x axis about world z)."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    heading: float


def oriented_box(points: np.ndarray) -> OrientedBox:
    """Upright box of least footprint area around ``points`` (N, 3).

    Searches headings in 0.5 degree steps over [0, 90); heading 0 (the axis-aligned box) wins ties,
    so an axis-aligned object gets exactly its axis-aligned box."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        raise ValueError("oriented_box needs at least one point")
    xy = pts[:, :2]
    angles = np.radians(np.arange(0.0, 90.0, _OBB_STEP_DEG))
    c, s = np.cos(angles), np.sin(angles)
    u = xy[:, :1] * c + xy[:, 1:] * s  # (N, A): coordinate along the box's own x axis
    v = -xy[:, :1] * s + xy[:, 1:] * c
    ext_u, ext_v = u.max(0) - u.min(0), v.max(0) - v.min(0)
    area = ext_u * ext_v
    best = int(np.argmax(area <= area.min() * (1 + 1e-9) + 1e-12))  # first (smallest heading) minimum
    cu = (u[:, best].max() + u[:, best].min()) / 2
    cv = (v[:, best].max() + v[:, best].min()) / 2
    cx, cy = cu * c[best] - cv * s[best], cu * s[best] + cv * c[best]
    zmin, zmax = pts[:, 2].min(), pts[:, 2].max()
    return OrientedBox(
        (float(cx), float(cy), float((zmin + zmax) / 2)),
        (float(ext_u[best]), float(ext_v[best]), float(zmax - zmin)),
        float(angles[best]),
    )


@dataclass
class Instance:
    """One annotated object: its ScanNet ``object_id``, category and mesh vertices (aligned frame)."""

    object_id: int
    category: str
    points: np.ndarray
    box: OrientedBox = field(init=False)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 3)
        self.box = oriented_box(self.points)

    @property
    def center(self) -> tuple[float, float, float]:
        return self.box.center

    @property
    def size(self) -> tuple[float, float, float]:
        return self.box.size


@dataclass
class Intrinsics:
    """Pinhole intrinsics of one image stream and its image size (width, height)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def project(self, cam_points: np.ndarray) -> np.ndarray:
        """(N, 3) OpenCV camera points -> (N, 2) pixel coordinates (meaningless where z <= 0)."""
        z = cam_points[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack(
                [self.fx * cam_points[:, 0] / z + self.cx, self.fy * cam_points[:, 1] / z + self.cy], 1
            )


@dataclass
class Frame:
    """One RGB-D frame with a valid camera-to-world ``pose`` (4x4, aligned world frame)."""

    frame_id: int
    color_path: Path
    depth_path: Path
    pose: np.ndarray

    @property
    def position(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.pose[:3, 3])  # type: ignore[return-value]

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) OpenCV camera coordinates."""
        r, t = self.pose[:3, :3], self.pose[:3, 3]
        return (np.asarray(points, dtype=np.float64).reshape(-1, 3) - t) @ r

    def yaw_pitch(self) -> tuple[float, float]:
        """Heading of the optical axis in the xy plane (0 = +x, pi/2 = +y) and its elevation."""
        f = self.pose[:3, 2]
        return math.atan2(f[1], f[0]), math.atan2(f[2], math.hypot(f[0], f[1]))


@dataclass
class ScanScene:
    """A scanned room: instances, the extent of its mesh, and its valid posed frames (in order)."""

    scene_id: str
    axis_alignment: np.ndarray
    instances: list[Instance]
    room_min: tuple[float, float, float]
    room_max: tuple[float, float, float]
    color_intrinsics: Intrinsics
    depth_intrinsics: Intrinsics
    frames: list[Frame]
    invalid_pose_frames: list[int] = field(default_factory=list)
    skipped_labels: dict[str, int] = field(default_factory=dict)

    @property
    def room_size(self) -> tuple[float, float, float]:
        """(extent along x, extent along y, height) of the scan in metres."""
        return tuple(float(b - a) for a, b in zip(self.room_min, self.room_max))  # type: ignore[return-value]
