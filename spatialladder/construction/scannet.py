"""Read one scene in the ScanNet layout into a :class:`ScanScene`.

Expected files in ``<root>/<scene_id>/`` (the frames as exported from the ``.sens`` file by
ScanNet's ``SensReader``)::

    <scene>.txt                                 "axisAlignment = m00 m01 ... m33" (row-major 4x4)
    <scene>_vh_clean_2.ply                      mesh vertices (x, y, z)
    <scene>_vh_clean_2.0.010000.segs.json       {"segIndices": [segment id per vertex]}
    <scene>.aggregation.json                    {"segGroups": [{"objectId", "label", "segments"}]}
    color/<i>.jpg  depth/<i>.png (uint16 mm)    pose/<i>.txt (4x4 camera-to-world, may be -inf)
    intrinsic/intrinsic_color.txt  intrinsic/intrinsic_depth.txt   (4x4)

Poses are moved into the aligned frame (``axisAlignment @ pose``) like the mesh. Frames with a
non-finite pose (real ScanNet has ``-inf`` rows where tracking was lost) are skipped and listed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from plyfile import PlyData

from spatialladder.construction.scene import Frame, Instance, Intrinsics, ScanScene

# Labels that are structure or "unknown", never objects a question may name (ScanNet raw labels).
EXCLUDED_LABELS: frozenset[str] = frozenset(
    {"wall", "floor", "ceiling", "object", "objects", "remove", "unknown", "otherstructure", "otherprop",
     "otherfurniture", "door frame", "window frame"}
)  # fmt: skip


class ScanNetFormatError(ValueError):
    """A scene folder is missing a file or a file does not have the ScanNet layout (names the file)."""


def scene_files(scene_dir: Path) -> dict[str, Path]:
    sid = scene_dir.name
    return {
        "meta": scene_dir / f"{sid}.txt",
        "mesh": scene_dir / f"{sid}_vh_clean_2.ply",
        "segs": scene_dir / f"{sid}_vh_clean_2.0.010000.segs.json",
        "aggregation": scene_dir / f"{sid}.aggregation.json",
        "intrinsic_color": scene_dir / "intrinsic" / "intrinsic_color.txt",
        "intrinsic_depth": scene_dir / "intrinsic" / "intrinsic_depth.txt",
        "color": scene_dir / "color",
        "depth": scene_dir / "depth",
        "pose": scene_dir / "pose",
    }


def read_meta(path: Path) -> dict[str, str]:
    """``key = value`` lines of ``<scene>.txt``."""
    meta = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            meta[k.strip()] = v.strip()
    return meta


def read_axis_alignment(path: Path) -> np.ndarray:
    """The 4x4 ``axisAlignment`` of ``<scene>.txt``; identity when the file has none (ScanNet test scenes)."""
    meta = read_meta(path)
    if "axisAlignment" not in meta:
        return np.eye(4)
    try:
        vals = [float(x) for x in meta["axisAlignment"].split()]
    except ValueError as exc:
        raise ScanNetFormatError(f"{path}: axisAlignment: not numbers ({exc})") from None
    if len(vals) != 16:
        raise ScanNetFormatError(f"{path}: axisAlignment: expected 16 numbers, got {len(vals)}")
    return np.array(vals, dtype=np.float64).reshape(4, 4)


def read_matrix(path: Path) -> np.ndarray:
    """A whitespace-separated 4x4 matrix file (pose or intrinsics); non-finite values are kept."""
    try:
        m = np.array([float(x) for x in path.read_text(encoding="utf-8").split()], dtype=np.float64)
    except ValueError as exc:
        raise ScanNetFormatError(f"{path}: not a 4x4 matrix of numbers ({exc})") from None
    if m.size != 16:
        raise ScanNetFormatError(f"{path}: expected 16 numbers (4x4), got {m.size}")
    return m.reshape(4, 4)


def read_mesh_vertices(path: Path) -> np.ndarray:
    """(N, 3) vertex positions of a PLY mesh."""
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"]
        return np.stack([np.asarray(v["x"]), np.asarray(v["y"]), np.asarray(v["z"])], axis=1).astype(
            np.float64
        )
    except (KeyError, ValueError, OSError) as exc:
        raise ScanNetFormatError(f"{path}: cannot read PLY vertices x, y, z ({exc})") from None


def load_label_map(path: Path, column: str = "category") -> dict[str, str]:
    """``raw_category -> column`` from ScanNet's ``scannetv2-labels.combined.tsv``."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if (
            reader.fieldnames is None
            or "raw_category" not in reader.fieldnames
            or column not in reader.fieldnames
        ):
            raise ScanNetFormatError(
                f"{path}: needs columns raw_category and {column}, has {reader.fieldnames}"
            )
        return {row["raw_category"]: row[column] for row in reader if row[column]}


def _intrinsics(path: Path, size: tuple[int, int]) -> Intrinsics:
    k = read_matrix(path)
    return Intrinsics(
        float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(size[0]), int(size[1])
    )


