"""Turn scanned scenes into SpatialLadder-26k files.

Per scene (:func:`build_scene`):

1. pick frames from the valid part of the sequence: ``video_frames`` evenly spaced frames (the
   video rows' frame list) and ``num_views`` frames offset half a step from them (the multi-view
   rows' 8 views); every picked frame is also a single-image context;
2. detect every instance in every picked frame (:mod:`.project`: projection, depth test,
   truncation / occlusion / size filters);
3. ask questions with the synthetic generator's question machinery: the scan becomes a box scene
   (:class:`spatialladder.synthetic.Scene`, objects at their oriented boxes' centres and extents,
   one camera per picked frame) and the detections become the frames' visibility, so
   :func:`spatialladder.synthetic.generate.scene_samples` applies the same templates, ground-truth
   definitions and ambiguity filters (distance near-ties, directions near a quadrant boundary,
   counts with half-visible instances) to real scans as to synthetic rooms;
4. grounding rows from the single-image frames, naming only categories unique in the frame (no
   other instance of the category has a visible point there).

Then (:func:`build_dataset`) the scenes' rows are assembled, answer letters balanced, question
ids assigned, the three files, ``stats.json`` and ``stats.md`` written and the files validated.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatialladder.construction.project import Detection, VisibilityConfig, detect, read_depth_m
from spatialladder.construction.scene import Frame, ScanScene
from spatialladder.prompts import build_prompt
from spatialladder.synthetic.generate import COLDSTART_FILE, GROUNDING_FILE, SPATIAL_FILE, scene_samples
from spatialladder.synthetic.questions import (
    LETTERS,
    MCQ_TYPES,
    MIN_DISTANCE_GAP,
    Sample,
    camera_relative_direction,
    center_distance,
    grounding_question,
    standing_relative_direction,
)
from spatialladder.synthetic.render import RenderedFrame
from spatialladder.synthetic.scene import MULTI_VIEW, VIDEO, Camera, Object3D, Scene

IMAGES_DIR = "images"
PARTS_DIR = ".scenes"  # one finished scene per file: what a rerun resumes from
STATS_JSON, STATS_MD = "stats.json", "stats.md"
BUILD_VERSION = 1


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    video_frames: int = 16
    num_views: int = 8
    single_image_per_frame: int = 2
    max_per_type: int | None = None  # per scene, question type and data type
    coldstart_fraction: float = 0.5
    min_object_extent: float = 0.05  # metres; smaller instances are never named
    letter_tolerance: float = 0.15  # a letter may exceed its fair share by this fraction
    max_grounding_objects: int = 3
    visibility: VisibilityConfig = field(default_factory=VisibilityConfig)

    def fingerprint(self) -> str:
        blob = json.dumps({"version": BUILD_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Frames and the box-scene view of a scan
# ------------------------------------------------------------------------------------------------
def pick_frames(n: int, video_frames: int, num_views: int) -> tuple[list[int], list[int]]:
    """Indices into a sequence of ``n`` valid frames: the video's (evenly spaced, first and last
    included) and the views' (evenly spaced, offset half a step, each moved to the nearest frame
    the video does not use, so no frame is a single-image context twice); no views when fewer
    than ``num_views`` frames are left."""
    if n < 2:
        return [], []
    video = sorted({round(i * (n - 1) / max(1, video_frames - 1)) for i in range(video_frames)})
    free = sorted(set(range(n)) - set(video))
    if len(free) < num_views:
        return video, []
    views: list[int] = []
    for j in range(num_views):
        target = (j + 0.5) * n / num_views
        best = min((i for i in free if i not in views), key=lambda i: (abs(i - target), i))
        views.append(best)
    return video, sorted(views)


def to_camera(frame: Frame, scan: ScanScene, group: str) -> Camera:
    """The question generator's camera for a frame: position, heading and pitch of its optical axis."""
    yaw, pitch = frame.yaw_pitch()
    k = scan.color_intrinsics
    return Camera(
        frame.position, yaw, pitch, k.fx, k.fy, k.width, k.height, frame_id=frame.frame_id, group=group
    )


