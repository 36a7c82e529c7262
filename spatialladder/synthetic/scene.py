"""3D ground truth of a synthetic indoor scene: room, axis-aligned furniture boxes, cameras.

World frame: x along the room's width, y along its depth, z up; the floor is z = 0 and the room
spans ``[0, width] x [0, depth] x [0, height]`` (metres). Objects stand on the floor as
axis-aligned boxes. A camera looks along ``yaw`` (radians, in the xy plane, 0 = +x, pi/2 = +y)
tilted by ``pitch`` (radians, negative = looking down); images have square pixels and the principal
point at the image centre.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Vec3 = tuple[float, float, float]
Color = tuple[int, int, int]

VIDEO = "video"
MULTI_VIEW = "multi_view"

# category -> ((w range), (d range), (h range), base colour). w is the extent along the object's
# own long side; placement randomly turns it by 90 degrees.
CATEGORIES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float], Color]] = {
    "table": ((0.80, 1.40), (0.60, 0.90), (0.70, 0.78), (150, 100, 50)),
    "sofa": ((1.50, 2.10), (0.80, 0.95), (0.75, 0.95), (70, 90, 160)),
    "bed": ((1.40, 1.80), (1.90, 2.10), (0.45, 0.65), (200, 200, 225)),
    "lamp": ((0.30, 0.45), (0.30, 0.45), (1.20, 1.70), (240, 220, 80)),
    "tv": ((0.90, 1.30), (0.25, 0.40), (0.90, 1.20), (30, 30, 35)),
    "cabinet": ((0.60, 1.10), (0.40, 0.60), (0.90, 1.60), (120, 70, 40)),
    "radiator": ((0.60, 1.10), (0.12, 0.20), (0.50, 0.70), (225, 225, 225)),
    "desk": ((1.00, 1.50), (0.55, 0.75), (0.72, 0.78), (180, 140, 90)),
    "bookshelf": ((0.70, 1.10), (0.28, 0.40), (1.40, 1.90), (100, 60, 30)),
    "refrigerator": ((0.60, 0.75), (0.60, 0.72), (1.50, 1.85), (190, 200, 205)),
    "armchair": ((0.70, 0.90), (0.70, 0.85), (0.80, 1.00), (170, 60, 60)),
    "nightstand": ((0.40, 0.55), (0.35, 0.45), (0.45, 0.60), (160, 120, 70)),
    "washing machine": ((0.58, 0.62), (0.55, 0.62), (0.82, 0.88), (245, 245, 250)),
    "piano": ((1.40, 1.55), (0.55, 0.65), (1.10, 1.30), (20, 15, 15)),
}
# Categories that may occur several times in one scene; only counting questions use them.
COUNT_CATEGORIES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float], Color]] = {
    "chair": ((0.42, 0.55), (0.42, 0.55), (0.80, 1.00), (60, 160, 90)),
    "stool": ((0.32, 0.42), (0.32, 0.42), (0.45, 0.70), (230, 130, 40)),
    "plant": ((0.30, 0.50), (0.30, 0.50), (0.50, 1.20), (40, 120, 40)),
    "trash can": ((0.25, 0.38), (0.25, 0.38), (0.30, 0.60), (110, 110, 120)),
    "box": ((0.30, 0.60), (0.30, 0.50), (0.25, 0.50), (200, 170, 120)),
}


@dataclass(frozen=True)
class Object3D:
    """An axis-aligned box on the floor. ``size`` = (extent along x, extent along y, height)."""

    category: str
    center: Vec3
    size: Vec3
    color: Color

    @property
    def min_corner(self) -> np.ndarray:
        return np.asarray(self.center, dtype=np.float64) - np.asarray(self.size, dtype=np.float64) / 2

    @property
    def max_corner(self) -> np.ndarray:
        return np.asarray(self.center, dtype=np.float64) + np.asarray(self.size, dtype=np.float64) / 2

    def corners(self) -> np.ndarray:
        """(8, 3) corners, index bits (x, y, z) = (i & 1, i >> 1 & 1, i >> 2 & 1) pick max/min."""
        lo, hi = self.min_corner, self.max_corner
        return np.array(
            [
                [(hi if i & 1 else lo)[0], (hi if i >> 1 & 1 else lo)[1], (hi if i >> 2 & 1 else lo)[2]]
                for i in range(8)
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "center": list(self.center),
            "size": list(self.size),
            "color": list(self.color),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Object3D:
        return cls(d["category"], tuple(d["center"]), tuple(d["size"]), tuple(d["color"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Camera:
    """Pinhole camera. ``frame_id`` names the image file; ``group`` is ``video`` or ``multi_view``."""

    position: Vec3
    yaw: float
    pitch: float
    fx: float
    fy: float
    width: int
    height: int
    frame_id: int = 0
    group: str = MULTI_VIEW

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World-frame unit vectors (right, up, forward) of the camera."""
        cy_, sy_ = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = np.array([cp * cy_, cp * sy_, sp])
        right = np.array([sy_, -cy_, 0.0])
        up = np.cross(right, forward)
        return right, up, forward

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) camera coordinates (x right, y up, z forward)."""
        right, up, forward = self.axes()
        d = np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(self.position, dtype=np.float64)
        return np.stack([d @ right, d @ up, d @ forward], axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_id": self.frame_id, "group": self.group, "position": list(self.position),
            "yaw": self.yaw, "pitch": self.pitch, "fx": self.fx, "fy": self.fy,
            "width": self.width, "height": self.height,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Camera:
        return cls(
            tuple(d["position"]), d["yaw"], d["pitch"], d["fx"], d["fy"], d["width"], d["height"],  # type: ignore[arg-type]
            frame_id=d.get("frame_id", 0), group=d.get("group", MULTI_VIEW),
        )  # fmt: skip


@dataclass
class Scene:
    scene_id: str
    room: Vec3  # (width along x, depth along y, height) in metres
    objects: list[Object3D]
    cameras: list[Camera] = field(default_factory=list)

    @property
    def video_cameras(self) -> list[Camera]:
        return [c for c in self.cameras if c.group == VIDEO]

    @property
    def view_cameras(self) -> list[Camera]:
        return [c for c in self.cameras if c.group == MULTI_VIEW]

    def category_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.objects:
            counts[o.category] = counts.get(o.category, 0) + 1
        return counts

    def unique_object_ids(self) -> list[int]:
        """Indices of objects whose category occurs once (the only ones questions may name)."""
        counts = self.category_counts()
        return [i for i, o in enumerate(self.objects) if counts[o.category] == 1]

    def floor_area(self) -> float:
        return self.room[0] * self.room[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scene_id": self.scene_id,
            "room": list(self.room),
            "objects": [o.to_dict() for o in self.objects],
            "cameras": [c.to_dict() for c in self.cameras],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        return cls(
            d["scene_id"], tuple(d["room"]),  # type: ignore[arg-type]
            [Object3D.from_dict(o) for o in d["objects"]], [Camera.from_dict(c) for c in d["cameras"]],
        )  # fmt: skip


def focal_for_fov(width: int, hfov_deg: float) -> float:
    return width / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))


def look_at_camera(
    position: Vec3,
    target: Vec3,
    width: int,
    height: int,
    *,
    hfov_deg: float = 75.0,
    frame_id: int = 0,
    group: str = MULTI_VIEW,
) -> Camera:
    """A camera at ``position`` looking at ``target`` (no roll), square pixels."""
    dx, dy, dz = (t - p for t, p in zip(target, position))
    yaw = math.atan2(dy, dx)
    pitch = math.atan2(dz, math.hypot(dx, dy))
    f = focal_for_fov(width, hfov_deg)
    return Camera(tuple(position), yaw, pitch, f, f, width, height, frame_id=frame_id, group=group)  # type: ignore[arg-type]


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def size_choices(image_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Image sizes a scene may use: the given one, a larger 4:3-ish one and a wider one (even sides)."""
    w, h = image_size
    return [(_even(w), _even(h)), (_even(w * 1.25), _even(h * 1.25)), (_even(w * 1.2), _even(h * 0.8))]


