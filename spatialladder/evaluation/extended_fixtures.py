"""Miniature copies of the extended benchmarks, in their real file layouts and column names.

    make_extended_fixtures(OUT_DIR, seed=0, per_type=2)  ->  {benchmark: folder}

Layout under ``OUT_DIR`` (the same ``--data-root`` as :func:`spatialladder.evaluation.fixtures.make_fixtures`)::

    VSI-Bench/test_debiased.parquet, test_pruned.parquet   + <dataset>/<scene_name>.mp4 (VSI-Bench's videos)
    MMSI-Bench/MMSI_Bench.parquet                           (2+ embedded JPEGs per row, a list of bytes)
    MindCube/data/raw/MindCube_tinybench.jsonl              + data/other_all_image/{among,around,rotation}/...

VSI-Bench-Debiased is built the way its ``create_pq.py`` builds it: VSI-Bench's rows (the same
miniature VSI-Bench that ``make_fixtures`` writes for the same seed and ``per_type``) plus a boolean
``pruned``, split into the kept rows (``test_debiased.parquet``) and the pruned ones. MMSI-Bench and
MindCube rows render the procedural rooms of :mod:`spatialladder.synthetic`; their answers are drawn at
random (the fixtures exercise loading, media, prompting and scoring, not model skill). Every question
type (MMSI-Bench) or setting (MindCube) appears ``per_type`` times. Deterministic for a seed.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from spatialladder.evaluation.extended_rules import MMSI_QUESTION_TYPES
from spatialladder.evaluation.fixtures import LETTERS, _jpeg, _png, _scene, _uniques, _vsi, _write_parquet
from spatialladder.synthetic import render_frame

__all__ = ["make_extended_fixtures", "MINDCUBE_FIXTURE_SETTINGS"]

MINDCUBE_FIXTURE_SETTINGS: tuple[str, ...] = ("among", "around", "rotation")  # the tiny set's three

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


def _vsi_debiased(root: Path, rng_full: random.Random, rng_prune: random.Random, per_type: int,
                  size: tuple[int, int], video_frames: int, fps: int) -> Path:  # fmt: skip
    import pyarrow.parquet as pq

    out = _vsi(root, rng_full, per_type, size, video_frames, fps)  # VSI-Bench's rows and videos
    full = out / "test-00000-of-00001.parquet"
    rows = pq.read_table(full).to_pylist()
    by_type: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_type.setdefault(row["question_type"], []).append(i)
    # Keep at least half of every type, so both files cover each type once per_type >= 2.
    kept = {i for idx in by_type.values() for i in rng_prune.sample(idx, math.ceil(len(idx) / 2))}
    for i, row in enumerate(rows):
        row["pruned"] = i not in kept
    schema = pq.read_schema(full).append(_bool_field("pruned"))
    # create_pq.py: the unpruned rows -> test_debiased.parquet, the pruned rows -> test_pruned.parquet,
    # both in the source order and without an index column.
    _write_parquet(out / "test_debiased.parquet", [r for r in rows if not r["pruned"]], schema)
    _write_parquet(out / "test_pruned.parquet", [r for r in rows if r["pruned"]], schema)
    return out


def _bool_field(name: str) -> Any:
    import pyarrow as pa

    return pa.field(name, pa.bool_())


def _options(rng: random.Random, pool: list[str], k: int = 4) -> tuple[list[str], str]:
    """``k`` distinct option texts and the letter of the (randomly) correct one."""
    return rng.sample(pool, k), LETTERS[rng.randrange(k)]


def _mmsi(root: Path, rng: random.Random, per_type: int, size: tuple[int, int]) -> Path:
    import pyarrow as pa

    out = root / "MMSI-Bench"
    schema = pa.schema([("id", pa.int64()), ("images", pa.list_(pa.binary())), ("question_type", pa.string()),
                        ("question", pa.string()), ("answer", pa.string()), ("thought", pa.string())])  # fmt: skip
    rows = []
    for k, qtype in enumerate(t for t in MMSI_QUESTION_TYPES for _ in range(per_type)):
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
    for setting in MINDCUBE_FIXTURE_SETTINGS:
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


def make_extended_fixtures(
    out_dir: str | Path,
    *,
    seed: int = 0,
    per_type: int = 2,
    image_size: tuple[int, int] = (160, 120),
    video_frames: int = 24,
    fps: int = 8,
) -> dict[str, Path]:
    """Write the three miniature extended benchmarks under ``out_dir``; returns name -> its folder.

    VSI-Bench-Debiased (re)writes the miniature VSI-Bench it is cut from: byte-identical to what
    ``make_fixtures`` writes with the same ``seed``, ``per_type``, ``image_size``, ``video_frames``, ``fps``.
    """
    if per_type < 1:
        raise ValueError("per_type must be >= 1")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)

    def rng(name: str) -> random.Random:
        # The seed string of fixtures.make_fixtures, so "VSI-Bench" draws the same miniature VSI-Bench.
        return random.Random(f"spatialladder-eval-fixtures:{seed}:{name}")

    return {
        "VSI-Bench-Debiased": _vsi_debiased(
            root, rng("VSI-Bench"), rng("VSI-Bench-Debiased"), per_type, image_size, video_frames, fps
        ),  # fmt: skip
        "MMSI-Bench": _mmsi(root, rng("MMSI-Bench"), per_type, image_size),
        "MindCube-Tiny": _mindcube(root, rng("MindCube-Tiny"), per_type, image_size),
    }
