"""Tests for spatialladder.data: typed records, the validating loader and the CLI validator.

The fixture is written by hand (a few 160x120 jpgs and a few rows of each file kind) so that each
corruption case can name the exact line it breaks.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from spatialladder.data import (
    ColdStartRecord,
    DatasetValidationError,
    GroundingBox,
    GroundingRecord,
    SpatialRecord,
    detect_kind,
    image_size,
    load_records,
)
from spatialladder.data import loader as loader_mod
from spatialladder.data.validate import main as validate_main

W, H = 160, 120
VIEWS = [f"scene0001_00/{i * 10}.jpg" for i in range(8)]
FRAMES = [f"scene0002_00/{i}.jpg" for i in range(4)]
SINGLE = "scene0001_00/0.jpg"

GROUNDING_ROWS: list[dict[str, Any]] = [
    {
        "question_id": 1,
        "question": "Locate the chair in the image.",
        "answer": [{"bbox_2d": [10, 20, 50, 60], "label": "chair"}],
        "image": [SINGLE],
        "data_type": "single_image",
    },
    {
        "question_id": 2,
        "question": "Locate the table and the lamp.",
        "answer": [
            {"bbox_2d": [0, 0, 80.5, 40], "label": "table"},
            {"bbox_2d": [100, 30, 160, 120], "label": "lamp"},
        ],
        "image": [VIEWS[1]],
        "data_type": "single_image",
    },
]

SPATIAL_ROWS: list[dict[str, Any]] = [
    {
        "question_id": 10,
        "question": "From the camera's perspective, is the chair to the radiator's left, right, front, or back?",
        "options": ["A. left", "B. right", "C. front", "D. back"],
        "answer": "B",
        "image": [SINGLE],
        "question_type": "relative direction",
        "data_type": "single_image",
    },
    {
        "question_id": 11,
        "question": "How many chairs are in the room?",
        "options": None,
        "answer": "3",
        "image": list(VIEWS),
        "question_type": "object count",
        "data_type": "multi_view",
    },
    {
        "question_id": 12,
        "question": "Which object appears first in the video?",
        "options": ["A. sofa", "B. bed", "C. desk"],
        "answer": "C",
        "image": list(FRAMES),
        "question_type": "appearance order",
        "data_type": "video",
    },
    {
        "question_id": 13,
        "question": "What is the distance between the bed and the door, in meters?",
        "options": None,
        "answer": "2.5",
        "image": [VIEWS[2]],
        "question_type": "absolute distance",
        "data_type": "single_image",
    },
]

COLDSTART_ROWS: list[dict[str, Any]] = [
    {
        "question_id": 20,
        "prompt": "Is the chair left or right of the radiator? Think step by step.",
        "solution": "<think>The radiator is under the window; the chair is to its right.</think><answer>B</answer>",
        "image": [SINGLE],
        "data_type": "single_image",
    },
    {
        "question_id": 21,
        "prompt": "How many chairs are there? Think step by step.",
        "solution": "<think>I count two at the table and one by the desk.</think>\n<answer>3</answer>",
        "image": list(FRAMES),
        "data_type": "video",
    },
]

ROWS = {"grounding": GROUNDING_ROWS, "spatial": SPATIAL_ROWS, "coldstart": COLDSTART_ROWS}
NAMES = {
    "grounding": "spld_grounding_data.jsonl",
    "spatial": "spld_spatial_data.jsonl",
    "coldstart": "spld_coldstart_data.jsonl",
}


class Raw(str):
    """A row written to the file verbatim instead of as JSON."""


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, Raw) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    for i, rel in enumerate(sorted(set(VIEWS + FRAMES))):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (20 * i % 256, 100, 150)).save(p, quality=90)
    return root


@pytest.fixture()
def dataset(tmp_path: Path, media: Path) -> dict[str, Path]:
    out = tmp_path / "data"
    out.mkdir()
    return {kind: write_jsonl(out / NAMES[kind], copy.deepcopy(rows)) for kind, rows in ROWS.items()}


# ------------------------------------------------------------------------------------------
# Clean files
# ------------------------------------------------------------------------------------------


def test_clean_files_load_with_types_and_resolved_paths(dataset: dict[str, Path], media: Path) -> None:
    grounding = load_records(dataset["grounding"], media)
    spatial = load_records(dataset["spatial"], media)
    coldstart = load_records(dataset["coldstart"], media)

    assert [type(r) for r in grounding] == [GroundingRecord, GroundingRecord]
    assert all(isinstance(r, SpatialRecord) for r in spatial) and len(spatial) == 4
    assert all(isinstance(r, ColdStartRecord) for r in coldstart) and len(coldstart) == 2

    g = grounding[1]
    assert g.question_id == 2
    assert g.answer[0] == GroundingBox(bbox_2d=(0.0, 0.0, 80.5, 40.0), label="table")
    assert isinstance(g.answer[0].bbox_2d, tuple) and all(isinstance(v, float) for v in g.answer[0].bbox_2d)
    assert g.source == f"{dataset['grounding']}:2"

    for record in [*grounding, *spatial, *coldstart]:
        for p in record.images:
            assert isinstance(p, Path) and p.is_absolute() and p.is_file()
    assert spatial[1].images == [(media / v).resolve() for v in VIEWS]

    mcq, count, order, dist = spatial
    assert mcq.is_multiple_choice and mcq.options == ["A. left", "B. right", "C. front", "D. back"]
    assert not count.is_multiple_choice and count.options is None and count.answer == "3"
    assert (
        order.options == ["A. sofa", "B. bed", "C. desk"]
        and order.answer == "C"
        and order.data_type == "video"
    )
    assert dist.answer == "2.5" and dist.options is None
    assert coldstart[1].solution.endswith("<answer>3</answer>")
    assert image_size(media / SINGLE) == (W, H)


def test_kind_from_row_keys_and_explicit_kind(tmp_path: Path, media: Path) -> None:
    for kind, rows in ROWS.items():
        path = write_jsonl(tmp_path / f"renamed_{kind}.jsonl", copy.deepcopy(rows))
        assert detect_kind(path, rows[0]) == kind
        records = load_records(path, media)
        assert len(records) == len(rows)
        assert len(load_records(path, media, kind=kind)) == len(rows)
    # An explicit kind wins over the name: spatial rows read as grounding rows are rejected.
    path = write_jsonl(tmp_path / NAMES["spatial"], copy.deepcopy(SPATIAL_ROWS))
    with pytest.raises(DatasetValidationError):
        load_records(path, media, kind="grounding")
    with pytest.raises(ValueError):
        load_records(path, media, kind="nonsense")


def test_blank_lines_are_allowed_and_line_numbers_stay_physical(tmp_path: Path, media: Path) -> None:
    rows = copy.deepcopy(SPATIAL_ROWS)
    lines = [
        "",
        json.dumps(rows[0]),
        "   ",
        "",
        json.dumps(rows[1]),
        json.dumps(rows[2]),
        "\t",
        json.dumps(rows[3]),
    ]
    path = tmp_path / NAMES["spatial"]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    records = load_records(path, media)
    assert [r.source for r in records] == [f"{path}:{n}" for n in (2, 5, 6, 8)]

    rows[2]["answer"] = "Z"
    lines[5] = json.dumps(rows[2])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetValidationError) as err:
        load_records(path, media)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:6: answer: ")


def test_check_media_false_skips_media(tmp_path: Path, media: Path) -> None:
    rows = copy.deepcopy(SPATIAL_ROWS)
    rows[0]["image"] = ["nowhere/missing.jpg"]
    path = write_jsonl(tmp_path / NAMES["spatial"], rows)
    assert len(load_records(path, tmp_path / "no_such_root", check_media=False)) == 4
    with pytest.raises(DatasetValidationError):
        load_records(path, media)


def test_num_views_is_configurable(tmp_path: Path, media: Path) -> None:
    rows = copy.deepcopy(SPATIAL_ROWS)
    rows[1]["image"] = VIEWS[:4]
    path = write_jsonl(tmp_path / NAMES["spatial"], rows)
    assert len(load_records(path, media, num_views=4)) == 4
    with pytest.raises(DatasetValidationError) as err:
        load_records(path, media)
    assert err.value.problems[0].startswith(f"{path}:2: image: ")


def test_each_distinct_media_file_is_decoded_once(
    tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = loader_mod._decode_image

    def counting(path: str) -> Any:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(loader_mod, "_decode_image", counting)
    monkeypatch.setattr(loader_mod, "_PROBE_CACHE", {})
    rows = []
    for i in range(40):
        row = copy.deepcopy(SPATIAL_ROWS[1])
        row["question_id"] = i
        rows.append(row)
    path = write_jsonl(tmp_path / NAMES["spatial"], rows)
    load_records(path, media)
    assert sorted(calls) == sorted(str((media / v).resolve()) for v in VIEWS)
    # A second load (e.g. the cold-start file sharing frames) reuses the probe cache.
    load_records(path, media)
    assert len(calls) == len(VIEWS)


# ------------------------------------------------------------------------------------------
# One defect per case, each at a known line
# ------------------------------------------------------------------------------------------

Mutation = Callable[[list[Any], Path], None]


def _set(line: int, key: str, value: Any) -> Mutation:
    def mutate(rows: list[Any], media: Path) -> None:
        rows[line - 1][key] = value

    return mutate


def _delete(line: int, key: str) -> Mutation:
    def mutate(rows: list[Any], media: Path) -> None:
        del rows[line - 1][key]

    return mutate


def _raw(line: int, text: str) -> Mutation:
    def mutate(rows: list[Any], media: Path) -> None:
        rows[line - 1] = Raw(text)

    return mutate


def _set_box(line: int, index: int, bbox: list[Any]) -> Mutation:
    def mutate(rows: list[Any], media: Path) -> None:
        rows[line - 1]["answer"][index]["bbox_2d"] = bbox

    return mutate


def _set_option(line: int, index: int, text: str) -> Mutation:
    def mutate(rows: list[Any], media: Path) -> None:
        rows[line - 1]["options"][index] = text

    return mutate


def _set_image(
    line: int, index: int, rel: str, content: bytes | None = None, truncate: bool = False
) -> Mutation:
    def mutate(rows: list[Any], media: Path) -> None:
        if content is not None:
            (media / rel).parent.mkdir(parents=True, exist_ok=True)
            (media / rel).write_bytes(content)
        if truncate:
            data = (media / SINGLE).read_bytes()
            (media / rel).write_bytes(data[: len(data) // 2])
        rows[line - 1]["image"][index] = rel

    return mutate


CASES: list[tuple[str, str, int, str, Mutation]] = [
    # (case id, file kind, defect line, expected FIELD, mutation)
    ("malformed-json", "spatial", 2, "<json>", _raw(2, '{"question_id": 11, "question": ')),
    ("json-not-object", "grounding", 1, "<json>", _raw(1, "[1, 2, 3]")),
    ("missing-field", "spatial", 3, "question", _delete(3, "question")),
    ("missing-options", "spatial", 4, "options", _delete(4, "options")),
    ("mistyped-question-id", "grounding", 2, "question_id", _set(2, "question_id", "2")),
    ("mistyped-bool-question-id", "coldstart", 1, "question_id", _set(1, "question_id", True)),
    ("mistyped-image", "spatial", 1, "image", _set(1, "image", SINGLE)),
    ("mistyped-image-item", "spatial", 2, "image[5]", _set_image(2, 5, 7)),  # type: ignore[arg-type]
    ("mistyped-answer", "spatial", 4, "answer", _set(4, "answer", 2.5)),
    ("unknown-question-type", "spatial", 1, "question_type", _set(1, "question_type", "relative height")),
    ("unknown-data-type", "coldstart", 2, "data_type", _set(2, "data_type", "panorama")),
    ("single-image-count", "spatial", 4, "image", _set(4, "image", [VIEWS[2], VIEWS[3]])),
    ("multi-view-count", "spatial", 2, "image", _set(2, "image", VIEWS[:7])),
    ("video-frame-count", "coldstart", 2, "image", _set(2, "image", FRAMES[:1])),
    ("mcq-answer-not-a-letter", "spatial", 1, "answer", _set(1, "answer", "E")),
    ("mcq-answer-is-option-text", "spatial", 3, "answer", _set(3, "answer", "desk")),
    ("unlettered-option", "spatial", 1, "options[1]", _set_option(1, 1, "right")),
    ("options-out-of-order", "spatial", 3, "options[1]", _set_option(3, 1, "C. bed")),
    ("mcq-null-options", "spatial", 3, "options", _set(3, "options", None)),
    ("numeric-with-options", "spatial", 2, "options", _set(2, "options", ["A. 3", "B. 4"])),
    ("numeric-nan", "spatial", 2, "answer", _set(2, "answer", "nan")),
    ("numeric-inf", "spatial", 4, "answer", _set(4, "answer", "inf")),
    ("numeric-abc", "spatial", 4, "answer", _set(4, "answer", "abc")),
    ("numeric-negative", "spatial", 4, "answer", _set(4, "answer", "-1.5")),
    ("count-not-whole", "spatial", 2, "answer", _set(2, "answer", "2.5")),
    ("box-three-numbers", "grounding", 1, "answer[0].bbox_2d", _set_box(1, 0, [10, 20, 50])),
    ("box-string-number", "grounding", 2, "answer[1].bbox_2d", _set_box(2, 1, [100, "30", 160, 120])),
    ("box-x1-ge-x2", "grounding", 1, "answer[0].bbox_2d", _set_box(1, 0, [50, 20, 50, 60])),
    ("box-y1-gt-y2", "grounding", 2, "answer[0].bbox_2d", _set_box(2, 0, [0, 40, 80, 10])),
    ("box-outside-image", "grounding", 2, "answer[1].bbox_2d", _set_box(2, 1, [100, 30, 200, 120])),
    ("box-negative", "grounding", 1, "answer[0].bbox_2d", _set_box(1, 0, [-5, 20, 50, 60])),
    ("box-missing-label", "grounding", 1, "answer[0].label", _set(1, "answer", [{"bbox_2d": [1, 2, 3, 4]}])),
    ("empty-box-list", "grounding", 2, "answer", _set(2, "answer", [])),
    ("missing-media", "spatial", 2, "image[3]", _set_image(2, 3, "scene0001_00/missing.jpg")),
    (
        "corrupt-media",
        "coldstart",
        1,
        "image[0]",
        _set_image(1, 0, "scene0001_00/corrupt.jpg", b"not a jpeg" * 50),
    ),
    ("truncated-jpeg", "spatial", 3, "image[2]", _set_image(3, 2, "scene0002_00/trunc.jpg", truncate=True)),
    ("media-is-directory", "spatial", 4, "image[0]", _set_image(4, 0, "scene0002_00")),
    ("coldstart-no-think", "coldstart", 1, "solution", _set(1, "solution", "<answer>B</answer>")),
    (
        "coldstart-trailing-text",
        "coldstart",
        2,
        "solution",
        _set(2, "solution", "<think>x</think><answer>3</answer> ok"),
    ),
    (
        "coldstart-nested",
        "coldstart",
        1,
        "solution",
        _set(1, "solution", "<think><think>x</think><answer>B</answer>"),
    ),
    (
        "coldstart-empty-answer",
        "coldstart",
        2,
        "solution",
        _set(2, "solution", "<think>x</think><answer> </answer>"),
    ),
    ("empty-prompt", "coldstart", 2, "prompt", _set(2, "prompt", "  ")),
]


@pytest.mark.parametrize(
    ("kind", "line", "field", "mutate"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_single_defect_is_reported_at_its_line(
    tmp_path: Path, media: Path, kind: str, line: int, field: str, mutate: Mutation
) -> None:
    rows = copy.deepcopy(ROWS[kind])
    mutate(rows, media)
    path = write_jsonl(tmp_path / NAMES[kind], rows)
    with pytest.raises(DatasetValidationError) as err:
        load_records(path, media)
    problems = err.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}: {field}: "), problems[0]
    assert len(problems[0]) > len(f"{path}:{line}: {field}: ")  # a message follows the prefix
    assert problems[0] in str(err.value)


def test_all_problems_of_a_file_are_collected(tmp_path: Path, media: Path) -> None:
    rows: list[Any] = copy.deepcopy(SPATIAL_ROWS)
    rows[0]["answer"] = "E"
    rows[1] = Raw("{oops")
    rows[2]["image"][1] = "scene0002_00/missing.jpg"
    rows[3]["answer"] = "abc"
    rows[3]["question_id"] = None
    path = write_jsonl(tmp_path / NAMES["spatial"], rows)
    with pytest.raises(DatasetValidationError) as err:
        load_records(path, media)
    prefixes = [p.split(": ")[0] + ": " + p.split(": ")[1] for p in err.value.problems]
    assert prefixes == [
        f"{path}:1: answer",
        f"{path}:2: <json>",
        f"{path}:3: image[1]",
        f"{path}:4: question_id",
        f"{path}:4: answer",
    ]


def _many_bad_rows(tmp_path: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        row = copy.deepcopy(SPATIAL_ROWS[3])
        row["question_id"] = i
        row["answer"] = "nan"
        rows.append(row)
    return write_jsonl(tmp_path / NAMES["spatial"], rows)


def test_many_errors_message_lists_50_and_counts_the_rest(tmp_path: Path, media: Path) -> None:
    path = _many_bad_rows(tmp_path, 137)
    with pytest.raises(DatasetValidationError) as err:
        load_records(path, media)
    assert len(err.value.problems) == 137
    message = str(err.value)
    listed = [ln for ln in message.splitlines() if ln.startswith(f"{path}:")]
    assert len(listed) == 50
    assert listed[0].startswith(f"{path}:1: answer: ") and listed[-1].startswith(f"{path}:50: answer: ")
    assert "… and 87 more" in message and "137" in message


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def test_cli_clean_exits_zero_and_prints_counts(
    dataset: dict[str, Path], media: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(dataset[k]) for k in ("grounding", "spatial", "coldstart")]
    assert validate_main([*files, "--media-root", str(media)]) == 0
    out = capsys.readouterr().out
    for f in files:
        assert f in out
    lines = out.splitlines()

    def count_of(label: str) -> list[int]:
        return [int(ln.split()[-1]) for ln in lines if ln.split()[:-1] == label.split()]

    # single_image: 2 grounding rows, 2 spatial rows, 1 cold-start row (one table per file).
    assert count_of("single_image") == [2, 2, 1]
    assert count_of("multi_view") == [1]
    assert count_of("video") == [1, 1]
    assert count_of("relative direction") == [1]
    assert count_of("object count") == [1]
    assert count_of("appearance order") == [1]
    assert count_of("absolute distance") == [1]


def test_cli_errors_exit_nonzero_and_print_every_line(
    tmp_path: Path, media: Path, dataset: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _many_bad_rows(tmp_path, 60)
    code = validate_main([str(dataset["grounding"]), str(bad), "--media-root", str(media)])
    assert code == 1
    out = capsys.readouterr().out
    problem_lines = [ln for ln in out.splitlines() if re.match(rf"{re.escape(str(bad))}:\d+: ", ln)]
    assert len(problem_lines) == 60  # all of them, not just the 50 in the exception message
    assert problem_lines[59].startswith(f"{bad}:60: answer: ")
    assert "60 problems" in out
    assert f"{dataset['grounding']}: OK" in out


def test_cli_no_media_check_and_num_views(
    tmp_path: Path, media: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = copy.deepcopy(SPATIAL_ROWS)
    rows[1]["image"] = ["x/missing.jpg"] * 4
    path = write_jsonl(tmp_path / "custom.jsonl", rows)
    assert validate_main([str(path), "--media-root", str(media), "--num-views", "4", "--no-media-check"]) == 0
    assert validate_main([str(path), "--media-root", str(media), "--num-views", "4"]) == 1
    out = capsys.readouterr().out
    assert sum(ln.startswith(f"{path}:2: image[") for ln in out.splitlines()) == 4


def test_cli_runs_as_module(dataset: dict[str, Path], media: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spatialladder.data.validate",
            str(dataset["spatial"]),
            "--media-root",
            str(media),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "relative direction" in proc.stdout


def test_synthetic_generator_output_validates(tmp_path: Path) -> None:
    """If the synthetic-scene generator is present, everything it writes must pass the loader.

    Assumed contract: ``generate_dataset(out_dir, seed=0)`` returns a dict with a ``media_root``
    entry and writes the three ``spld_*_data.jsonl`` files somewhere under ``out_dir``.
    """
    synthetic = pytest.importorskip("spatialladder.synthetic")
    generate = getattr(synthetic, "generate_dataset", None)
    if generate is None:
        pytest.skip("spatialladder.synthetic.generate_dataset not available yet")
    info = generate(tmp_path / "synth", seed=0)
    if not isinstance(info, dict) or "media_root" not in info:
        pytest.skip("generate_dataset() result has no 'media_root' entry")
    files = sorted((tmp_path / "synth").rglob("spld_*_data.jsonl"))
    assert files, "generator wrote no spld_*_data.jsonl files"
    for f in files:
        assert load_records(f, info["media_root"])