def _r(x: float, nd: int) -> float:
    return float(round(x, nd))


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float], gap: float) -> bool:
    """Footprints (xmin, ymin, xmax, ymax) closer than ``gap``."""
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _place(
    rng: random.Random, category: str, spec: tuple, room: Vec3, placed: list[tuple[float, float, float, float]],
    margin: float, gap: float, tries: int = 60,
) -> Object3D | None:  # fmt: skip
    (w0, w1), (d0, d1), (h0, h1), base = spec
    w, d, h = _r(rng.uniform(w0, w1), 2), _r(rng.uniform(d0, d1), 2), _r(rng.uniform(h0, h1), 2)
    if rng.random() < 0.5:
        w, d = d, w
    lo_x, hi_x = margin + w / 2, room[0] - margin - w / 2
    lo_y, hi_y = margin + d / 2, room[1] - margin - d / 2
    if lo_x > hi_x or lo_y > hi_y:
        return None
    for _ in range(tries):
        cx, cy = _r(rng.uniform(lo_x, hi_x), 3), _r(rng.uniform(lo_y, hi_y), 3)
        fp = (cx - w / 2, cy - d / 2, cx + w / 2, cy + d / 2)
        if any(_overlaps(fp, other, gap) for other in placed):
            continue
        placed.append(fp)
        jitter = [max(0, min(255, c + rng.randint(-12, 12))) for c in base]
        return Object3D(category, (cx, cy, _r(h / 2, 3)), (w, d, h), tuple(jitter))  # type: ignore[arg-type]
    return None


