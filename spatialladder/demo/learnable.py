"""A learnable task family: flat-coloured objects whose answers are in the pixels.

The procedural rooms of :mod:`spatialladder.synthetic.generate` exercise every code path but are far
beyond what a tiny random Qwen2.5-VL can learn in CPU-minutes. This family is the opposite: two big
flat-coloured squares (a *red* and a *blue* one) on a plain grey background, and one two-way multiple
choice question per sample whose answer can only be read from the pixels:

* ``single_image`` (``relative distance``): "Which object is nearer to the camera, the red one or the
  blue one?" -- one 56x112 image, one square in each half, the nearer one drawn larger;
* ``multi_view`` (``relative distance``): eight 56x56 views of which only one shows the two objects;
  "Which of them is nearer to the camera?" -- again the nearer one is drawn larger;
* ``video`` (``appearance order``): eight 56x56 frames in which one object is seen over the first six
  frames and the other only over the last two; "Which object appears first in the video?".

The options are always ``A. red`` / ``B. blue``; the answer is balanced (exactly half A per
modality and split), so a model that always answers one letter, or one that does not look (the
runner's ``--blind`` control), scores chance (0.5). Scenes of different ``split`` names are drawn
from independent seeds, so held-out questions are never trained on.

:func:`write_learnable_dataset` writes the three SpatialLadder-26k files (grounding, spatial, cold
start) and :func:`write_learnable_benchmarks` the held-out questions as SPBench-SI (single image),
SPBench-MV (multi-view) and VSI-Bench (video, .mp4) miniatures, read by the real eval harness.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from spatialladder.prompts import build_prompt
from spatialladder.synthetic.questions import grounding_question, lettered

__all__ = [
    "BACKGROUND",
    "COLOURS",
    "LEARNABLE_BENCHMARKS",
    "MODALITIES",
    "LearnableSample",
    "make_samples",
    "write_learnable_benchmarks",
    "write_learnable_dataset",
]

BACKGROUND = (128, 128, 128)
COLOURS: dict[str, tuple[int, int, int]] = {"red": (220, 30, 30), "blue": (30, 60, 230)}
NAMES: tuple[str, str] = ("red", "blue")  # option order: A. red, B. blue
MODALITIES: tuple[str, ...] = ("single_image", "multi_view", "video")
QUESTION_TYPE = {"single_image": "relative distance", "multi_view": "relative distance", "video": "appearance order"}
# modality -> (benchmark, its question_type) of the held-out miniatures
LEARNABLE_BENCHMARKS: dict[str, tuple[str, str]] = {
    "single_image": ("SPBench-SI", "object_rel_distance"),
    "multi_view": ("SPBench-MV", "object_rel_distance"),
    "video": ("VSI-Bench", "obj_appearance_order"),
}
QUESTIONS = {
    "single_image": "Which object is nearer to the camera, the red object or the blue object?",
    "multi_view": "One of the views shows a red object and a blue object. Which of them is nearer to the camera?",
    "video": "Which object appears first in the video, the red object or the blue object?",
}
# The cold-start reasoning is a fixed sentence per task: the rung teaches the <think>/<answer> format,
# and the answer letter still has to come from the pixels (a colour word inside the reasoning is a
# second skill that the tiny model does not pick up within the demo's budget).
THINK = {
    "single_image": "Compare the sizes.",
    "multi_view": "Find the view, compare the sizes.",
    "video": "Check the first frames.",
}
SINGLE_SIZE = (56, 112)  # W, H: 2x4 merged 28 px tokens at the demo's pixel budget
VIEW_SIZE = (56, 56)
NUM_FRAMES = 8
# an even frame: Qwen2.5-VL merges frame pairs into one temporal patch
VIDEO_CHANGE_FRAME = 6
MEDIA_DIR = "images"


@dataclass
class LearnableSample:
    """One rendered question: frames, the answer colour and the objects' boxes in the frame(s)."""

    modality: str
    frames: list[Image.Image]
    answer_colour: str
    boxes: list[dict[str, tuple[int, int, int, int]]] = field(default_factory=list)  # per frame

    @property
    def question(self) -> str:
        return QUESTIONS[self.modality]

    @property
    def options(self) -> list[str]:
        return lettered(list(NAMES))

    @property
    def answer(self) -> str:
        return "AB"[NAMES.index(self.answer_colour)]

    @property
    def think(self) -> str:
        return THINK[self.modality]


