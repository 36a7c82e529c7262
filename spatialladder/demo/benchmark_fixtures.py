"""Miniature copies of every registered evaluation benchmark, in their real file layouts and column names.

    make_fixtures(OUT_DIR, seed=0, per_type=2)  ->  {benchmark: folder}

Layout under ``OUT_DIR`` (one shared ``--data-root``)::

    VSI-Bench/test-00000-of-00001.parquet            + <dataset>/<scene_name>.mp4 (several questions per video)
    SPBench/SPBench-SI.parquet, SPBench-MV.parquet   + images/<scene_name>/<frame>.jpg
    CV-Bench/test_2d.parquet, test_3d.parquet        (images embedded as {"bytes", "path"})
    SPAR-Bench/data/test-00000-of-00001.parquet      (a list of embedded images per row)
    ViewSpatial-Bench/ViewSpatial-Bench.json         + scannetv2_val/<scene>/original_images/<n>.jpg, val2017/<id>.jpg
    VSI-Bench/test_debiased.parquet, test_pruned.parquet   (VSI-Bench-Debiased: VSI-Bench's rows + pruned)
    MMSI-Bench/MMSI_Bench.parquet                    (2+ embedded JPEGs per row, a list of bytes)
    MindCube/data/raw/MindCube_tinybench.jsonl       + data/other_all_image/{among,around,rotation}/...

Every question type of every benchmark (MindCube-Tiny: every setting of the tiny set) appears
``per_type`` times; VSI-Bench-Debiased keeps half of VSI-Bench's rows of each type, as its
``create_pq.py`` prunes them. Scenes are the procedural rooms of :mod:`spatialladder.synthetic`, so
counts, sizes, distances, room areas, depths and appearance orders are the scene's true values; the
remaining multiple-choice answers (routes, view orientation, MMSI-Bench and MindCube answers, ...)
are drawn at random: the fixtures exercise loading, media, prompting, generation and scoring, not
model skill. Deterministic for a seed (tables and json byte-identical; images identical).
"""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path
from typing import Any

from PIL import Image

from spatialladder.evaluation.benchmarks.mindcube import TINY_SETTINGS as MINDCUBE_SETTINGS
from spatialladder.evaluation.scoring import QUESTION_TYPES, SPAR_LEVELS
from spatialladder.synthetic import make_scene, render_frame, write_mp4
from spatialladder.synthetic.questions import center_distance, lettered, standing_frame
from spatialladder.synthetic.scene import Object3D, Scene

__all__ = ["make_fixtures"]

LETTERS = "ABCDEFGH"
VSI_DATASETS = ("arkitscenes", "scannet", "scannetpp")


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------
def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _write_parquet(path: Path, rows: list[dict[str, Any]], schema: Any) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def _uniques(scene: Scene) -> list[Object3D]:
    counts = scene.category_counts()
    return [o for o in scene.objects if counts[o.category] == 1]


def _countable(scene: Scene) -> tuple[str, int]:
    counts = scene.category_counts()
    cat = max(counts, key=lambda c: (counts[c], c))
    return cat, counts[cat]


def _mcq(rng: random.Random, correct: str, distractors: list[str]) -> tuple[list[str], str]:
    opts = [correct, *[d for d in dict.fromkeys(distractors) if d != correct]]
    rng.shuffle(opts)
    return lettered(opts), LETTERS[opts.index(correct)]


def _random_mcq(rng: random.Random, choices: list[str], k: int = 4) -> tuple[list[str], str]:
    picked = rng.sample(choices, min(k, len(choices)))
    return _mcq(rng, picked[0], picked[1:])


def _direction(by: Object3D, facing: Object3D, target: Object3D, level: str) -> str:
    rf = standing_frame(by, facing, target) or (1.0, 1.0)
    x, z = rf
    side = "right" if x > 0 else "left"
    if level == "easy":
        return side
    if level == "medium":
        return "back" if z < 0 and abs(z) > abs(x) else side
    return ("front" if z > 0 else "back") + "-" + side


def _scene(rng: random.Random, scene_id: str, image_size: tuple[int, int], video_frames: int, views: int) -> Scene:
    return make_scene(rng, scene_id, image_size=image_size, video_frames=video_frames, num_views=views,
                      vary_size=False)  # fmt: skip