def make_scene(
    rng: random.Random,
    scene_id: str,
    *,
    image_size: tuple[int, int] = (160, 120),
    video_frames: int = 8,
    num_views: int = 8,
    vary_size: bool = True,
    hfov_deg: float = 75.0,
) -> Scene:
    """A random room with 4-8 objects of distinct categories plus 2-4 instances of one countable
    category (``COUNT_CATEGORIES``), a video trajectory and ``num_views`` inward-looking views.

    Objects keep 0.8 m from the walls and 0.15 m from each other, and the distinct-category ones
    cover at most 30% of that inner floor (so views are not walls of furniture); cameras move on a ring 0.2 m
    from the walls at 1.35-1.85 m height, so no camera is ever inside or right above an object.
    """
    if video_frames < 2:
        raise ValueError("video_frames must be >= 2")
    if num_views < 1:
        raise ValueError("num_views must be >= 1")
    margin, gap, max_fill = 0.8, 0.15, 0.3
    for _attempt in range(100):
        room = (_r(rng.uniform(4.5, 7.5), 2), _r(rng.uniform(4.0, 6.5), 2), _r(rng.uniform(2.5, 3.0), 2))
        budget = max_fill * (room[0] - 2 * margin) * (room[1] - 2 * margin)
        n_unique = rng.randint(4, 8)
        names = sorted(CATEGORIES)
        rng.shuffle(names)
        count_cat = rng.choice(sorted(COUNT_CATEGORIES))
        n_count = rng.randint(2, 4)
        placed: list[tuple[float, float, float, float]] = []
        objects: list[Object3D] = []
        for name in names:
            if sum(o.category in CATEGORIES for o in objects) >= n_unique:
                break
            obj = _place(rng, name, CATEGORIES[name], room, placed, margin, gap)
            if obj is None:
                continue
            if sum(o.size[0] * o.size[1] for o in objects) + obj.size[0] * obj.size[1] > budget:
                placed.pop()  # too crowded: leave this one out
                continue
            objects.append(obj)
        if len(objects) < 4:
            continue
        for _ in range(n_count):
            obj = _place(rng, count_cat, COUNT_CATEGORIES[count_cat], room, placed, margin, gap)
            if obj is not None:
                objects.append(obj)
        order = list(range(len(objects)))
        rng.shuffle(order)
        objects = [objects[i] for i in order]
        break
    else:  # pragma: no cover - 100 failed rooms would need pathological category tables
        raise RuntimeError("could not place objects")

    sizes = size_choices(image_size) if vary_size else [(_even(image_size[0]), _even(image_size[1]))]
    video_size = rng.choice(sizes)
    view_size = rng.choice(sizes)
    W, D, _H = room
    cxr, cyr = W / 2, D / 2
    ax, ay = W / 2 - 0.2, D / 2 - 0.2

    def ring(theta: float) -> tuple[float, float]:
        return cxr + ax * math.cos(theta), cyr + ay * math.sin(theta)

    cameras: list[Camera] = []
    # Video: walk most of the way round the ring, looking across the room and a little ahead.
    theta0 = rng.uniform(0, 2 * math.pi)
    sweep = rng.uniform(1.3, 1.7) * math.pi * (1 if rng.random() < 0.5 else -1)
    z_cam = rng.uniform(1.4, 1.8)
    for i in range(video_frames):
        th = theta0 + sweep * i / (video_frames - 1)
        px, py = ring(th)
        ahead = th + math.copysign(math.radians(rng.uniform(125, 150)), sweep)
        tx, ty = cxr + 0.6 * ax * math.cos(ahead), cyr + 0.6 * ay * math.sin(ahead)
        pos = (_r(px, 3), _r(py, 3), _r(z_cam + rng.uniform(-0.05, 0.05), 3))
        cameras.append(
            look_at_camera(
                pos, (tx, ty, rng.uniform(0.3, 0.7)), *video_size, hfov_deg=hfov_deg, frame_id=i, group=VIDEO
            )
        )
    # Multi-view: evenly spread round the ring, each looking at the room centre (jittered).
    phi0 = rng.uniform(0, 2 * math.pi)
    for j in range(num_views):
        th = phi0 + 2 * math.pi * j / num_views + rng.uniform(-0.15, 0.15)
        px, py = ring(th)
        pos = (_r(px, 3), _r(py, 3), _r(rng.uniform(1.4, 1.8), 3))
        target = (cxr + rng.uniform(-0.5, 0.5), cyr + rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.7))
        cameras.append(
            look_at_camera(
                pos, target, *view_size, hfov_deg=hfov_deg, frame_id=video_frames + j, group=MULTI_VIEW
            )
        )
    return Scene(scene_id, room, objects, cameras)
