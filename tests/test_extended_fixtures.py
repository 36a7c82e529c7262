"""The extended benchmarks' miniatures read back: real file names, columns and media layout, every
question type / setting, and rows the extended rules score as the authors would."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatialladder.evaluation.extended_fixtures import MINDCUBE_FIXTURE_SETTINGS, make_extended_fixtures
from spatialladder.evaluation.extended_rules import (
    MMSI_QUESTION_TYPES,
    mindcube_aggregate,
    mindcube_score,
    mindcube_setting,
    mmsi_aggregate,
    mmsi_score,
    vsi_debiased_aggregate,
    vsi_debiased_score,
)
from spatialladder.evaluation.scoring import QUESTION_TYPES

PER_TYPE = 2
VSI_COLUMNS = ["id", "dataset", "scene_name", "question_type", "question", "options", "ground_truth"]
MINDCUBE_KEYS = ["id", "category", "type", "meta_info", "question", "images", "gt_answer"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("extended-fixtures")
    folders = make_extended_fixtures(root, seed=0, per_type=PER_TYPE)
    assert folders == {
        "VSI-Bench-Debiased": root / "VSI-Bench",
        "MMSI-Bench": root / "MMSI-Bench",
        "MindCube-Tiny": root / "MindCube",
    }
    return root


def test_vsi_debiased_is_vsi_bench_split_by_pruned(fx: Path) -> None:
    vsi = fx / "VSI-Bench"
    full = pq.read_table(vsi / "test-00000-of-00001.parquet").to_pylist()
    debiased_table = pq.read_table(vsi / "test_debiased.parquet")
    assert debiased_table.column_names == [*VSI_COLUMNS, "pruned"]
    assert debiased_table.schema.field("pruned").type == pa.bool_()
    debiased = debiased_table.to_pylist()
    pruned = pq.read_table(vsi / "test_pruned.parquet").to_pylist()
    assert all(r["pruned"] is False for r in debiased) and all(r["pruned"] is True for r in pruned)
    # create_pq.py: the same rows as VSI-Bench, in its order, each in exactly one of the two files.
    assert [r["id"] for r in debiased] == [r["id"] for r in full if r["id"] in {d["id"] for d in debiased}]
    assert sorted(r["id"] for r in debiased + pruned) == sorted(r["id"] for r in full)
    assert {r["id"]: {k: r[k] for k in VSI_COLUMNS} for r in debiased + pruned} == {r["id"]: r for r in full}
    # Half of every type kept (per_type 2 -> one each), so both files cover all ten types.
    assert Counter(r["question_type"] for r in debiased) == Counter(
        dict.fromkeys(QUESTION_TYPES["VSI-Bench"], 1)
    )
    assert Counter(r["question_type"] for r in pruned) == Counter(
        dict.fromkeys(QUESTION_TYPES["VSI-Bench"], 1)
    )
    for row in debiased:
        assert (vsi / row["dataset"] / f"{row['scene_name']}.mp4").is_file()
    scored = [{**r, "score": vsi_debiased_score(r, r["ground_truth"])} for r in debiased]
    assert all(r["score"] == 1.0 for r in scored)
    assert vsi_debiased_aggregate(scored)["overall"] == pytest.approx(100.0)


def test_mmsi_layout_and_scoring(fx: Path) -> None:
    table = pq.read_table(fx / "MMSI-Bench" / "MMSI_Bench.parquet")
    assert table.column_names == ["id", "images", "question_type", "question", "answer", "thought"]
    assert table.schema.field("images").type == pa.list_(pa.binary())
    rows = table.to_pylist()
    assert Counter(r["question_type"] for r in rows) == Counter(dict.fromkeys(MMSI_QUESTION_TYPES, PER_TYPE))
    for row in rows:
        assert len(row["images"]) >= (3 if row["question_type"] == "MSR" else 2)
        for data in row["images"]:
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "JPEG" and image.size == (160, 120)
        stem, options = row["question"].split("\nOptions: ")
        assert stem and [o[:3] for o in options.split(", ")] == ["A: ", "B: ", "C: ", "D: "]
        assert row["answer"] in "ABCD" and row["thought"]
    scored = [{**r, "score": mmsi_score(r, f"`{r['answer']}`")} for r in rows]
    assert mmsi_aggregate(scored)["overall"] == pytest.approx(100.0)
    assert mmsi_aggregate([{**r, "score": mmsi_score(r, "E")} for r in rows])["overall"] == 0.0


def test_mindcube_layout_and_scoring(fx: Path) -> None:
    data = fx / "MindCube" / "data"
    lines = (data / "raw" / "MindCube_tinybench.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(list(r) == MINDCUBE_KEYS for r in rows)
    settings = Counter(mindcube_setting(r["id"]) for r in rows)
    assert settings == Counter(dict.fromkeys(MINDCUBE_FIXTURE_SETTINGS, PER_TYPE))
    assert {r["id"].split("_", 1)[0] for r in rows} == {"among", "around", "aroundnew", "rotation"}
    for row in rows:
        setting = mindcube_setting(row["id"])
        assert len(row["images"]) >= 2 and isinstance(row["category"], list)
        for rel in row["images"]:
            assert (
                rel.startswith(f"other_all_image/{setting}/") and (data / rel).is_file()
            )  # relative to data/
        assert f"{row['gt_answer']}. " in row["question"]  # options inline: "A. Left B. Right ..."
    assert rows[0]["images"] == rows[1]["images"]  # two questions on one group's views
    # The reply format the authors' prompt asks for: <answer>A. Above</answer>.
    scored = [{**r, "score": mindcube_score(r, f"<answer>{r['gt_answer']}. x</answer>")} for r in rows]
    out = mindcube_aggregate(scored)
    assert out["overall"] == pytest.approx(100.0)
    assert set(out["per_type"]) == set(MINDCUBE_FIXTURE_SETTINGS)


def _digest(root: Path) -> str:
    names = [
        "VSI-Bench/test_debiased.parquet",
        "MMSI-Bench/MMSI_Bench.parquet",
        "MindCube/data/raw/MindCube_tinybench.jsonl",
    ]
    return hashlib.sha256(b"".join((root / n).read_bytes() for n in names)).hexdigest()


def test_extended_fixtures_are_deterministic(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    make_extended_fixtures(a, seed=3, per_type=1)
    make_extended_fixtures(b, seed=3, per_type=1)
    make_extended_fixtures(c, seed=4, per_type=1)
    assert _digest(a) == _digest(b) != _digest(c)
    assert not pq.read_table(a / "VSI-Bench" / "test_pruned.parquet").num_rows  # per_type 1: nothing pruned
    with pytest.raises(ValueError, match="per_type"):
        make_extended_fixtures(tmp_path / "d", per_type=0)