def _numeric_question(qtype: str, scene: Scene, rng: random.Random) -> tuple[str, str]:
    """(question, ground truth) for the VSI/SPBench numeric types, from the scene's geometry."""
    uniq = _uniques(scene)
    if qtype == "object_counting":
        cat, n = _countable(scene)
        return f"How many {cat}(s) are in this room?", str(n)
    if qtype == "object_abs_distance":
        a, b = rng.sample(uniq, 2)
        d = center_distance(a, b)
        return (
            f"Measuring from the closest point of each object, what is the direct distance between the "
            f"{a.category} and the {b.category} (in meters)?",
            f"{d:.1f}",
        )
    if qtype == "object_size_estimation":
        a = rng.choice(uniq)
        return (
            f"What is the length of the longest dimension (length, width, or height) of the {a.category}, "
            "measured in centimeters?",
            str(int(round(max(a.size) * 100))),
        )
    if qtype == "room_size_estimation":
        return (
            "What is the size of this room (in square meters)? If multiple rooms are shown, estimate the "
            "size of the combined space.",
            f"{scene.floor_area():.2f}",
        )
    raise ValueError(qtype)


def _choice_question(qtype: str, scene: Scene, rng: random.Random, first_seen: dict[int, int] | None = None) -> tuple[str, list[str], str]:
    """(question, options, letter) for the VSI/SPBench multiple-choice types."""
    uniq = _uniques(scene)
    if qtype == "object_rel_distance":
        ref, *cands = rng.sample(uniq, min(5, len(uniq)))
        nearest = min(cands, key=lambda o: center_distance(ref, o))
        opts, letter = _mcq(rng, nearest.category, [c.category for c in cands if c is not nearest])
        names = ", ".join(c.category for c in cands)
        return (f"Measuring from the closest point of each object, which of these objects ({names}) is the "
                f"closest to the {ref.category}?", opts, letter)  # fmt: skip
    if qtype.startswith("object_rel_direction"):
        level = qtype.rsplit("_", 1)[-1] if qtype != "object_rel_direction" else rng.choice(["easy", "hard"])
        by, facing, target = rng.sample(uniq, 3)
        answer = _direction(by, facing, target, level)
        pool = {"easy": ["left", "right"], "medium": ["left", "right", "back"],
                "hard": ["front-left", "front-right", "back-left", "back-right"]}[level]  # fmt: skip
        opts, letter = _mcq(rng, answer, pool)
        return (f"If I am standing by the {by.category} and facing the {facing.category}, is the "
                f"{target.category} to my {' or '.join(pool)}?", opts, letter)  # fmt: skip
    if qtype == "route_planning":
        a, b, c = rng.sample(uniq, 3)
        routes = ["Turn Left, Turn Right", "Turn Right, Turn Left", "Go forward, Turn Left", "Turn Back, Turn Right"]
        opts, letter = _random_mcq(rng, routes)
        return (f"You are a robot beginning at the {a.category} facing the {b.category}. You want to navigate "
                f"to the {c.category}. You will perform the following actions: 1. Go forward until the "
                f"{b.category} 2. [please fill in] 3. Go forward until the {c.category}. Which actions fill "
                "in the blank?", opts, letter)  # fmt: skip
    if qtype == "obj_appearance_order":
        seen = first_seen or {}
        ids = [i for i, o in enumerate(scene.objects) if o in uniq and i in seen]
        ids = ids if len(ids) >= 4 else [i for i, o in enumerate(scene.objects) if o in uniq]
        chosen = rng.sample(ids, 4)
        order = sorted(chosen, key=lambda i: (seen.get(i, 10**6), i))
        correct = ", ".join(scene.objects[i].category for i in order)
        distractors = []
        for _ in range(6):
            perm = order[:]
            rng.shuffle(perm)
            distractors.append(", ".join(scene.objects[i].category for i in perm))
        opts, letter = _mcq(rng, correct, distractors[:3] or [correct])
        names = ", ".join(scene.objects[i].category for i in chosen)
        return (f"What will be the first-time appearance order of the following categories in the video: "
                f"{names}?", opts[:4], letter)  # fmt: skip
    raise ValueError(qtype)