def to_box_scene(
    scan: ScanScene, video: Sequence[Frame], views: Sequence[Frame], named: Sequence[int]
) -> Scene:
    """The scan as the question generator's scene: instances ``named`` (indices into
    ``scan.instances``, in that order) as boxes with their oriented boxes' centres and extents
    (``Object3D.size`` then holds the extents along the box's own axes), the scan's extent as the room."""
    objects = [Object3D(scan.instances[i].category, scan.instances[i].center, scan.instances[i].size, (128, 128, 128))
               for i in named]  # fmt: skip
    cams = [to_camera(f, scan, VIDEO) for f in video] + [to_camera(f, scan, MULTI_VIEW) for f in views]
    return Scene(scan.scene_id, scan.room_size, objects, cams)


# ------------------------------------------------------------------------------------------------
# Rows
# ------------------------------------------------------------------------------------------------
def spatial_row(s: Sample, question_id: int) -> dict[str, Any]:
    return {
        "question_id": question_id, "question": s.question, "options": s.options, "answer": s.answer,
        "image": list(s.images), "question_type": s.question_type, "data_type": s.data_type,
    }  # fmt: skip


def coldstart_row(s: Sample, question_id: int) -> dict[str, Any]:
    return {
        "question_id": question_id,
        "prompt": build_prompt(s.question, s.options, "thinking"),
        "solution": f"<think>{s.think}</think><answer>{s.answer}</answer>",
        "image": list(s.images),
        "data_type": s.data_type,
    }


def grounding_row(
    scene: Scene, frame_id: int, dets: dict[int, Detection], category: Callable[[int], str], rng: random.Random,
    max_objects: int, filtered: Counter[str],
) -> dict[str, Any] | None:  # fmt: skip
    """Boxes of 1..``max_objects`` kept detections whose category no other instance shares in this
    frame (any visible point counts), or None when there is none."""
    seen = Counter(category(i) for i, d in dets.items() if d.visible_fraction > 0)
    kept = sorted(i for i, d in dets.items() if d.box is not None)
    ok = [i for i in kept if seen[category(i)] == 1]
    filtered["grounding_category_not_unique_in_frame"] += len(kept) - len(ok)
    if not ok:
        return None
    chosen = rng.sample(ok, rng.randint(1, min(max_objects, len(ok))))
    return {
        "question_id": -1,
        "question": grounding_question([category(i) for i in chosen]),
        "answer": [{"bbox_2d": list(dets[i].box), "label": category(i)} for i in chosen],  # type: ignore[arg-type]
        "image": [f"{scene.scene_id}/{frame_id}.jpg"],
        "data_type": "single_image",
    }


def ambiguity_census(scene: Scene, frames: dict[int, RenderedFrame], filtered: Counter[str]) -> None:
    """Count the candidates each question filter rejects in this scene's contexts (for stats.md):
    object pairs whose camera direction is near a boundary, (by, facing, target) triples near a
    quadrant boundary, references whose two nearest objects are a near-tie, pairs too close for a
    distance question, objects sharing their first video frame with another."""
    unique = set(scene.unique_object_ids())
    objs = scene.objects
    video = scene.video_cameras
    contexts: list[tuple[Camera | None, set[int]]] = [
        (c, {i for i in frames[c.frame_id].boxes if i in unique}) for c in scene.cameras
    ]
    if scene.view_cameras:
        views = scene.view_cameras
        contexts.append((views[0], {i for c in views for i in frames[c.frame_id].boxes if i in unique}))
    first_seen: dict[int, int] = {}
    for k, c in enumerate(video):
        for i in frames[c.frame_id].boxes:
            first_seen.setdefault(i, k)
    video_named = {i for i in first_seen if i in unique}
    contexts.append((None, video_named))
    for cam, named in contexts:
        for a, b in itertools.combinations(sorted(named), 2):
            if center_distance(objs[a], objs[b]) < 0.5:
                filtered["absolute_distance_too_close"] += 1
            if cam is not None and camera_relative_direction(cam, objs[a], objs[b]) is None:
                filtered["relative_direction_near_boundary"] += 1
        if cam is None:
            for b, f, t in itertools.permutations(sorted(named), 3):
                if standing_relative_direction(objs[b], objs[f], objs[t]) is None:
                    filtered["relative_direction_near_quadrant_boundary"] += 1
        for r in named:
            d = sorted(center_distance(objs[r], objs[c]) for c in named if c != r)
            if len(d) >= 3 and d[1] - d[0] < MIN_DISTANCE_GAP:
                filtered["relative_distance_near_tie"] += 1
    by_frame = Counter(first_seen[i] for i in video_named)
    filtered["appearance_order_shared_first_frame"] += sum(n for n in by_frame.values() if n > 1)


