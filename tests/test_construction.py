"""Construction from ScanNet-layout scans: reader, projection/visibility, filters, answers, validator.

Scenes are hand-built box scenes (or synthetic ones) written in the ScanNet layout by
``spatialladder.construction.scannet_writer``; every answer is re-derived here from the 3D ground
truth of the scene that was written, not from the construction's own scene model."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spatialladder.construction import (
    BuildConfig,
    Frame,
    Instance,
    Intrinsics,
    ScanNetFormatError,
    VisibilityConfig,
    build_dataset,
    detect,
    read_scene,
    write_scannet_scene,
)
from spatialladder.construction.build import balance_letters
from spatialladder.construction.scannet_writer import camera_pose, default_axis_alignment
from spatialladder.data.validate import main as validate_main
from spatialladder.prompts import build_prompt
from spatialladder.synthetic.scene import Object3D, Scene, look_at_camera, make_scene

W, H = 96, 72


def _room_scene(positions: list[tuple[float, float]], sid: str = "scene0900_00") -> Scene:
    """Four distinct objects at ``positions`` in a 6 x 6 m room and 12 cameras circling the room."""
    cats = ["table", "cabinet", "sofa", "bookshelf"]
    objs = [Object3D(c, (x, y, 0.45), (0.5, 0.5, 0.9), (120, 90, 60)) for c, (x, y) in zip(cats, positions)]
    cams = []
    for k in range(12):
        th = 2 * math.pi * k / 12
        pos = (3 + 2.7 * math.cos(th), 3 + 2.7 * math.sin(th), 1.6)
        cams.append(look_at_camera(pos, (3, 3, 0.4), W, H, hfov_deg=80, frame_id=k))
    return Scene(sid, (6.0, 6.0, 3.0), objs, cams)


# ------------------------------------------------------------------------------------------------
# Reader
# ------------------------------------------------------------------------------------------------
def test_reader_loads_scannet_layout(tmp_path: Path) -> None:
    scene = _room_scene([(2, 2), (4, 2), (2, 4.5), (4.2, 4.1)])
    d = write_scannet_scene(scene, tmp_path, invalid_poses=[3], frame_stride=20)
    for name in ("scene0900_00.txt", "scene0900_00_vh_clean_2.ply", "scene0900_00_vh_clean_2.0.010000.segs.json",
                 "scene0900_00.aggregation.json", "intrinsic/intrinsic_color.txt", "intrinsic/intrinsic_depth.txt",
                 "color/0.jpg", "depth/60.png", "pose/60.txt"):  # fmt: skip
        assert (d / name).is_file(), name
    assert "-inf" in (d / "pose" / "60.txt").read_text()
    # the mesh on disk is in the raw (unaligned) frame
    raw_table = json.loads((d / "scene0900_00.aggregation.json").read_text())["segGroups"][5]
    assert raw_table["label"] == "table" and len(raw_table["segments"]) == 2

    scan = read_scene(d)
    assert np.allclose(scan.axis_alignment, default_axis_alignment())
    assert scan.invalid_pose_frames == [60]
    assert [f.frame_id for f in scan.frames] == [k * 20 for k in range(12) if k != 3]
    assert scan.skipped_labels == {"excluded_label": 5}  # floor + 4 walls
    assert [i.category for i in scan.instances] == ["table", "cabinet", "sofa", "bookshelf"]
    for inst, obj in zip(scan.instances, scene.objects):
        lo, hi = inst.points.min(0), inst.points.max(0)
        assert np.allclose(lo, obj.min_corner, atol=1e-5) and np.allclose(hi, obj.max_corner, atol=1e-5)
        assert np.allclose(inst.center, obj.center, atol=1e-5) and np.allclose(inst.size, obj.size, atol=1e-5)
    assert np.allclose(scan.room_min, (0, 0, 0), atol=1e-5) and np.allclose(
        scan.room_max, (6, 6, 3), atol=1e-5
    )
    # poses come back in the aligned frame
    for f in scan.frames:
        assert np.allclose(f.pose, camera_pose(scene.cameras[f.frame_id // 20]), atol=1e-6)
    k = scan.color_intrinsics
    assert (k.width, k.height, k.cx, k.cy) == (W, H, W / 2, H / 2)
    assert math.isclose(k.fx, scene.cameras[0].fx, rel_tol=1e-6)
    dk = scan.depth_intrinsics
    assert (dk.width, dk.height) == (W // 2, H // 2) and math.isclose(dk.fx, k.fx / 2, rel_tol=1e-6)
    depth = np.asarray(Image.open(scan.frames[0].depth_path))
    assert depth.dtype == np.uint16 and depth.shape == (H // 2, W // 2) and depth.min() > 0


def test_reader_names_the_bad_file(tmp_path: Path) -> None:
    d = write_scannet_scene(_room_scene([(2, 2), (4, 2), (2, 4.5), (4.2, 4.1)]), tmp_path)
    segs = d / "scene0900_00_vh_clean_2.0.010000.segs.json"
    segs.write_text(json.dumps({"segIndices": [1, 2, 3]}))
    with pytest.raises(ScanNetFormatError, match=r"segs\.json: segIndices has 3 entries"):
        read_scene(d)
    (d / "intrinsic" / "intrinsic_depth.txt").unlink()
    with pytest.raises(ScanNetFormatError, match=r"intrinsic_depth\.txt: missing"):
        read_scene(d)


# ------------------------------------------------------------------------------------------------
# Projection and the visibility filters
# ------------------------------------------------------------------------------------------------
def _box_points(lo: tuple[float, float, float], hi: tuple[float, float, float], n: int = 9) -> np.ndarray:
    g = np.linspace(0, 1, n)
    pts = []
    for axis in range(3):
        b, c = [k for k in range(3) if k != axis]
        for val in (lo[axis], hi[axis]):
            for s in g:
                for t in g:
                    p = [0.0, 0.0, 0.0]
                    p[axis], p[b], p[c] = val, lo[b] + s * (hi[b] - lo[b]), lo[c] + t * (hi[c] - lo[c])
                    pts.append(p)
    return np.array(pts)


# Camera at the origin looking along world +x: camera x (right) = world -y, y (down) = world -z.
POSE = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
K = Intrinsics(100.0, 100.0, 80.0, 60.0, 160, 120)
KD = Intrinsics(50.0, 50.0, 40.0, 30.0, 80, 60)  # depth at half resolution
FRAME = Frame(0, Path("c.jpg"), Path("d.png"), POSE)


def test_projected_box_equals_hand_computed() -> None:
    inst = Instance(1, "box", _box_points((4.0, -0.5, -0.3), (5.0, 0.5, 0.2)))
    far = np.full((60, 80), 10.0)
    d = detect(inst, FRAME, far, K, KD)
    # Nearest face x = 4: u = 80 - 100*y/4 over y in [-0.5, 0.5] -> [67.5, 92.5];
    # v = 60 - 100*z/4 over z in [-0.3, 0.2] -> [55, 67.5]; floor/ceil -> (67, 55, 93, 68).
    assert d.box == (67, 55, 93, 68) and d.reason is None
    assert d.truncation == 0.0 and d.occlusion == 0.0 and d.visible_fraction == 1.0


def test_each_visibility_filter_drops_its_case() -> None:
    far = np.full((60, 80), 10.0)
    # occluded: a wall at 2 m hides depth columns < 43 (the box spans u_depth 33.75..46.25: 3/4 of it)
    wall = far.copy()
    wall[:, :43] = 2.0
    inst = Instance(1, "box", _box_points((4.0, -0.5, -0.3), (5.0, 0.5, 0.2)))
    d = detect(inst, FRAME, wall, K, KD)
    assert d.reason == "occluded" and d.box is None and d.occlusion > 0.5
    assert detect(inst, FRAME, wall, K, KD, VisibilityConfig(max_occlusion=1.0)).box is not None
    # truncated: the box reaches past the left image edge (u < 0 for y > 0.8 * x ...)
    side = Instance(2, "box", _box_points((2.0, 0.8, -0.2), (2.5, 2.2, 0.2)))
    d = detect(side, FRAME, far, K, KD)
    assert d.reason == "truncated" and d.truncation > 0.3
    kept = detect(side, FRAME, far, K, KD, VisibilityConfig(max_truncation=1.0))
    assert kept.box is not None and kept.box[0] == 0  # clipped at the image edge
    # too small: a 10 cm box 20 m away is 0.5 px wide
    tiny = Instance(3, "box", _box_points((20.0, -0.05, -0.05), (20.1, 0.05, 0.05)))
    d = detect(tiny, FRAME, np.full((60, 80), 30.0), K, KD)
    assert d.reason == "too_small" and d.box is None
    assert detect(tiny, FRAME, np.full((60, 80), 30.0), K, KD, VisibilityConfig(min_box_fraction=0.0)).box
    # behind the camera: not seen at all, no reason
    behind = Instance(4, "box", _box_points((-5.0, -0.5, -0.3), (-4.0, 0.5, 0.2)))
    d = detect(behind, FRAME, far, K, KD)
    assert d.box is None and d.reason is None and d.visible_fraction == 0.0


# ------------------------------------------------------------------------------------------------
# End to end: answers re-derived from the written scene's ground truth
# ------------------------------------------------------------------------------------------------
def _obj(scene: Scene, name: str) -> Object3D:
    (o,) = [o for o in scene.objects if o.category == name]
    return o


def _cam_frame(cam, p) -> tuple[float, float]:  # (right, forward) in the camera's horizontal frame
    fx, fy = math.cos(cam.yaw), math.sin(cam.yaw)
    dx, dy = p[0] - cam.position[0], p[1] - cam.position[1]
    return dx * fy - dy * fx, dx * fx + dy * fy


def _needs_visibility(row: dict) -> bool:
    """Answers that depend on which frame shows an object (not only on 3D geometry)."""
    return row["question_type"] == "appearance order" or (
        row["question_type"] == "object count" and row["data_type"] == "single_image"
    )


def _shown(scene: Scene, images: list[str], stride: int) -> list[set[int]]:
    """Objects each image shows, from the synthetic renderer's id buffer (an independent visibility oracle)."""
    from spatialladder.synthetic.render import render_frame

    return [set(render_frame(scene, scene.cameras[int(Path(p).stem) // stride]).boxes) for p in images]


def _derive(row: dict, scene: Scene, stride: int) -> str:
    """The answer of a spatial row from the scene's 3D ground truth (independent of the package)."""
    q, qt = row["question"], row["question_type"]
    opts = [o.split(". ", 1)[1] for o in row["options"] or []]
    if qt == "object size":
        name = re.search(r"height\) of the (.+), measured", q).group(1)
        return str(round(max(_obj(scene, name).size) * 100))
    if qt == "room size":
        return f"{scene.room[0] * scene.room[1]:.1f}"
    if qt == "absolute distance":
        a, b = re.search(r"centres of the (.+) and the (.+) \(in meters", q).groups()
        return f"{math.dist(_obj(scene, a).center, _obj(scene, b).center):.1f}"
    if qt == "object count":
        cat = re.search(r"How many (.+)\(s\)", q).group(1)
        if "this room" in q:
            return str(sum(o.category == cat for o in scene.objects))
        (shown,) = _shown(scene, row["image"], stride)
        return str(sum(scene.objects[i].category == cat for i in shown))
    if qt == "relative distance":
        ref = re.search(r"closest to the (.+)\?", q).group(1)
        d = [math.dist(_obj(scene, ref).center, _obj(scene, c).center) for c in opts]
        order = sorted(range(len(d)), key=d.__getitem__)
        assert d[order[1]] - d[order[0]] >= 0.25, "near-tie not filtered"
        return "ABCD"[order[0]]
    if qt == "relative direction" and "standing by" in q:
        by, facing, target = re.search(
            r"standing by the (.+) and facing the (.+), is the (.+) to my", q
        ).groups()
        b, f, t = (_obj(scene, n).center for n in (by, facing, target))
        n = math.hypot(f[0] - b[0], f[1] - b[1])
        ux, uy = (f[0] - b[0]) / n, (f[1] - b[1]) / n
        x, z = (t[0] - b[0]) * uy - (t[1] - b[1]) * ux, (t[0] - b[0]) * ux + (t[1] - b[1]) * uy
        assert min(abs(x), abs(z)) >= math.hypot(x, z) * math.sin(math.radians(15)) - 1e-9, (
            "near a quadrant boundary"
        )
        ans = ("front" if z > 0 else "back") + "-" + ("right" if x > 0 else "left")
        return "ABCD"[opts.index(ans)]
    if qt == "relative direction":
        target, ref = re.search(r"is the (.+) to the (.+)'s left, right", q).groups()
        cam = scene.cameras[int(Path(row["image"][0]).stem) // stride]
        (tx, tz), (rx, rz) = (
            _cam_frame(cam, _obj(scene, target).center),
            _cam_frame(cam, _obj(scene, ref).center),
        )
        dx, dz = tx - rx, tz - rz
        assert max(abs(dx), abs(dz)) >= 1.5 * min(abs(dx), abs(dz)) - 1e-9, "near a direction boundary"
        ans = ("right" if dx > 0 else "left") if abs(dx) > abs(dz) else ("back" if dz > 0 else "front")
        return "ABCD"[opts.index(ans)]
    if qt == "appearance order":
        names = re.search(r"in the video: (.+)\?", q).group(1).split(", ")
        shown = _shown(scene, row["image"], stride)
        first = {n: min(k for k, ids in enumerate(shown) if any(scene.objects[i].category == n for i in ids))
                 for n in names}  # fmt: skip
        return "ABCD"[opts.index(", ".join(sorted(names, key=first.__getitem__)))]
    raise AssertionError(qt)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Scene]]:
    root = tmp_path_factory.mktemp("scannet")
    scenes = [
        make_scene(random.Random(f"construction-test:{i}"), f"scene00{i:02d}_00", image_size=(W, H), vary_size=False,
                   video_frames=16, num_views=8)
        for i in range(2)
    ]  # fmt: skip
    for s in scenes:
        write_scannet_scene(s, root, invalid_poses=[2], frame_stride=10)
    out = tmp_path_factory.mktemp("built")
    build_dataset(root, out, BuildConfig(seed=3, video_frames=12), progress=False)
    return root, out, scenes


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_built_dataset_is_valid_and_answers_follow_the_3d_truth(built) -> None:
    _root, out, scenes = built
    assert validate_main([str(p) for p in sorted(out.glob("spld_*.jsonl"))] + ["--media-root", str(out / "images"),
                                                                              "--no-progress"]) == 0  # fmt: skip
    by_id = {s.scene_id: s for s in scenes}
    spatial = _rows(out / "spld_spatial_data.jsonl")
    kinds = Counter((r["question_type"], r["data_type"]) for r in spatial)
    for qt in ("relative direction", "relative distance", "appearance order", "object size", "room size",
               "object count", "absolute distance"):  # fmt: skip
        assert any(k[0] == qt for k in kinds), f"no {qt} row"
    assert {k[1] for k in kinds} == {"single_image", "multi_view", "video"}
    for r in spatial:
        scene = by_id[r["image"][0].split("/")[0]]
        if _needs_visibility(r):
            continue  # derived exactly in test_visibility_answers_in_a_panning_video, where visibility is clear-cut
        assert r["answer"] == _derive(r, scene, 10), r
        if r["data_type"] == "multi_view":
            assert len(r["image"]) == 8
    # every image the rows use was linked from the scan's colour frames (frame 20 had an invalid pose)
    used = {p for r in spatial for p in r["image"]}
    assert not any(p.endswith("/20.jpg") for p in used)
    for p in used:
        sid, fname = p.split("/")
        assert (out / "images" / p).read_bytes() == (_root / sid / "color" / fname).read_bytes()
    cold = _rows(out / "spld_coldstart_data.jsonl")
    assert cold and all(
        re.fullmatch(r"<think>[^<]+</think><answer>[^<]+</answer>", c["solution"]) for c in cold
    )
    spatial_by_prompt = {
        (build_prompt(r["question"], r["options"], "thinking"), tuple(r["image"])): r for r in spatial
    }
    assert len(spatial_by_prompt) == len(spatial)  # no question asked twice on the same images
    for c in cold:  # a cold-start row is a spatial row with its thinking prompt and the same answer
        r = spatial_by_prompt[(c["prompt"], tuple(c["image"]))]
        assert (
            c["solution"].endswith(f"</think><answer>{r['answer']}</answer>")
            and c["data_type"] == r["data_type"]
        )


def test_grounding_boxes_match_projection_of_ground_truth(built) -> None:
    from spatialladder.synthetic.render import render_frame

    root, out, scenes = built
    by_id = {s.scene_id: s for s in scenes}
    rows = _rows(out / "spld_grounding_data.jsonl")
    assert rows
    exact = 0
    for r in rows:
        sid, fname = r["image"][0].split("/")
        scene = by_id[sid]
        cam = scene.cameras[int(fname[:-4]) // 10]
        seen = render_frame(scene, cam).visible_fraction  # the renderer's id buffer: an independent oracle
        for item in r["answer"]:
            # the label's instance this frame shows (its category may occur elsewhere in the room)
            cands = [i for i, o in enumerate(scene.objects) if o.category == item["label"] and seen[i] > 0]
            assert len(cands) == 1, "grounded category not unique in the frame"
            obj = scene.objects[cands[0]]
            pc = cam.world_to_camera(obj.corners())
            assert (pc[:, 2] > 0).all()
            u = cam.cx + cam.fx * pc[:, 0] / pc[:, 2]
            v = cam.cy - cam.fy * pc[:, 1] / pc[:, 2]
            whole = (max(0, math.floor(u.min())), max(0, math.floor(v.min())),
                     min(W - 1, math.ceil(u.max())), min(H - 1, math.ceil(v.max())))  # fmt: skip
            x1, y1, x2, y2 = item["bbox_2d"]
            # the visible part lies inside the whole object's projection ...
            assert whole[0] - 1 <= x1 < x2 <= whole[2] + 1 and whole[1] - 1 <= y1 < y2 <= whole[3] + 1
            # ... and an object the renderer shows unoccluded gets that box (to 1 px: the mesh is float32)
            if seen[cands[0]] > 0.999:
                assert max(abs(a - b) for a, b in zip((x1, y1, x2, y2), whole)) <= 1
                exact += 1
    assert exact >= 3


def test_stats_and_resume(built) -> None:
    root, out, _ = built
    stats = json.loads((out / "stats.json").read_text())
    md = (out / "stats.md").read_text()
    assert stats["invalid_pose_frames"] == 2 and stats["filtered"]["invalid_pose"] == 2
    assert stats["rows"]["spatial"] == len(_rows(out / "spld_spatial_data.jsonl"))
    assert "| relative direction |" in md and "| detection_occluded |" in md
    before = {p.name: p.read_bytes() for p in out.glob("spld_*.jsonl")}
    stats2, errors = build_dataset(
        root, out, BuildConfig(seed=3, video_frames=12), progress=False, validate=False
    )
    assert stats2["resumed_scenes"] == 2 and not errors
    assert {p.name: p.read_bytes() for p in out.glob("spld_*.jsonl")} == before


def test_near_tie_filter_drops_relative_distance(tmp_path: Path) -> None:
    def n_rel_dist(positions, sid):
        write_scannet_scene(_room_scene(positions, sid), tmp_path / "scans")
        out = tmp_path / sid
        build_dataset(tmp_path / "scans", out, BuildConfig(), scenes=[sid], progress=False, validate=False)
        rows = _rows(out / "spld_spatial_data.jsonl")
        return sum(r["question_type"] == "relative distance" for r in rows), json.loads(
            (out / "stats.json").read_text()
        )

    # a square: every object's two nearest neighbours are equally far -> no relative-distance question
    n, stats = n_rel_dist([(2, 2), (4, 2), (2, 4), (4, 4)], "scene0901_00")
    assert n == 0 and stats["filtered"]["relative_distance_near_tie"] > 0
    # stretched into a rectangle the nearest neighbour wins by 1 m -> questions appear
    n, stats = n_rel_dist([(2, 2.5), (4, 2.5), (2, 3.5), (4, 3.5)], "scene0902_00")
    assert n > 0


def test_visibility_answers_in_a_panning_video(tmp_path: Path) -> None:
    """A camera turning in place in 40-degree steps (50-degree field of view): each object sits at
    the centre of one frame and is far outside the others, so "first seen" and "shown in the image"
    follow from the bearings alone."""
    bearings = {"table": 0, "cabinet": 80, "chair": 120, "sofa": 160, "bookshelf": 240, "lamp": 200}
    bearings2 = {"chair": 280}
    objs = [Object3D(c, (3 + 2.2 * math.cos(math.radians(b)), 3 + 2.2 * math.sin(math.radians(b)), 0.45),
                     (0.5, 0.5, 0.9), (100, 120, 140)) for c, b in [*bearings.items(), *bearings2.items()]]  # fmt: skip
    cams = []
    for k in range(9):
        yaw = math.radians(40 * k)
        target = (3 + math.cos(yaw), 3 + math.sin(yaw), 1.5 - math.tan(math.radians(25)))
        cams.append(look_at_camera((3, 3, 1.5), target, W, H, hfov_deg=50, frame_id=k))
    scene = Scene("scene0903_00", (6.0, 6.0, 3.0), objs, cams)
    write_scannet_scene(scene, tmp_path / "scans")
    out = tmp_path / "out"
    build_dataset(tmp_path / "scans", out, BuildConfig(seed=1), progress=False)
    rows = _rows(out / "spld_spatial_data.jsonl")
    first = {c: b // 40 for c, b in bearings.items()}
    order_rows = [r for r in rows if r["question_type"] == "appearance order"]
    count_rows = [
        r for r in rows if r["question_type"] == "object count" and r["data_type"] == "single_image"
    ]
    assert order_rows and count_rows
    for r in order_rows:
        names = re.search(r"in the video: (.+)\?", r["question"]).group(1).split(", ")
        truth = ", ".join(sorted(names, key=first.__getitem__))
        assert r["options"]["ABCD".index(r["answer"])] == f"{r['answer']}. {truth}"
    for r in count_rows:  # one chair per frame at most: the image shows it, so the answer is 1
        frame = int(Path(r["image"][0]).stem) // 10
        assert 40 * frame in (120, 280) and r["answer"] == "1"
    for r in rows:
        assert r["answer"] == _derive(r, scene, 10), r


def test_balance_letters_caps_an_overused_letter() -> None:
    rows = [{"question_type": "relative direction", "data_type": "video", "options": ["A. x", "B. y", "C. z", "D. w"],
             "answer": a} for a in "A" * 10 + "B" * 2 + "C" * 2 + "D" * 2]  # fmt: skip
    filtered: Counter[str] = Counter()
    kept = balance_letters(rows, 0.15, filtered)
    # fair share 16 / 4 = 4, +15 % -> at most 5 per letter
    assert Counter(r["answer"] for r in kept) == {"A": 5, "B": 2, "C": 2, "D": 2}
    assert filtered["letter_balance"] == 5


def test_oriented_box_of_a_turned_object() -> None:
    from spatialladder.construction.scene import oriented_box

    pts = _box_points((-0.6, -0.2, 0.0), (0.6, 0.2, 0.8))  # 1.2 x 0.4 x 0.8, centred at the origin
    a = math.radians(30)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    box = oriented_box(pts @ rot.T + [2.0, 1.0, 0.0])
    assert np.allclose(box.center, (2.0, 1.0, 0.4), atol=1e-9)
    assert np.allclose(box.size, (1.2, 0.4, 0.8), atol=1e-9) and math.isclose(box.heading, a, abs_tol=1e-9)
    # the axis-aligned box of the same points would call it 1.24 m long
    assert max(np.ptp(pts @ rot.T, axis=0)[:2]) > 1.23


def test_cli_builds_good_scenes_and_names_the_broken_one(tmp_path: Path, capsys) -> None:
    from spatialladder.construction.cli import main

    for sid in ("scene0910_00", "scene0911_00"):
        write_scannet_scene(_room_scene([(2, 2.5), (4, 2.5), (2, 3.5), (4, 3.5)], sid), tmp_path / "scans")
    (tmp_path / "scans" / "scene0911_00" / "scene0911_00.aggregation.json").write_text("{}")
    out = tmp_path / "out"
    rc = main(["build", "--scannet-root", str(tmp_path / "scans"), "--out", str(out), "--max-per-type", "1",
               "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 1
    assert (
        "FAILED scene scene0911_00" in captured.err
        and "scene0911_00.aggregation.json: no segGroups" in captured.err
    )
    rows = _rows(out / "spld_spatial_data.jsonl")
    assert rows and {r["image"][0].split("/")[0] for r in rows} == {"scene0910_00"}
    per = Counter((r["question_type"], r["data_type"]) for r in rows)
    assert max(per.values()) == 1  # --max-per-type 1