# ------------------------------------------------------------------------------------------------
# Benchmarks
# ------------------------------------------------------------------------------------------------
def _vsi(root: Path, rng: random.Random, per_type: int, size: tuple[int, int], video_frames: int, fps: int) -> Path:
    import pyarrow as pa

    out = root / "VSI-Bench"
    types = list(QUESTION_TYPES["VSI-Bench"])
    n_videos = max(2, math.ceil(len(types) * per_type / 5))  # about 5 questions per video
    videos = []
    for v in range(n_videos):
        dataset = VSI_DATASETS[v % len(VSI_DATASETS)]
        scene_name = {"arkitscenes": f"{41069000 + v}", "scannet": f"scene{v:04d}_00",
                      "scannetpp": f"{rng.getrandbits(40):010x}"}[dataset]  # fmt: skip
        scene = _scene(rng, scene_name, size, video_frames, 1)
        rendered = [render_frame(scene, cam) for cam in scene.video_cameras]
        first_seen: dict[int, int] = {}
        for k, fr in enumerate(rendered):
            for i in fr.boxes:
                first_seen.setdefault(i, k)
        write_mp4([fr.image for fr in rendered], out / dataset / f"{scene_name}.mp4", fps=fps)
        videos.append((dataset, scene_name, scene, first_seen))
    rows = []
    slots = [t for t in types for _ in range(per_type)]
    for k, qtype in enumerate(slots):
        dataset, scene_name, scene, first_seen = videos[k % len(videos)]
        if qtype in ("object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation"):
            q, gt = _numeric_question(qtype, scene, rng)
            options = None
        else:
            q, options, gt = _choice_question(qtype, scene, rng, first_seen)
        rows.append({"id": k, "dataset": dataset, "scene_name": scene_name, "question_type": qtype,
                     "question": q, "options": options, "ground_truth": gt})  # fmt: skip
    rows.sort(key=lambda r: (r["dataset"], r["scene_name"], r["id"]))  # real file: grouped by scene
    schema = pa.schema([("id", pa.int64()), ("dataset", pa.string()), ("scene_name", pa.string()),
                        ("question_type", pa.string()), ("question", pa.string()),
                        ("options", pa.list_(pa.string())), ("ground_truth", pa.string())])  # fmt: skip
    _write_parquet(out / "test-00000-of-00001.parquet", rows, schema)
    return out


def _spbench(root: Path, rng: random.Random, per_type: int, size: tuple[int, int]) -> Path:
    import pyarrow as pa

    out = root / "SPBench"
    schema = pa.schema([("id", pa.int64()), ("dataset", pa.string()), ("scene_name", pa.string()),
                        ("question_type", pa.string()), ("question", pa.string()),
                        ("options", pa.list_(pa.string())), ("ground_truth", pa.string()),
                        ("images", pa.list_(pa.string()))])  # fmt: skip
    for split, n_views in (("SPBench-SI", 1), ("SPBench-MV", 3)):
        rows = []
        slots = [t for t in QUESTION_TYPES[split] for _ in range(per_type)]
        for k, qtype in enumerate(slots):
            scene_name = f"scene{700 + k:04d}_0{0 if split.endswith('SI') else 1}"
            scene = _scene(rng, scene_name, size, 2, n_views)
            frames = []
            for cam in scene.view_cameras:
                name = f"{cam.frame_id * 20:05d}.jpg"
                path = out / "images" / scene_name / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_jpeg(render_frame(scene, cam).image))
                frames.append(name)
            if qtype in ("object_counting", "object_abs_distance", "object_size_estimation"):
                q, gt = _numeric_question(qtype, scene, rng)
                options = None
            else:
                q, options, gt = _choice_question(qtype, scene, rng)
            rows.append({"id": k, "dataset": "scannet", "scene_name": scene_name, "question_type": qtype,
                         "question": q, "options": options, "ground_truth": gt, "images": frames})  # fmt: skip
        _write_parquet(out / f"{split}.parquet", rows, schema)
    return out