def _image_size(
    meta: dict[str, str], prefix: str, first_image: Path | None, meta_path: Path
) -> tuple[int, int]:
    w, h = meta.get(f"{prefix}Width"), meta.get(f"{prefix}Height")
    if w and h:
        return int(w), int(h)
    if first_image is None:
        raise ScanNetFormatError(
            f"{meta_path}: no {prefix}Width/{prefix}Height and no {prefix} image to read it from"
        )
    with Image.open(first_image) as im:
        return im.size


def read_scene(
    scene_dir: str | Path,
    *,
    label_map: Mapping[str, str] | None = None,
    excluded_labels: Collection[str] = EXCLUDED_LABELS,
    min_points: int = 10,
) -> ScanScene:
    """Read a ScanNet scene folder (see the module doc). Instances with an excluded label (after
    ``label_map``) or fewer than ``min_points`` vertices are left out and counted in ``skipped_labels``."""
    scene_dir = Path(scene_dir)
    files = scene_files(scene_dir)
    for key in (
        "meta",
        "mesh",
        "segs",
        "aggregation",
        "intrinsic_color",
        "intrinsic_depth",
        "pose",
        "color",
        "depth",
    ):
        if not files[key].exists():
            raise ScanNetFormatError(f"{files[key]}: missing (scene {scene_dir.name})")
    align = read_axis_alignment(files["meta"])
    raw = read_mesh_vertices(files["mesh"])
    verts = raw @ align[:3, :3].T + align[:3, 3]

    segs = json.loads(files["segs"].read_text(encoding="utf-8"))
    if "segIndices" not in segs:
        raise ScanNetFormatError(f"{files['segs']}: no segIndices")
    seg_idx = np.asarray(segs["segIndices"], dtype=np.int64)
    if len(seg_idx) != len(verts):
        raise ScanNetFormatError(
            f"{files['segs']}: segIndices has {len(seg_idx)} entries, the mesh {files['mesh'].name} {len(verts)} vertices"
        )
    agg = json.loads(files["aggregation"].read_text(encoding="utf-8"))
    if "segGroups" not in agg:
        raise ScanNetFormatError(f"{files['aggregation']}: no segGroups")
    instances: list[Instance] = []
    skipped: dict[str, int] = {}
    for k, group in enumerate(agg["segGroups"]):
        try:
            label, segments = str(group["label"]), group["segments"]
            object_id = int(group.get("objectId", group.get("id", k)))
        except KeyError as exc:
            raise ScanNetFormatError(f"{files['aggregation']}: segGroups[{k}]: missing {exc}") from None
        label = (label_map or {}).get(label, label).strip().lower()
        mask = np.isin(seg_idx, np.asarray(segments, dtype=np.int64))
        if label in excluded_labels:
            skipped["excluded_label"] = skipped.get("excluded_label", 0) + 1
            continue
        if int(mask.sum()) < min_points:
            skipped["too_few_points"] = skipped.get("too_few_points", 0) + 1
            continue
        instances.append(Instance(object_id, label, verts[mask]))

    meta = read_meta(files["meta"])
    frames: list[Frame] = []
    invalid: list[int] = []
    pose_files = sorted(files["pose"].glob("*.txt"), key=lambda p: (len(p.stem), p.stem))
    if not pose_files:
        raise ScanNetFormatError(f"{files['pose']}: no pose files")
    first_color = first_depth = None
    for pf in pose_files:
        try:
            fid = int(pf.stem)
        except ValueError:
            raise ScanNetFormatError(f"{pf}: frame files must be named <integer>.txt") from None
        pose = read_matrix(pf)
        color, depth = files["color"] / f"{fid}.jpg", files["depth"] / f"{fid}.png"
        if not np.isfinite(pose).all():
            invalid.append(fid)
            continue
        for p in (color, depth):
            if not p.is_file():
                raise ScanNetFormatError(f"{p}: missing (pose {pf.name} exists)")
        first_color, first_depth = first_color or color, first_depth or depth
        frames.append(Frame(fid, color, depth, align @ pose))
    frames.sort(key=lambda f: f.frame_id)
    color_k = _intrinsics(files["intrinsic_color"], _image_size(meta, "color", first_color, files["meta"]))
    depth_k = _intrinsics(files["intrinsic_depth"], _image_size(meta, "depth", first_depth, files["meta"]))
    return ScanScene(
        scene_id=scene_dir.name, axis_alignment=align, instances=instances,
        room_min=tuple(float(x) for x in verts.min(0)), room_max=tuple(float(x) for x in verts.max(0)),  # type: ignore[arg-type]
        color_intrinsics=color_k, depth_intrinsics=depth_k, frames=frames,
        invalid_pose_frames=sorted(invalid), skipped_labels=skipped,
    )  # fmt: skip


def list_scenes(root: str | Path) -> list[str]:
    """Scene folders under a ScanNet root (``scans/`` is looked into when present)."""
    root = Path(root)
    base = root / "scans" if (root / "scans").is_dir() else root
    return sorted(
        p.name for p in base.iterdir() if p.is_dir() and (p / f"{p.name}.aggregation.json").is_file()
    )


def scene_dir(root: str | Path, scene_id: str) -> Path:
    root = Path(root)
    base = root / "scans" if (root / "scans").is_dir() else root
    return base / scene_id