def _shade(rng: random.Random, rgb: tuple[int, int, int], spread: int = 25) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-spread, spread))) for c in rgb)  # type: ignore[return-value]


def _canvas(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, _shade(rng, BACKGROUND, 8))


def _square(
    img: Image.Image, rng: random.Random, colour: str, side: int, x_range: tuple[int, int], y_range: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Draw a ``side`` px square of ``colour`` whose top-left corner lies in the given ranges."""
    x = rng.randint(x_range[0], max(x_range[0], x_range[1] - side))
    y = rng.randint(y_range[0], max(y_range[0], y_range[1] - side))
    box = (x, y, x + side, y + side)
    ImageDraw.Draw(img).rectangle((x, y, x + side - 1, y + side - 1), fill=_shade(rng, COLOURS[colour]))
    return box


def _single_image(rng: random.Random, answer: str) -> LearnableSample:
    w, h = SINGLE_SIZE
    img = _canvas(rng, SINGLE_SIZE)
    other = NAMES[1 - NAMES.index(answer)]
    halves = [(0, h // 2), (h // 2, h)]
    rng.shuffle(halves)
    boxes = {
        answer: _square(img, rng, answer, rng.randint(36, 50), (0, w), halves[0]),
        other: _square(img, rng, other, rng.randint(10, 16), (0, w), halves[1]),
    }
    return LearnableSample("single_image", [img], answer, [boxes])


def _multi_view(rng: random.Random, answer: str) -> LearnableSample:
    """The nearer object is drawn larger; seven empty views around the one that shows both."""
    w, h = VIEW_SIZE
    shown = rng.randrange(NUM_FRAMES)
    frames, boxes = [], []
    other = NAMES[1 - NAMES.index(answer)]
    for k in range(NUM_FRAMES):
        img = _canvas(rng, VIEW_SIZE)
        fb: dict[str, tuple[int, int, int, int]] = {}
        if k == shown:
            near, far = rng.randint(30, 40), rng.randint(10, 14)
            left_first = rng.random() < 0.5
            xs = [(0, w // 2 + 8), (w // 2 - 4, w)] if left_first else [(w // 2 - 4, w), (0, w // 2 + 8)]
            fb[answer] = _square(img, rng, answer, near, xs[0], (0, h))
            fb[other] = _square(img, rng, other, far, xs[1], (0, h))
        frames.append(img)
        boxes.append(fb)
    return LearnableSample("multi_view", frames, answer, boxes)


def _video(rng: random.Random, answer: str) -> LearnableSample:
    """The first object is in view over the first six frames, the second one over the last two.

    The first object is therefore also the one seen longer: the answer can be read from the colour that
    dominates the video, which the tiny model learns in a few dozen steps. With the change point drawn
    from frames 2, 4 or 6 (the order alone decides) stage 2 reached 0.93-1.0 on held-out videos after
    96-144 steps in some seeds and stayed at 0.5 after 96 in another; the answer is still only in the
    pixels (blind: chance)."""
    w, h = VIEW_SIZE
    other = NAMES[1 - NAMES.index(answer)]
    split = VIDEO_CHANGE_FRAME
    side_a, side_b = rng.randint(26, 36), rng.randint(26, 36)
    pos_a = (rng.randint(0, w - side_a), rng.randint(0, h - side_a))
    pos_b = (rng.randint(0, w - side_b), rng.randint(0, h - side_b))
    frames, boxes = [], []
    for k in range(NUM_FRAMES):
        img = _canvas(rng, VIEW_SIZE)
        colour, side, (x, y) = (answer, side_a, pos_a) if k < split else (other, side_b, pos_b)
        dx = rng.randint(-2, 2)
        x = max(0, min(w - side, x + dx))
        fb = {colour: _square(img, rng, colour, side, (x, x + side), (y, y + side))}
        frames.append(img)
        boxes.append(fb)
    return LearnableSample("video", frames, answer, boxes)


_MAKERS = {"single_image": _single_image, "multi_view": _multi_view, "video": _video}


def make_samples(modality: str, n: int, *, seed: int = 0, split: str = "train") -> list[LearnableSample]:
    """``n`` samples of one modality, half answered A and half B (n odd: one more A), shuffled."""
    if modality not in _MAKERS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    rng = random.Random(f"spatialladder-learnable:{seed}:{split}:{modality}")
    answers = [NAMES[i % 2] for i in range(n)]
    rng.shuffle(answers)
    return [_MAKERS[modality](rng, a) for a in answers]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _save_frames(sample: LearnableSample, media: Path, name: str, *, blind: bool = False) -> list[str]:
    """Save the frames as ``media/<name>/<k>.png`` (grey ones of the same size when ``blind``);
    returns the paths relative to ``media``."""
    from spatialladder.evaluation.runner import blind_image  # the eval's --blind image, defined once

    (media / name).mkdir(parents=True, exist_ok=True)
    paths = []
    for k, img in enumerate(sample.frames):
        img = blind_image(img) if blind else img
        rel = f"{name}/{k:02d}.png"
        img.save(media / rel)
        paths.append(rel)
    return paths


def write_learnable_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    per_modality: int = 96,
    grounding: int = 48,
    coldstart_per_modality: int | None = None,
    split: str = "train",
    blind_media: bool = False,
) -> dict[str, Path]:
    """The three SpatialLadder-26k files for this task family under ``out_dir`` (media under
    ``out_dir/images``, the dataset's own layout, so ``DATA_DIR=out_dir`` runs the stage scripts on it; PNG so flat colours stay flat): ``per_modality`` spatial rows per modality
    (direct answers), ``coldstart_per_modality`` think-then-answer rows per modality (default: the
    same count) drawn from other scenes, and ``grounding`` single-image box rows. ``blind_media``
    writes every image as a grey one of the same size (same questions and answers): the control
    showing that what a model learns from this data comes from the pixels."""
    out = Path(out_dir)
    media = out / MEDIA_DIR
    media.mkdir(parents=True, exist_ok=True)
    cs_n = per_modality if coldstart_per_modality is None else coldstart_per_modality
    spatial, coldstart = [], []
    for modality in MODALITIES:
        for k, s in enumerate(make_samples(modality, per_modality, seed=seed, split=f"{split}-spatial")):
            spatial.append({
                "question_id": len(spatial), "question": s.question, "options": s.options, "answer": s.answer,
                "image": _save_frames(s, media, f"{split}-{modality}-{k:04d}", blind=blind_media),
                "question_type": QUESTION_TYPE[modality], "data_type": modality,
            })  # fmt: skip
        for k, s in enumerate(make_samples(modality, cs_n, seed=seed, split=f"{split}-coldstart")):
            coldstart.append({
                "question_id": len(coldstart), "prompt": build_prompt(s.question, s.options, "thinking"),
                "solution": f"<think>{s.think}</think><answer>{s.answer}</answer>",
                "image": _save_frames(s, media, f"{split}-cs-{modality}-{k:04d}", blind=blind_media),
                "data_type": modality,
            })  # fmt: skip
    rows = []
    for k, s in enumerate(make_samples("single_image", grounding, seed=seed, split=f"{split}-grounding")):
        names = list(NAMES)
        random.Random(f"{seed}:{k}").shuffle(names)
        rows.append({
            "question_id": k, "question": grounding_question([f"{c} object" for c in names]),
            "answer": [{"bbox_2d": list(s.boxes[0][c]), "label": f"{c} object"} for c in names],
            "image": _save_frames(s, media, f"{split}-grounding-{k:04d}", blind=blind_media),
            "data_type": "single_image",
        })  # fmt: skip
    paths = {
        "grounding": out / "spld_grounding_data.jsonl",
        "spatial": out / "spld_spatial_data.jsonl",
        "coldstart": out / "spld_coldstart_data.jsonl",
        "media": media,
    }
    _write_jsonl(paths["grounding"], rows)
    _write_jsonl(paths["spatial"], spatial)
    _write_jsonl(paths["coldstart"], coldstart)
    return paths


def write_learnable_benchmarks(
    out_dir: str | Path, *, seed: int = 0, per_modality: int = 60, split: str = "heldout"
) -> dict[str, Path]:
    """Held-out questions of every modality as miniatures of the benchmark whose input they match
    (single image -> SPBench-SI, multi-view -> SPBench-MV, video -> VSI-Bench with one .mp4 per
    question), in the real file layouts, so the eval harness reads them as one ``--data-root``.
    Returns ``{modality: benchmark folder}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spatialladder.synthetic.video import write_mp4

    root = Path(out_dir)
    out: dict[str, Path] = {}
    columns = [("id", pa.int64()), ("dataset", pa.string()), ("scene_name", pa.string()),
               ("question_type", pa.string()), ("question", pa.string()),
               ("options", pa.list_(pa.string())), ("ground_truth", pa.string())]  # fmt: skip
    for modality in MODALITIES:
        bench, qtype = LEARNABLE_BENCHMARKS[modality]
        rows = []
        for k, s in enumerate(make_samples(modality, per_modality, seed=seed, split=split)):
            scene = f"scene{k:04d}_00"
            row = {"id": k, "dataset": "scannet", "scene_name": scene, "question_type": qtype,
                   "question": s.question, "options": s.options, "ground_truth": s.answer}  # fmt: skip
            if modality == "video":  # VSI-Bench layout: one .mp4 per scene, no images column
                write_mp4(s.frames, root / bench / "scannet" / f"{scene}.mp4", fps=4)
            else:
                row["images"] = [p.split("/", 1)[1] for p in _save_frames(s, root / bench / "images", scene)]
            rows.append(row)
        schema = pa.schema(columns + ([] if modality == "video" else [("images", pa.list_(pa.string()))]))
        name = "test-00000-of-00001.parquet" if modality == "video" else f"{bench}.parquet"
        (root / bench).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / bench / name)
        out[modality] = root / bench
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m spatialladder.demo.learnable OUT_DIR [--benchmarks DIR]``: training files
    (grounding, spatial, cold start; media under OUT_DIR/images) and, with ``--benchmarks``, the
    held-out miniatures (different scenes, never trained on)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-modality", type=int, default=96, help="spatial (direct-answer) rows per modality")
    p.add_argument("--coldstart-per-modality", type=int, default=96, help="think-then-answer rows per modality")
    p.add_argument("--grounding", type=int, default=48, help="grounding rows (single images)")
    p.add_argument("--benchmarks", type=Path, default=None, help="also write the held-out miniatures here")
    p.add_argument("--eval-per-modality", type=int, default=60, help="held-out questions per modality")
    args = p.parse_args(argv)
    paths = write_learnable_dataset(
        args.out_dir, seed=args.seed, per_modality=args.per_modality, grounding=args.grounding,
        coldstart_per_modality=args.coldstart_per_modality,
    )  # fmt: skip
    for key in ("grounding", "spatial", "coldstart"):
        n = sum(1 for _ in open(paths[key], encoding="utf-8"))
        print(f"{paths[key]}: {n} rows")
    if args.benchmarks is not None:
        for modality, folder in write_learnable_benchmarks(
            args.benchmarks, seed=args.seed, per_modality=args.eval_per_modality
        ).items():
            print(f"{folder}: {args.eval_per_modality} held-out {modality} questions")


if __name__ == "__main__":
    main()