def _cvbench(root: Path, rng: random.Random, per_type: int, size: tuple[int, int]) -> Path:
    import pyarrow as pa

    out = root / "CV-Bench"
    image_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("idx", pa.int64()), ("type", pa.string()), ("task", pa.string()), ("image", image_t),
                        ("question", pa.string()), ("choices", pa.list_(pa.string())), ("answer", pa.string()),
                        ("prompt", pa.string()), ("source", pa.string())])  # fmt: skip
    plan = {"2D": [("Count", "ADE20K"), ("Count", "COCO"), ("Relation", "ADE20K"), ("Relation", "COCO")],
            "3D": [("Depth", "Omni3D"), ("Distance", "Omni3D")]}  # fmt: skip
    for dim, combos in plan.items():
        rows = []
        for task, source in [c for c in combos for _ in range(per_type)]:
            scene = _scene(rng, f"cv{len(rows)}", size, 2, 1)
            cam = scene.view_cameras[0]
            fr = render_frame(scene, cam)
            uniq = _uniques(scene)
            if task == "Count":
                cat, n = _countable(scene)
                vis = sum(1 for i, o in enumerate(scene.objects) if o.category == cat and i in fr.boxes)
                choices = [str(x) for x in sorted({vis, vis + 1, max(0, vis - 1), vis + 2})]
                q, correct = f"How many {cat}s are in the image?", str(vis)
            elif task == "Relation":
                a, b = rng.sample(uniq, 2)
                choices = ["left", "right"]
                dx = (cam.world_to_camera([a.center])[0, 0] - cam.world_to_camera([b.center])[0, 0])
                q = (f"Considering the relative positions of the {a.category} and the {b.category} in the image "
                     f"provided, where is the {a.category} located with respect to the {b.category}?")  # fmt: skip
                correct = "right" if dx > 0 else "left"
            else:
                a, b, c = rng.sample(uniq, 3)
                if task == "Depth":
                    za = cam.world_to_camera([a.center])[0, 2]
                    zb = cam.world_to_camera([b.center])[0, 2]
                    choices = [a.category, b.category]
                    q = (f"Which object is closer to the camera taking this photo, the {a.category} (highlighted "
                         f"by a red box) or the {b.category} (highlighted by a blue box)?")  # fmt: skip
                    correct = a.category if za < zb else b.category
                else:
                    choices = [a.category, b.category]
                    q = (f"Which object is closer to the {c.category} (highlighted by a green box), the "
                         f"{a.category} (highlighted by a red box) or the {b.category} (highlighted by a blue box)?")  # fmt: skip
                    correct = a.category if center_distance(a, c) < center_distance(b, c) else b.category
            letter = LETTERS[choices.index(correct)]
            prompt = q + " Select from the following choices.\n" + "\n".join(
                f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)
            )
            idx = len(rows)
            rows.append({"idx": idx, "type": dim, "task": task,
                         "image": {"bytes": _png(fr.image), "path": f"img/{dim.lower()}/{task.lower()}/{idx:06d}.png"},
                         "question": q, "choices": choices, "answer": f"({letter})", "prompt": prompt,
                         "source": source})  # fmt: skip
        _write_parquet(out / f"test_{dim.lower()}.parquet", rows, schema)
    return out


def _spar(root: Path, rng: random.Random, per_type: int, size: tuple[int, int]) -> Path:
    import pyarrow as pa

    out = root / "SPAR-Bench"
    image_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("id", pa.string()), ("img_type", pa.string()), ("format_type", pa.string()),
                        ("task", pa.string()), ("source", pa.string()), ("image", pa.list_(image_t)),
                        ("question", pa.string()), ("answer", pa.string())])  # fmt: skip
    numeric = set(SPAR_LEVELS["Low"])
    rows = []
    for task in [t for t in QUESTION_TYPES["SPAR-Bench"] for _ in range(per_type)]:
        multi = task.endswith("_mv") or task in ("position_matching", "camera_motion_infer", "view_change_infer")
        n_views = rng.randint(3, 5) if multi else 1
        scene = _scene(rng, f"spar{len(rows)}", size, 2, n_views)
        images = [{"bytes": _jpeg(render_frame(scene, cam).image), "path": f"{scene.scene_id}_{cam.frame_id}.jpg"}
                  for cam in scene.view_cameras]  # fmt: skip
        a, b = rng.sample(_uniques(scene), 2)
        cam = scene.view_cameras[0]
        if task in numeric:
            what = "depth" if task.startswith("depth") else "distance"
            if what == "depth":
                value = cam.world_to_camera([a.center])[0, 2]
                q = f"What is the depth of the {a.category} (the distance from the camera along its viewing direction), in meters?"
            else:
                value = center_distance(a, b)
                q = f"How far apart are the centers of the {a.category} and the {b.category}, in meters?"
            answer, fmt = f"{max(value, 0.0):.2f}", "fill"
        elif task == "view_change_infer":
            q = ("How should the camera move from the first view to reach the last view? Answer as comma-"
                 "separated action:value pairs, e.g. move_right:0.5,rotate_left:30.")  # fmt: skip
            answer = f"move_right:{rng.uniform(0.1, 1.5):.1f},rotate_left:{rng.randint(5, 60)}"
            fmt = "fill"
        else:
            pool = ["left", "right", "front", "behind", "above", "below"]
            options, answer = _random_mcq(rng, pool)
            q = f"Where is the {a.category} relative to the {b.category}?\n" + "\n".join(options)
            fmt = "select"
        rows.append({"id": f"{task}_{len(rows):04d}", "img_type": "multi_view" if multi else "single_view",
                     "format_type": fmt, "task": task, "source": "scannet", "image": images, "question": q,
                     "answer": answer})  # fmt: skip
    _write_parquet(out / "data" / "test-00000-of-00001.parquet", rows, schema)
    return out