def _cap(samples: list[Sample], n: int | None, rng: random.Random, filtered: Counter[str]) -> list[Sample]:
    """At most ``n`` samples per (question type, data type); multiple-choice ones taken round-robin
    over answer letters so the cap does not skew them."""
    if n is None:
        return samples
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.question_type, s.data_type), []).append(s)
    keep: set[int] = set()
    for (qtype, _), group in groups.items():
        if qtype in MCQ_TYPES:
            by_letter: dict[str, list[Sample]] = {}
            for s in group:
                by_letter.setdefault(s.answer, []).append(s)
            letters = sorted(by_letter)
            rng.shuffle(letters)
            order = [s for tier in itertools.zip_longest(*(by_letter[x] for x in letters)) for s in tier if s]
        else:
            order = list(group)
            rng.shuffle(order)
        keep.update(id(s) for s in order[:n])
        filtered["max_per_type"] += max(0, len(group) - n)
    return [s for s in samples if id(s) in keep]


# ------------------------------------------------------------------------------------------------
# One scene
# ------------------------------------------------------------------------------------------------
def build_scene(scan: ScanScene, cfg: BuildConfig) -> dict[str, Any]:
    """Rows and statistics of one scene; JSON-ready (``grounding``, ``samples``, ``frames``, ``stats``)."""
    filtered: Counter[str] = Counter()
    filtered["invalid_pose"] += len(scan.invalid_pose_frames)
    for reason, n in scan.skipped_labels.items():
        filtered[f"instance_{reason}"] += n
    named = [i for i, inst in enumerate(scan.instances) if max(inst.size) >= cfg.min_object_extent]
    filtered["instance_too_small_3d"] += len(scan.instances) - len(named)
    vi, wi = pick_frames(len(scan.frames), cfg.video_frames, cfg.num_views)
    video = [scan.frames[i] for i in vi]
    views = [scan.frames[i] for i in wi]
    scene = to_box_scene(scan, video, views, named)

    dets: dict[int, dict[int, Detection]] = {}
    for f in sorted({f.frame_id: f for f in [*video, *views]}.values(), key=lambda f: f.frame_id):
        depth = read_depth_m(f)
        dets[f.frame_id] = {
            k: detect(
                scan.instances[i], f, depth, scan.color_intrinsics, scan.depth_intrinsics, cfg.visibility
            )
            for k, i in enumerate(named)
        }
        for d in dets[f.frame_id].values():
            if d.reason:
                filtered[f"detection_{d.reason}"] += 1
    frames = {
        fid: RenderedFrame(None, {k: d.box for k, d in ds.items() if d.box is not None},  # type: ignore[arg-type]
                           {k: d.visible_fraction for k, d in ds.items()})
        for fid, ds in dets.items()
    }  # fmt: skip

    _, samples = scene_samples(scene, frames, cfg.seed, single_image_per_frame=cfg.single_image_per_frame)
    rng = random.Random(f"spatialladder-construction:{cfg.seed}:{scan.scene_id}")
    samples = _cap(samples, cfg.max_per_type, rng, filtered)
    ambiguity_census(scene, frames, filtered)
    grounding = []
    for fid in sorted(dets):
        row = grounding_row(scene, fid, dets[fid], lambda k: scene.objects[k].category, rng,
                            cfg.max_grounding_objects, filtered)  # fmt: skip
        if row is not None:
            grounding.append(row)
    return {
        "scene_id": scan.scene_id,
        "frames": sorted(dets),
        "grounding": grounding,
        "samples": [{**asdict(s), "coldstart": rng.random() < cfg.coldstart_fraction} for s in samples],
        "stats": {
            "valid_frames": len(scan.frames),
            "invalid_pose_frames": scan.invalid_pose_frames,
            "instances": len(scan.instances),
            "named_instances": len(named),
            "filtered": dict(filtered),
        },  # fmt: skip
    }


