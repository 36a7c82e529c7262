"""Benchmark loaders on the miniature fixtures: real columns and types, every question type, stable
ids, seeded subsets, prompts of the three kinds, requests with decoded media."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatialladder.demo.benchmark_fixtures import make_fixtures
from spatialladder.evaluation.benchmarks import (
    BENCHMARKS,
    BenchmarkDataError,
    get_benchmark,
    resolve_benchmarks,
)
from spatialladder.evaluation.benchmarks.base import natural_key, seeded_subset
from spatialladder.evaluation.media import FrameCache
from spatialladder.evaluation.scoring import QUESTION_TYPES, REQUIRED_FIELDS, TYPE_FIELD, score_sample
from spatialladder.prompts import build_prompt

PER_TYPE = 2


@pytest.fixture(scope="module")
def fx(eval_fixtures_dir: Path) -> Path:
    return eval_fixtures_dir  # seed 0, PER_TYPE questions per type


def _schema(path: Path) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in pq.read_schema(path)}


def test_fixture_files_have_real_layout_and_column_types(fx: Path) -> None:
    vsi = _schema(fx / "VSI-Bench" / "test-00000-of-00001.parquet")
    assert vsi == {"id": pa.int64(), "dataset": pa.string(), "scene_name": pa.string(),
                   "question_type": pa.string(), "question": pa.string(),
                   "options": pa.list_(pa.string()), "ground_truth": pa.string()}  # fmt: skip
    for split in ("SPBench-SI", "SPBench-MV"):
        s = _schema(fx / "SPBench" / f"{split}.parquet")
        assert s["images"] == pa.list_(pa.string()) and s["ground_truth"] == pa.string()
    image_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for dim in ("2d", "3d"):
        s = _schema(fx / "CV-Bench" / f"test_{dim}.parquet")
        assert set(s) == {"idx", "type", "task", "image", "question", "choices", "answer", "prompt", "source"}
        assert s["image"] == image_t and s["choices"] == pa.list_(pa.string())
    spar = _schema(next((fx / "SPAR-Bench" / "data").glob("test-*.parquet")))
    assert set(spar) == {"id", "img_type", "format_type", "task", "source", "image", "question", "answer"}
    assert spar["image"] == pa.list_(image_t)
    items = json.loads((fx / "ViewSpatial-Bench" / "ViewSpatial-Bench.json").read_text())
    assert all(set(i) == {"question_type", "image_path", "question", "answer", "choices"} for i in items)
    assert all(p.startswith("ViewSpatial-Bench/") for i in items for p in i["image_path"])
    assert all(isinstance(i["choices"], str) and "\n" in i["choices"] for i in items)
    # VSI videos at <root>/<dataset>/<scene_name>.mp4, several questions per video
    rows = pq.read_table(fx / "VSI-Bench" / "test-00000-of-00001.parquet").to_pylist()
    per_video: dict[tuple[str, str], int] = {}
    for r in rows:
        assert (fx / "VSI-Bench" / r["dataset"] / f"{r['scene_name']}.mp4").is_file()
        per_video[(r["dataset"], r["scene_name"])] = per_video.get((r["dataset"], r["scene_name"]), 0) + 1
    assert min(per_video.values()) >= 3 and len(per_video) >= 3


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_load_docs_covers_every_type_and_scores(fx: Path, name: str) -> None:
    bench = BENCHMARKS[name]
    docs = bench.load_docs(fx)
    assert all(TYPE_FIELD[name] in d for d in docs)
    types = {d["task"] if name == "CV-Bench" else bench.question_type(d) for d in docs}  # MindCube: id -> setting
    expected = {"Count", "Relation", "Depth", "Distance"} if name == "CV-Bench" else set(QUESTION_TYPES[name])
    assert types == expected
    if name == "CV-Bench":
        assert {d["source"] for d in docs} == {"ADE20K", "COCO", "Omni3D"}
        assert len(docs) == 6 * PER_TYPE
    elif name == "VSI-Bench-Debiased":  # the fixture keeps half of each type, as create_pq.py prunes
        assert len(docs) == len(QUESTION_TYPES[name]) * PER_TYPE // 2
    else:
        assert len(docs) == len(QUESTION_TYPES[name]) * PER_TYPE
    ids = [d["doc_id"] for d in docs]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) for i in ids)
    assert ids == [d["doc_id"] for d in bench.load_docs(fx)]  # stable
    for doc in docs:
        assert doc["_media"] and all(m.exists() for m in doc["_media"])
        rec = bench.record(doc)
        json.dumps(rec)  # serialisable: no bytes, no numpy
        assert rec["doc_id"] == doc["doc_id"] and not any(k.startswith("_") for k in rec)
        assert all(f in rec for f in REQUIRED_FIELDS[name])
        assert "image" not in rec or name not in ("CV-Bench", "SPAR-Bench")
        assert 0.0 <= score_sample(name, rec, "A", scorer="official") <= 1.0


def test_doc_id_sorting_and_seeded_subset(fx: Path) -> None:
    assert sorted(["2D-10", "2D-9", "3D-0", "10", "9"], key=natural_key) == ["2D-9", "2D-10", "3D-0", "9", "10"]
    docs = BENCHMARKS["SPAR-Bench"].load_docs(fx)
    a = BENCHMARKS["SPAR-Bench"].load_docs(fx, limit=7, seed=3)
    b = BENCHMARKS["SPAR-Bench"].load_docs(fx, limit=7, seed=3)
    c = BENCHMARKS["SPAR-Bench"].load_docs(fx, limit=7, seed=4)
    assert [d["doc_id"] for d in a] == [d["doc_id"] for d in b] and len(a) == 7
    assert [d["doc_id"] for d in a] != [d["doc_id"] for d in c]
    order = [d["doc_id"] for d in docs]
    assert [order.index(d["doc_id"]) for d in a] == sorted(order.index(d["doc_id"]) for d in a)  # file order
    assert seeded_subset(docs, None) is docs and seeded_subset(docs, 10**6) is docs


def test_fixtures_are_deterministic(tmp_path: Path) -> None:
    a, b, c = (make_fixtures(tmp_path / n, seed=s, per_type=1) for n, s in (("a", 5), ("b", 5), ("c", 6)))

    def tables(paths: dict[str, Path]) -> list[bytes]:
        root = paths["VSI-Bench"].parent
        files = [f for ext in ("parquet", "json", "jsonl", "jpg", "png") for f in sorted(root.rglob(f"*.{ext}"))]
        return [f.read_bytes() for f in files]

    assert tables(a) == tables(b)
    assert tables(a) != tables(c)
    root = tmp_path / "a"
    assert set(a) == set(BENCHMARKS)  # a miniature of every registered benchmark
    assert (a["VSI-Bench-Debiased"], a["MMSI-Bench"], a["MindCube-Tiny"]) == (
        root / "VSI-Bench", root / "MMSI-Bench", root / "MindCube")  # fmt: skip
    assert not pq.read_table(root / "VSI-Bench" / "test_pruned.parquet").num_rows  # per_type 1: none pruned
    with pytest.raises(ValueError, match="per_type"):
        make_fixtures(tmp_path / "d", per_type=0)


def test_prompt_kinds(fx: Path) -> None:
    vsi = BENCHMARKS["VSI-Bench"].load_docs(fx)
    mc = next(d for d in vsi if d["question_type"] == "object_rel_distance")
    na = next(d for d in vsi if d["question_type"] == "object_counting")
    vsib = get_benchmark("vsi")
    assert vsib.prompt_text(na, "official") == (
        f"These are frames of a video.\n{na['question']}\nPlease answer the question using a single word or phrase."
    )
    assert vsib.prompt_text(mc, "official") == "\n".join([
        "These are frames of a video.", mc["question"], "Options:\n" + "\n".join(mc["options"]),
        "Answer with the option's letter from the given choices directly.",
    ])  # fmt: skip
    assert vsib.prompt_text(mc, "thinking") == build_prompt(mc["question"], mc["options"], "thinking")
    assert vsib.prompt_text(na, "direct") == build_prompt(na["question"], None, "direct")

    cv = BENCHMARKS["CV-Bench"].load_docs(fx)[0]
    assert BENCHMARKS["CV-Bench"].prompt_text(cv, "official") == cv["prompt"]
    assert "A. " in BENCHMARKS["CV-Bench"].prompt_text(cv, "direct")

    spar = BENCHMARKS["SPAR-Bench"]
    sdocs = {d["task"]: d for d in spar.load_docs(fx)}
    pm = sdocs["position_matching"]
    assert spar.prompt_text(pm, "official") == (
        "\n" + pm["question"] + "\n" + spar.OFFICIAL_BBOX_NOTE + "\nAnswer with the option's letter from the "
        "given choices directly."
    )
    direct = spar.prompt_text(sdocs["obj_spatial_relation_oo"], "direct")
    assert "Options:\nA. " in direct and direct.endswith("Answer with the option's letter from the given choices directly.")
    assert spar.prompt_text(sdocs["depth_prediction_oc"], "direct").endswith("Answer with a single number directly.")
    vci = spar.prompt_text(sdocs["view_change_infer"], "thinking")
    assert "<answer>" in vci and "numerical value" not in vci and "option letter" not in vci

    vs = BENCHMARKS["ViewSpatial-Bench"].load_docs(fx)[0]
    official = BENCHMARKS["ViewSpatial-Bench"].prompt_text(vs, "official")
    assert official == f"{vs['question']}\n{vs['choices']}\nReply only to the corresponding option.\nAnswer:"
    with pytest.raises(ValueError):
        BENCHMARKS["ViewSpatial-Bench"].prompt_text(vs, "grounding")


def test_build_request_decodes_media(fx: Path) -> None:
    from spatialladder.geometry import ResizeRule

    media = FrameCache(None, resize=ResizeRule(factor=28, min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28))
    vsi = BENCHMARKS["VSI-Bench"].load_docs(fx)[0]
    msgs = BENCHMARKS["VSI-Bench"].build_request(vsi, prompt_kind="official", num_frames=6, media=media)
    parts = msgs[-1]["content"]
    video = next(p for p in parts if p["type"] == "video")
    assert len(video["video"]) == 6 and all(isinstance(f, Image.Image) for f in video["video"])
    meta = video["video_metadata"]
    assert meta["total_num_frames"] == 24 and meta["frames_indices"][0] == 0 and meta["frames_indices"][-1] == 23
    assert parts[-1] == {"type": "text", "text": BENCHMARKS["VSI-Bench"].prompt_text(vsi, "official")}

    mv = BENCHMARKS["SPBench-MV"].load_docs(fx)[0]
    images = [p for p in BENCHMARKS["SPBench-MV"].build_request(mv, prompt_kind="direct", num_frames=6, media=media)[-1]["content"] if p["type"] == "image"]
    assert len(images) == len(mv["images"]) == 3
    spar = next(d for d in BENCHMARKS["SPAR-Bench"].load_docs(fx) if d["task"].endswith("_mv"))
    images = [p["image"] for p in BENCHMARKS["SPAR-Bench"].build_request(spar, prompt_kind="thinking", num_frames=6, media=media)[-1]["content"] if p["type"] == "image"]
    assert len(images) >= 3 and all(isinstance(i, Image.Image) and i.mode == "RGB" for i in images)


def test_missing_columns_fail_clearly(fx: Path, tmp_path: Path) -> None:
    table = pq.read_table(fx / "VSI-Bench" / "test-00000-of-00001.parquet").drop_columns(["ground_truth"])
    (tmp_path / "VSI-Bench").mkdir()
    pq.write_table(table, tmp_path / "VSI-Bench" / "test-00000-of-00001.parquet")
    with pytest.raises(BenchmarkDataError, match="ground_truth"):
        BENCHMARKS["VSI-Bench"].load_docs(tmp_path)
    with pytest.raises(BenchmarkDataError, match="no benchmark files"):
        BENCHMARKS["CV-Bench"].load_docs(tmp_path)


def test_resolve_benchmarks() -> None:
    assert resolve_benchmarks("all") == list(BENCHMARKS)
    assert resolve_benchmarks("CV-Bench VSI-Bench") == ["VSI-Bench", "CV-Bench"]
    assert resolve_benchmarks("spar,viewspatial") == ["SPAR-Bench", "ViewSpatial-Bench"]
    with pytest.raises(KeyError):
        resolve_benchmarks("MMBench")
