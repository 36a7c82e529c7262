"""Write a scene in the ScanNet layout from a box scene (``spatialladder.synthetic.Scene``).

Two uses: tests build small ScanNet-layout scenes with a known ground truth, and any synthetic
scene can be fed to the same construction pipeline as a real scan (synthetic scene -> ScanNet
layout -> :mod:`spatialladder.construction`). What is written (see :mod:`.scannet` for the reader):

- the mesh: every object box and the room's floor and four walls as grids of vertices (spacing
  ``point_spacing``) with triangle faces, stored in a *raw* frame: ``axisAlignment`` maps it back;
- segments (each box is two segments: its top face and the rest; floor and walls one each) and the
  aggregation (objects labelled by category; ``floor`` and ``wall`` as in ScanNet);
- one frame per camera in the scene's camera order, frame ids ``0, stride, 2*stride, ...``: colour
  JPEG from the synthetic renderer, depth PNG (uint16 mm, ``depth_scale`` x the colour resolution)
  ray-cast against the boxes and the room, camera-to-world pose in the raw frame, intrinsics;
  frames listed in ``invalid_poses`` get an all ``-inf`` pose as real ScanNet has.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from plyfile import PlyData, PlyElement

from spatialladder.synthetic.render import render_frame
from spatialladder.synthetic.scene import Camera, Scene


def default_axis_alignment() -> np.ndarray:
    """A rotation of 0.4 rad about z plus a shift: the raw frame is not the aligned one."""
    c, s = math.cos(0.4), math.sin(0.4)
    return np.array([[c, -s, 0, 1.3], [s, c, 0, -0.7], [0, 0, 1, 0.05], [0, 0, 0, 1]], dtype=np.float64)


def camera_pose(cam: Camera) -> np.ndarray:
    """4x4 camera-to-world pose (OpenCV axes: x right, y down, z forward) of a synthetic camera."""
    right, up, forward = cam.axes()
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, -up, forward, cam.position
    return pose


def intrinsic_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)


def _grid(
    origin: np.ndarray, du: np.ndarray, dv: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of the parallelogram origin + a*du + b*dv, a, b in [0, 1]."""
    nu = max(1, math.ceil(np.linalg.norm(du) / spacing))
    nv = max(1, math.ceil(np.linalg.norm(dv) / spacing))
    a, b = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
    verts = origin + a.reshape(-1, 1) * du + b.reshape(-1, 1) * dv
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    q0, q1, q2, q3 = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([q0, q1, q2], 1), np.stack([q0, q2, q3], 1)])
    return verts, faces


def _box_faces(lo: np.ndarray, hi: np.ndarray) -> list[tuple[bool, np.ndarray, np.ndarray, np.ndarray]]:
    """(is_top, origin, du, dv) for the six faces of an axis-aligned box."""
    out = []
    for axis in range(3):
        b, c = [k for k in range(3) if k != axis]
        for val in (lo[axis], hi[axis]):
            origin = lo.copy()
            origin[axis] = val
            du, dv = np.zeros(3), np.zeros(3)
            du[b], dv[c] = hi[b] - lo[b], hi[c] - lo[c]
            out.append((axis == 2 and val == hi[axis], origin, du, dv))
    return out