# ------------------------------------------------------------------------------------------------
# Dataset
# ------------------------------------------------------------------------------------------------
def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def balance_letters(
    rows: list[dict[str, Any]], tolerance: float, filtered: Counter[str]
) -> list[dict[str, Any]]:
    """Drop multiple-choice rows whose answer letter exceeds its fair share by more than
    ``tolerance`` within (question type, data type, number of options); rows keep their order."""
    groups: dict[tuple[str, str, int], list[int]] = {}
    for k, r in enumerate(rows):
        if r["question_type"] in MCQ_TYPES:
            groups.setdefault((r["question_type"], r["data_type"], len(r["options"])), []).append(k)
    drop: set[int] = set()
    for (_, _, n_opt), idx in groups.items():
        cap = math.ceil(len(idx) / n_opt * (1 + tolerance))
        used: Counter[str] = Counter()
        for k in idx:
            used[rows[k]["answer"]] += 1
            if used[rows[k]["answer"]] > cap:
                drop.add(k)
    filtered["letter_balance"] += len(drop)
    return [r for k, r in enumerate(rows) if k not in drop]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def assemble(out: Path, parts: list[dict[str, Any]], cfg: BuildConfig) -> dict[str, Any]:
    """Write the three jsonl files, stats.json and stats.md from finished scene parts."""
    filtered: Counter[str] = Counter()
    for p in parts:
        filtered.update(p["stats"]["filtered"])
    grounding = [dict(r, question_id=q) for q, r in enumerate(r for p in parts for r in p["grounding"])]
    samples = [s for p in parts for s in p["samples"]]
    rows = [dict(spatial_row(Sample(**{k: v for k, v in s.items() if k != "coldstart"}), 0), _cold=s["coldstart"],
                 _think=s["think"]) for s in samples]  # fmt: skip
    rows = balance_letters(rows, cfg.letter_tolerance, filtered)
    spatial, cold = [], []
    for q, r in enumerate(rows):
        think, is_cold = r.pop("_think"), r.pop("_cold")
        r["question_id"] = q
        spatial.append(r)
        if is_cold:
            s = Sample(
                r["question"],
                r["options"],
                r["answer"],
                r["image"],
                r["question_type"],
                r["data_type"],
                think,
            )
            cold.append(coldstart_row(s, len(cold)))
    _write_jsonl(out / GROUNDING_FILE, grounding)
    _write_jsonl(out / SPATIAL_FILE, spatial)
    _write_jsonl(out / COLDSTART_FILE, cold)
    stats = dataset_stats(parts, grounding, spatial, cold, filtered)
    (out / STATS_JSON).write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (out / STATS_MD).write_text(stats_markdown(stats), encoding="utf-8")
    return stats