def _viewspatial(root: Path, rng: random.Random, per_type: int, size: tuple[int, int]) -> Path:
    out = root / "ViewSpatial-Bench"
    items = []
    directions = ["left", "right", "front", "back", "front-left", "front-right", "back-left", "back-right",
                  "above", "down"]  # fmt: skip
    for qtype in [t for t in QUESTION_TYPES["ViewSpatial-Bench"] for _ in range(per_type)]:
        simulation = "Scene Simulation" in qtype
        coco = "Object View Orientation" in qtype
        scene = _scene(rng, f"scene{800 + len(items):04d}_00", size, 2, rng.randint(3, 5) if simulation else 1)
        paths = []
        for cam in scene.view_cameras:
            if coco:
                rel = f"val2017/{rng.randint(1, 581929):012d}.jpg"
            else:
                rel = f"scannetv2_val/{scene.scene_id}/original_images/{cam.frame_id * 20}.jpg"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(_jpeg(render_frame(scene, cam).image))
            paths.append(f"ViewSpatial-Bench/{rel}")
        a, b = rng.sample(_uniques(scene), 2)
        options, letter = _random_mcq(rng, directions)
        answer = next(o for o in options if o.startswith(letter + "."))
        if "Person" in qtype:
            q = f"From the perspective of the person standing by the {a.category}, where is the {b.category}?"
        else:
            q = f"Could you tell me the location of the {b.category} in comparison to the {a.category}?"
        items.append({"question_type": qtype, "image_path": paths, "question": q, "answer": answer,
                      "choices": "\n".join(options)})  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "ViewSpatial-Bench.json").write_text(json.dumps(items, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------------
# Benchmarks outside the paper's table
# ------------------------------------------------------------------------------------------------
def _vsi_debiased(vsi: Path, rng: random.Random) -> Path:
    """VSI-Bench-Debiased cut from the miniature VSI-Bench in ``vsi`` the way its ``create_pq.py`` does it."""
    import pyarrow.parquet as pq

    full = vsi / "test-00000-of-00001.parquet"
    rows = pq.read_table(full).to_pylist()
    by_type: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_type.setdefault(row["question_type"], []).append(i)
    # Keep at least half of every type, so both files cover each type once per_type >= 2.
    kept = {i for idx in by_type.values() for i in rng.sample(idx, math.ceil(len(idx) / 2))}
    for i, row in enumerate(rows):
        row["pruned"] = i not in kept
    schema = pq.read_schema(full).append(_bool_field("pruned"))
    # create_pq.py: the unpruned rows -> test_debiased.parquet, the pruned rows -> test_pruned.parquet,
    # both in the source order and without an index column.
    _write_parquet(vsi / "test_debiased.parquet", [r for r in rows if not r["pruned"]], schema)
    _write_parquet(vsi / "test_pruned.parquet", [r for r in rows if r["pruned"]], schema)
    return vsi


def _bool_field(name: str) -> Any:
    import pyarrow as pa

    return pa.field(name, pa.bool_())


_DIRECTIONS = ["left", "right", "front", "behind", "front-left", "front-right", "back-left", "back-right"]
_MOTIONS = ["moved forward", "moved backward", "turned left", "turned right", "did not move"]
# One question stem per MMSI-Bench type ({a}, {b}: object categories of the rendered room).
_MMSI_STEMS: dict[str, str] = {
    "Positional Relationship (Cam.\u2013Cam.)": "Where was the camera of the second image relative to the first?",
    "Positional Relationship (Obj.\u2013Obj.)": "Where is the {a} relative to the {b}?",
    "Positional Relationship (Reg.\u2013Reg.)": "Where is the region around the {a} relative to the region around the {b}?",
    "Positional Relationship (Cam.\u2013Obj.)": "When the second image was taken, where was the {a} relative to the camera?",
    "Positional Relationship (Obj.\u2013Reg.)": "Where is the {a} relative to the region around the {b}?",
    "Positional Relationship (Cam.\u2013Reg.)": "Where is the region around the {b} relative to the first camera?",
    "Attribute (Meas.)": "How long is the {a} compared with the {b}?",
    "Attribute (Appr.)": "Which object shares its colour with the {a}?",
    "Motion (Cam.)": "How did the camera move between the two images?",
    "Motion (Obj.)": "How did the {a} move between the images?",
    "MSR": "Standing at the {a} and facing the {b}, which way should I turn to reach the third view?",
}  # fmt: skip


def _options(rng: random.Random, pool: list[str], k: int = 4) -> tuple[list[str], str]:
    """``k`` distinct option texts and the letter of the (randomly) correct one."""
    return rng.sample(pool, k), LETTERS[rng.randrange(k)]


def _mmsi(root: Path, rng: random.Random, per_type: int, size: tuple[int, int]) -> Path:
    import pyarrow as pa

    out = root / "MMSI-Bench"
    schema = pa.schema([("id", pa.int64()), ("images", pa.list_(pa.binary())), ("question_type", pa.string()),
                        ("question", pa.string()), ("answer", pa.string()), ("thought", pa.string())])  # fmt: skip
    rows = []
    for k, qtype in enumerate(t for t in QUESTION_TYPES["MMSI-Bench"] for _ in range(per_type)):
        # README: the ten fundamental tasks use two images, multi-step reasoning more.
        n_views = rng.randint(3, 4) if qtype == "MSR" else 2
        scene = _scene(rng, f"mmsi{k:04d}", size, 2, n_views)
        images = [_jpeg(render_frame(scene, cam).image) for cam in scene.view_cameras]
        a, b = rng.sample(_uniques(scene), 2)
        choices, letter = _options(rng, _MOTIONS if qtype.startswith("Motion") else _DIRECTIONS)
        options = ", ".join(f"{LETTERS[i]}: {c}" for i, c in enumerate(choices))
        question = _MMSI_STEMS[qtype].format(a=a.category, b=b.category) + "\nOptions: " + options
        thought = f"The {a.category} and the {b.category} appear in both images, so the answer is {letter}."
        rows.append({"id": k, "images": images, "question_type": qtype, "question": question,
                     "answer": letter, "thought": thought})  # fmt: skip
    _write_parquet(out / "MMSI_Bench.parquet", rows, schema)
    return out


def _mindcube_views(rng: random.Random, setting: str, group: int) -> tuple[str, list[str]]:
    """(group id, image paths relative to data/) in the release's folder conventions."""
    if setting == "among":  # other_all_image/among/<object>_<nnn>/<side>_<nnn>.jpg
        sides = ["front", "left", "back", "right"]
        folder = f"other_all_image/among/{rng.choice(['backpack', 'shoe', 'chair'])}_{group:03d}"
        return f"among_group{group:03d}", [f"{folder}/{s}_{rng.randrange(1000):03d}.jpg" for s in sides]
    if setting == "around":  # other_all_image/around/<64 hex>/<k>_frame_<nnnnn>.png
        folder = f"other_all_image/around/{rng.getrandbits(256):064x}"
        frames = sorted(rng.sample(range(400), 3))
        return f"around_group{group:03d}", [f"{folder}/{i}_frame_{f:05d}.png" for i, f in enumerate(frames)]
    # rotation: other_all_image/rotation/arkitscenes_<8 digits>/view_<k>_<n>.jpg
    folder = f"other_all_image/rotation/arkitscenes_{rng.randrange(10**8):08d}"
    return f"rotation_group{group:03d}", [f"{folder}/view_{i + 1}_{i * 7}.jpg" for i in range(3)]


def _mindcube(root: Path, rng: random.Random, per_type: int, size: tuple[int, int]) -> Path:
    out = root / "MindCube"
    data = out / "data"
    rows = []
    for setting in MINDCUBE_SETTINGS:
        for q in range(per_type):
            if q % 2 == 0:  # two questions per group share its images, as in the release
                group = len(rows)
                group_id, paths = _mindcube_views(rng, setting, group)
                scene = _scene(rng, group_id, size, 2, len(paths))
                for rel, cam in zip(paths, scene.view_cameras, strict=True):
                    image = render_frame(scene, cam).image
                    (data / rel).parent.mkdir(parents=True, exist_ok=True)
                    (data / rel).write_bytes(_png(image) if rel.endswith(".png") else _jpeg(image))
                objects = [o.category for o in _uniques(scene)][:4]
            used = paths[:2] if setting == "among" else paths  # among: two of the four sides
            choices, letter = _options(rng, _DIRECTIONS, 4 if setting != "rotation" else 3)
            question = (f"Based on these {len(used)} views of the same scene: if you stand at the viewpoint of the "
                        f"first image, where is the {objects[0]}? "
                        + " ".join(f"{LETTERS[i]}. {c.capitalize()}" for i, c in enumerate(choices)))  # fmt: skip
            meta: list[Any] = {"among": [objects, [None] * (len(objects) - 1) + ["face"]],
                               "around": [[len(used)], [objects[:2], "left", objects[-1]]],
                               "rotation": objects[:3]}[setting]  # fmt: skip
            rows.append({
                # The release has both "around_" and "aroundnew_" ids; odd questions take the latter.
                "id": f"{group_id.replace('around_', 'aroundnew_') if q % 2 else group_id}_q{q}_1_1",
                "category": {"among": ["perpendicular", "P-P", "meanwhile", "self"],
                             "around": ["parallel", "O-O", "around", "self"],
                             "rotation": ["perpendicular", "PP", "rotation", "self"]}[setting],
                "type": {"among": "0_frame", "around": "around", "rotation": "three_view"}[setting],
                "meta_info": meta,
                "question": question,
                "images": used,
                "gt_answer": letter,
            })  # fmt: skip
    raw = data / "raw" / "MindCube_tinybench.jsonl"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return out


def make_fixtures(
    out_dir: str | Path,
    *,
    seed: int = 0,
    per_type: int = 2,
    image_size: tuple[int, int] = (160, 120),
    video_frames: int = 24,
    fps: int = 8,
) -> dict[str, Path]:
    """Write a miniature of every registered benchmark under ``out_dir``; returns name -> its folder.

    ``per_type`` questions of every question type (and, for CV-Bench, of every task x source). Videos
    have ``video_frames`` frames at ``fps``; VSI-Bench puts about five questions on each video.
    """
    if per_type < 1:
        raise ValueError("per_type must be >= 1")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)

    def rng(name: str) -> random.Random:
        return random.Random(f"spatialladder-eval-fixtures:{seed}:{name}")

    spb = _spbench(root, rng("SPBench"), per_type, image_size)
    vsi = _vsi(root, rng("VSI-Bench"), per_type, image_size, video_frames, fps)
    return {
        "VSI-Bench": vsi,
        "SPBench-SI": spb,
        "SPBench-MV": spb,
        "CV-Bench": _cvbench(root, rng("CV-Bench"), per_type, image_size),
        "SPAR-Bench": _spar(root, rng("SPAR-Bench"), per_type, image_size),
        "ViewSpatial-Bench": _viewspatial(root, rng("ViewSpatial-Bench"), per_type, image_size),
        "VSI-Bench-Debiased": _vsi_debiased(vsi, rng("VSI-Bench-Debiased")),
        "MMSI-Bench": _mmsi(root, rng("MMSI-Bench"), per_type, image_size),
        "MindCube-Tiny": _mindcube(root, rng("MindCube-Tiny"), per_type, image_size),
    }