def build_mesh(scene: Scene, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Aligned-frame vertices, faces, per-vertex segment ids and the aggregation's segGroups."""
    W, D, H = scene.room
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []  # (segment id, verts, faces)
    groups: list[dict] = []
    o = np.zeros(3)
    room = [("floor", o, np.array([W, 0, 0.0]), np.array([0, D, 0.0]))]
    room += [("wall", np.array(p, dtype=float), np.array(u, dtype=float), np.array([0, 0, H]))
             for p, u in (((0, 0, 0), (W, 0, 0)), ((0, D, 0), (W, 0, 0)), ((0, 0, 0), (0, D, 0)), ((W, 0, 0), (0, D, 0)))]  # fmt: skip
    for k, (label, origin, du, dv) in enumerate(room):
        seg = 1 + k
        parts.append((seg, *_grid(origin, du, dv, spacing * 4)))
        groups.append({"id": len(groups), "objectId": len(groups), "segments": [seg], "label": label})
    for i, obj in enumerate(scene.objects):
        top_seg, side_seg = 1000 + 10 * i, 1000 + 10 * i + 1
        for is_top, origin, du, dv in _box_faces(obj.min_corner, obj.max_corner):
            parts.append((top_seg if is_top else side_seg, *_grid(origin, du, dv, spacing)))
        groups.append({"id": len(groups), "objectId": len(groups), "segments": [side_seg, top_seg],
                       "label": obj.category})  # fmt: skip
    verts, faces, segs, offset = [], [], [], 0
    for seg, v, f in parts:
        verts.append(v)
        faces.append(f + offset)
        segs.append(np.full(len(v), seg, dtype=np.int64))
        offset += len(v)
    return np.concatenate(verts), np.concatenate(faces), np.concatenate(segs), groups


def raycast_depth(scene: Scene, pose: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                  width: int, height: int) -> np.ndarray:  # fmt: skip
    """(height, width) z-depth in metres of the nearest box or room surface through each pixel centre
    (pixel (i, j) looks through u = i, v = j)."""
    jj, ii = np.meshgrid(
        np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij"
    )
    dirs_cam = np.stack([(ii - cx) / fx, (jj - cy) / fy, np.ones_like(ii)], -1).reshape(-1, 3)
    dirs = dirs_cam @ pose[:3, :3].T  # with camera z = 1, the ray parameter t is the depth itself
    origin = pose[:3, 3]
    W, D, H = scene.room
    with np.errstate(divide="ignore", invalid="ignore"):
        exits = []
        for k, hi in enumerate((W, D, H)):
            d = dirs[:, k]
            exits.append(np.where(d > 0, (hi - origin[k]) / d, np.where(d < 0, (0 - origin[k]) / d, np.inf)))
        depth = np.min(np.stack(exits), 0)
        for obj in scene.objects:
            lo, hi = obj.min_corner, obj.max_corner
            t1, t2 = (lo - origin) / dirs, (hi - origin) / dirs
            t1, t2 = np.nan_to_num(t1, nan=-np.inf), np.nan_to_num(t2, nan=np.inf)
            tmin, tmax = np.minimum(t1, t2).max(1), np.maximum(t1, t2).min(1)
            hit = (tmax >= tmin) & (tmin > 0)
            depth = np.where(hit & (tmin < depth), tmin, depth)
    return depth.reshape(height, width)


def write_scannet_scene(
    scene: Scene,
    root: str | Path,
    *,
    scene_id: str | None = None,
    axis_alignment: np.ndarray | None = None,
    frame_stride: int = 10,
    invalid_poses: Sequence[int] = (),
    depth_scale: float = 0.5,
    point_spacing: float = 0.05,
    jpeg_quality: int = 92,
) -> Path:
    """Write ``scene`` under ``root/<scene_id>/`` in the ScanNet layout; returns that folder.

    All cameras must share one image size (a ScanNet sequence has one); ``invalid_poses`` are
    indices into ``scene.cameras`` whose pose is written as ``-inf``."""
    sid = scene_id or scene.scene_id
    out = Path(root) / sid
    for sub in ("color", "depth", "pose", "intrinsic"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if not scene.cameras:
        raise ValueError("scene has no cameras")
    sizes = {(c.width, c.height) for c in scene.cameras}
    if len(sizes) != 1:
        raise ValueError(f"all cameras must share one image size, got {sorted(sizes)}")
    (w, h) = sizes.pop()
    align = (
        default_axis_alignment() if axis_alignment is None else np.asarray(axis_alignment, dtype=np.float64)
    )
    to_raw = np.linalg.inv(align)

    verts, faces, segs, groups = build_mesh(scene, point_spacing)
    raw = verts @ to_raw[:3, :3].T + to_raw[:3, 3]
    vertex = np.empty(
        len(raw),
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    vertex["x"], vertex["y"], vertex["z"] = raw[:, 0], raw[:, 1], raw[:, 2]
    vertex["red"] = vertex["green"] = vertex["blue"] = 128
    face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
    face["vertex_indices"] = faces
    PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")]).write(
        str(out / f"{sid}_vh_clean_2.ply")
    )
    seg_file = f"{sid}_vh_clean_2.0.010000.segs.json"
    (out / seg_file).write_text(json.dumps({"sceneId": sid, "segIndices": segs.tolist()}), encoding="utf-8")
    agg = {"sceneId": f"scannet.{sid}", "appId": "spatialladder.scannet_writer", "segGroups": groups,
           "segmentsFile": f"scannet.{seg_file}"}  # fmt: skip
    (out / f"{sid}.aggregation.json").write_text(json.dumps(agg), encoding="utf-8")

    cam0 = scene.cameras[0]
    dw, dh = max(1, round(w * depth_scale)), max(1, round(h * depth_scale))
    kc = intrinsic_matrix(cam0.fx, cam0.fy, cam0.cx, cam0.cy)
    kd = intrinsic_matrix(
        cam0.fx * depth_scale, cam0.fy * depth_scale, cam0.cx * depth_scale, cam0.cy * depth_scale
    )
    np.savetxt(out / "intrinsic" / "intrinsic_color.txt", kc, fmt="%.6f")
    np.savetxt(out / "intrinsic" / "intrinsic_depth.txt", kd, fmt="%.6f")
    meta = {
        "axisAlignment": " ".join(f"{x:.9f}" for x in align.ravel()),
        "colorHeight": h, "colorWidth": w, "depthHeight": dh, "depthWidth": dw,
        "numColorFrames": len(scene.cameras), "numDepthFrames": len(scene.cameras),
    }  # fmt: skip
    (out / f"{sid}.txt").write_text("".join(f"{k} = {v}\n" for k, v in meta.items()), encoding="utf-8")

    bad = set(invalid_poses)
    for k, cam in enumerate(scene.cameras):
        fid = k * frame_stride
        if (cam.fx, cam.fy, cam.width, cam.height) != (cam0.fx, cam0.fy, cam0.width, cam0.height):
            raise ValueError(f"camera {k}: intrinsics differ from camera 0 (one sequence has one camera)")
        render_frame(scene, cam).image.save(out / "color" / f"{fid}.jpg", format="JPEG", quality=jpeg_quality)
        pose = camera_pose(cam)
        depth = raycast_depth(scene, pose, kd[0, 0], kd[1, 1], kd[0, 2], kd[1, 2], dw, dh)
        mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
        Image.fromarray(mm).save(out / "depth" / f"{fid}.png")
        raw_pose = np.full((4, 4), -np.inf) if k in bad else to_raw @ pose
        np.savetxt(out / "pose" / f"{fid}.txt", raw_pose, fmt="%.9f")
    return out