def dataset_stats(
    parts: list[dict[str, Any]],
    grounding: list[dict],
    spatial: list[dict],
    cold: list[dict],
    filtered: Counter[str],
) -> dict[str, Any]:
    letters: dict[str, dict[str, int]] = {}
    for r in spatial:
        if r["question_type"] in MCQ_TYPES:
            letters.setdefault(r["question_type"], {}).setdefault(r["answer"], 0)
            letters[r["question_type"]][r["answer"]] += 1
    per_type: dict[str, dict[str, int]] = {}
    for r in spatial:
        per_type.setdefault(r["question_type"], {}).setdefault(r["data_type"], 0)
        per_type[r["question_type"]][r["data_type"]] += 1
    return {
        "scenes": [p["scene_id"] for p in parts],
        "valid_frames": sum(p["stats"]["valid_frames"] for p in parts),
        "invalid_pose_frames": sum(len(p["stats"]["invalid_pose_frames"]) for p in parts),
        "frames_used": sum(len(p["frames"]) for p in parts),
        "instances": sum(p["stats"]["instances"] for p in parts),
        "rows": {"grounding": len(grounding), "spatial": len(spatial), "coldstart": len(cold)},
        "spatial_by_data_type": dict(Counter(r["data_type"] for r in spatial)),
        "spatial_by_type": per_type,
        "coldstart_by_data_type": dict(Counter(r["data_type"] for r in cold)),
        "answer_letters": {q: dict(sorted(v.items())) for q, v in letters.items()},
        "filtered": dict(sorted(filtered.items())),
    }


def stats_markdown(stats: dict[str, Any]) -> str:
    dts = ("single_image", "multi_view", "video")
    lines = [
        "# Constructed dataset", "",
        f"Scenes: {len(stats['scenes'])}; valid frames: {stats['valid_frames']}; frames skipped for an invalid "
        f"pose: {stats['invalid_pose_frames']}; frames used: {stats['frames_used']}; instances: {stats['instances']}.", "",
        "| file | rows |", "|---|---:|",
        *(f"| {k} | {v} |" for k, v in stats["rows"].items()), "",
        "## Spatial rows per question type and data type", "",
        "| question type | " + " | ".join(dts) + " | total |", "|---|" + "---:|" * (len(dts) + 1),
    ]  # fmt: skip
    for q, by in sorted(stats["spatial_by_type"].items()):
        lines.append(f"| {q} | " + " | ".join(str(by.get(d, 0)) for d in dts) + f" | {sum(by.values())} |")
    lines += ["", "## Answer letters (multiple choice)", "", "| question type | " + " | ".join(LETTERS[:4]) + " |",
              "|---|" + "---:|" * 4]  # fmt: skip
    for q, by in sorted(stats["answer_letters"].items()):
        lines.append(f"| {q} | " + " | ".join(str(by.get(x, 0)) for x in LETTERS[:4]) + " |")
    lines += ["", "## Filtered (count per reason)", "", "| reason | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in stats["filtered"].items()]
    return "\n".join(lines) + "\n"


def scene_part_path(out: Path, scene_id: str) -> Path:
    return out / PARTS_DIR / f"{scene_id}.json"


def load_part(out: Path, scene_id: str, cfg: BuildConfig) -> dict[str, Any] | None:
    """A finished scene's part when it was built with the same settings and its images are there."""
    path = scene_part_path(out, scene_id)
    if not path.is_file():
        return None
    try:
        part = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if part.get("fingerprint") != cfg.fingerprint():
        return None
    if not all((out / IMAGES_DIR / scene_id / f"{fid}.jpg").is_file() for fid in part["frames"]):
        return None
    return part


def build_and_save_scene(scan: ScanScene, out: Path, cfg: BuildConfig) -> dict[str, Any]:
    """Build one scene, link its frames under ``out/images/<scene>/`` and save its part (last, atomically)."""
    part = build_scene(scan, cfg)
    colour = {f.frame_id: f.color_path for f in scan.frames}
    for fid in part["frames"]:
        link_or_copy(colour[fid], out / IMAGES_DIR / scan.scene_id / f"{fid}.jpg")
    part["fingerprint"] = cfg.fingerprint()
    path = scene_part_path(out, scan.scene_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(part, default=_json_default), encoding="utf-8")
    tmp.replace(path)
    return part


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
