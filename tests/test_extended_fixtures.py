"""The extended benchmarks' miniatures (written by fixtures.make_fixtures with the six) read back: real
file names, columns and media layout, every question type / setting, and rows their benchmark modules
score as the authors would."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatialladder.evaluation.benchmarks import BENCHMARKS, BenchmarkDataError
from spatialladder.evaluation.benchmarks.mindcube import TINY_SETTINGS as MINDCUBE_FIXTURE_SETTINGS
from spatialladder.evaluation.benchmarks.mindcube import setting as mindcube_setting
from spatialladder.evaluation.benchmarks.mmsibench import QUESTION_TYPES as MMSI_QUESTION_TYPES
from spatialladder.evaluation.media import FrameCache
from spatialladder.evaluation.scoring import QUESTION_TYPES, aggregate, score_sample
from spatialladder.geometry import ResizeRule
from spatialladder.prompts import build_prompt

REPO_ROOT = Path(__file__).resolve().parents[1]
PER_TYPE = 2
VSI_COLUMNS = ["id", "dataset", "scene_name", "question_type", "question", "options", "ground_truth"]
MINDCUBE_KEYS = ["id", "category", "type", "meta_info", "question", "images", "gt_answer"]


@pytest.fixture(scope="module")
def fx(eval_fixtures_dir: Path) -> Path:
    return eval_fixtures_dir  # make_fixtures(seed=0, per_type=PER_TYPE)


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
    scored = [{**r, "score": score_sample("VSI-Bench-Debiased", r, r["ground_truth"])} for r in debiased]
    assert all(r["score"] == 1.0 for r in scored)
    assert aggregate("VSI-Bench-Debiased", scored)["overall"] == pytest.approx(100.0)


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
    scored = [{**r, "score": score_sample("MMSI-Bench", r, f"`{r['answer']}`")} for r in rows]
    assert aggregate("MMSI-Bench", scored)["overall"] == pytest.approx(100.0)
    assert aggregate("MMSI-Bench", [{**r, "score": score_sample("MMSI-Bench", r, "E")} for r in rows])["overall"] == 0.0


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
    scored = [{**r, "score": score_sample("MindCube-Tiny", r, f"<answer>{r['gt_answer']}. x</answer>")} for r in rows]
    out = aggregate("MindCube-Tiny", scored)
    assert out["overall"] == pytest.approx(100.0)
    assert set(out["per_type"]) == set(MINDCUBE_FIXTURE_SETTINGS)


def test_extended_prompts_of_the_three_kinds(fx: Path) -> None:
    deb = BENCHMARKS["VSI-Bench-Debiased"]
    doc = deb.load_docs(fx)[0]
    for kind in ("official", "thinking", "direct"):  # VSI-Bench's prompts, unchanged
        assert deb.prompt_text(doc, kind) == BENCHMARKS["VSI-Bench"].prompt_text(doc, kind)

    mmsi = BENCHMARKS["MMSI-Bench"]
    doc = mmsi.load_docs(fx)[0]
    stem, options = doc["question"].split("\nOptions: ")
    assert mmsi.prompt_text(doc, "official") == (
        f"{doc['question']}\nAnswer with the option's letter from the given choices directly. "
        "Enclose the option's letter within ``."
    )
    lettered = [f"{o[0]}. {o[3:]}" for o in options.split(", ")]  # "A: left" -> "A. left"
    for kind in ("thinking", "direct"):
        assert mmsi.prompt_text(doc, kind) == build_prompt(stem, lettered, kind)  # type: ignore[arg-type]

    mind = BENCHMARKS["MindCube-Tiny"]
    doc = mind.load_docs(fx)[0]
    assert mind.prompt_text(doc, "official").endswith("'<answer>A. Above</answer>'.\n\n[Question]\n" + doc["question"])
    stem, rest = doc["question"].split(" A. ")
    texts = re.split(r" [B-D]\. ", rest)  # the fixture's options: "A. Left B. Right C. Front D. Behind"
    lettered = [f"{letter}. {text}" for letter, text in zip("ABCD", texts, strict=False)]
    assert len(lettered) == len(texts) >= 3
    for kind in ("thinking", "direct"):
        assert mind.prompt_text(doc, kind) == build_prompt(stem, lettered, kind)  # type: ignore[arg-type]


def test_extended_requests_send_the_images_in_file_order_before_the_text(fx: Path) -> None:
    media = FrameCache(None, resize=ResizeRule(28, 4 * 28 * 28, 64 * 28 * 28))
    mmsi = BENCHMARKS["MMSI-Bench"]
    doc = next(d for d in mmsi.load_docs(fx) if d["question_type"] == "MSR")  # 3-4 images
    raw = pq.read_table(fx / "MMSI-Bench" / "MMSI_Bench.parquet").to_pylist()[int(doc["doc_id"])]["images"]
    expected = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in raw]
    mind = BENCHMARKS["MindCube-Tiny"]
    mdoc = next(d for d in mind.load_docs(fx) if d["id"].startswith("around"))  # png views
    expected_mc = [np.asarray(Image.open(fx / "MindCube" / "data" / rel).convert("RGB")) for rel in mdoc["images"]]
    for bench, d, want in ((mmsi, doc, expected), (mind, mdoc, expected_mc)):
        parts = bench.build_request(d, prompt_kind="thinking", num_frames=4, media=media)[-1]["content"]
        assert [p["type"] for p in parts] == ["image"] * len(want) + ["text"]
        assert all(np.array_equal(np.asarray(p["image"]), w) for p, w in zip(parts, want, strict=False))
        assert parts[-1]["text"] == bench.prompt_text(d, "thinking")
    assert "images" not in mmsi.record(doc)  # embedded bytes stay out of prediction files
    assert json.loads(json.dumps(mind.record(mdoc)))["images"] == mdoc["images"]  # paths stay in


def _write_rows(path: Path, rows: list[dict[str, object]], schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def test_extended_loaders_refuse_bad_files_naming_the_row(fx: Path, tmp_path: Path) -> None:
    deb = BENCHMARKS["VSI-Bench-Debiased"]
    table = pq.read_table(fx / "VSI-Bench" / "test_debiased.parquet")
    rows = table.to_pylist()
    rows[1]["pruned"] = True
    _write_rows(tmp_path / "a" / "VSI-Bench" / "test_debiased.parquet", rows, table.schema)
    with pytest.raises(BenchmarkDataError, match=rf"row id={rows[1]['id']}: pruned: row is pruned"):
        deb.load_docs(tmp_path / "a")
    _write_rows(tmp_path / "b" / "test_debiased.parquet", table.drop_columns(["pruned"]).to_pylist())
    with pytest.raises(BenchmarkDataError, match=r"lacks column \['pruned'\]"):
        deb.load_docs(tmp_path / "b")  # a per-benchmark --data-root holding the file itself

    mmsi = BENCHMARKS["MMSI-Bench"]
    table = pq.read_table(fx / "MMSI-Bench" / "MMSI_Bench.parquet")
    _write_rows(tmp_path / "c" / "MMSI-Bench" / "MMSI_Bench.parquet", table.drop_columns(["answer"]).to_pylist())
    with pytest.raises(BenchmarkDataError, match=r"lacks column\(s\) \['answer'\]"):
        mmsi.load_docs(tmp_path / "c")
    rows = table.to_pylist()
    rows[3]["answer"] = "E"
    _write_rows(tmp_path / "d" / "MMSI-Bench" / "MMSI_Bench.parquet", rows, table.schema)
    with pytest.raises(BenchmarkDataError, match=r"row id=3: answer: expected an option letter A-D, got 'E'"):
        mmsi.load_docs(tmp_path / "d")

    mind = BENCHMARKS["MindCube-Tiny"]
    lines = (fx / "MindCube" / "data" / "raw" / "MindCube_tinybench.jsonl").read_text().splitlines()
    bad = tmp_path / "e" / "MindCube" / "data" / "raw" / "MindCube_tinybench.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text("\n".join([lines[0], json.dumps({**json.loads(lines[1]), "gt_answer": ""}), *lines[2:]]) + "\n")
    with pytest.raises(BenchmarkDataError, match=rf"{re.escape(str(bad))}:2: gt_answer: expected one option letter"):
        mind.load_docs(tmp_path / "e")
    bad.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(BenchmarkDataError, match=r"jsonl:2: not JSON"):
        mind.load_docs(tmp_path / "e")
    bad.write_text(json.dumps({k: v for k, v in json.loads(lines[0]).items() if k != "images"}) + "\n")
    with pytest.raises(BenchmarkDataError, match=r"jsonl:1 lacks column\(s\) \['images'\]"):
        mind.load_docs(tmp_path / "e")


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_score_cli_on_the_datasets_own_fields(fx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """eval/score.py on lines holding the dataset's own fields + prediction (the released files' rows)."""
    lines = (fx / "MindCube" / "data" / "raw" / "MindCube_tinybench.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]  # among, among, around, aroundnew, rotation, rotation
    gts = [r["gt_answer"] for r in rows]
    replies = [f"<answer>{gts[0]}. x</answer>", "A" if gts[1] != "A" else "B", f"The answer is ({gts[2]}).",
               gts[3].lower(), gts[4], f"Near the TABLE. So {gts[5]}"]  # fmt: skip
    preds = _jsonl(tmp_path / "mindcube.jsonl", [{**r, "prediction": p} for r, p in zip(rows, replies, strict=True)])
    per_sample = tmp_path / "scored.jsonl"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "eval" / "score.py"), "--benchmark", "MindCube-Tiny",
                           "--predictions", str(preds), "--per-sample", str(per_sample)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # 1 / 0 / 1 (stage 4) / 0 (lower case) / 1 / 0 (stage 1 reads the E of "TABLE."): 50 % per setting.
    assert json.loads(proc.stdout) == {
        "benchmark": "MindCube-Tiny", "scorer": "official", "n": 6, "overall": 50.0,
        "around": 50.0, "rotation": 50.0, "among": 50.0,
        "per_type": {"around": 50.0, "rotation": 50.0, "among": 50.0}, "groups": {},
    }  # fmt: skip
    scored = [json.loads(line) for line in per_sample.read_text(encoding="utf-8").splitlines()]
    assert [r["score"] for r in scored] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0] and scored[0]["meta_info"] == rows[0]["meta_info"]

    score_cli = _load_score_cli()
    table = pq.read_table(fx / "MMSI-Bench" / "MMSI_Bench.parquet").drop_columns(["images"]).to_pylist()
    table[0]["question_type"] = table[0]["question_type"].replace(".\u2013", ".-")  # the hyphen spelling
    mmsi_rows = [{**r, "prediction": f"`{r['answer']}`" if i % 2 == 0 else "A chair"} for i, r in enumerate(table)]
    assert score_cli.main(["--benchmark", "MMSI-Bench", "--predictions", str(_jsonl(tmp_path / "m.jsonl", mmsi_rows))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 22 and out["overall"] == 50.0  # 11 of 22; two rows per type, the first one right
    assert out["per_type"] == dict.fromkeys(MMSI_QUESTION_TYPES, 50.0)

    deb = pq.read_table(fx / "VSI-Bench" / "test_debiased.parquet").to_pylist()
    deb_rows = [{**r, "prediction": r["ground_truth"]} for r in deb]
    assert score_cli.main(["--benchmark", "VSI-Bench-Debiased", "--predictions",
                           str(_jsonl(tmp_path / "d.jsonl", deb_rows))]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert (out["n"], out["overall"], out["groups"]) == (10, 100.0, {"MCQ": 100.0, "NQ": 100.0})
    bad = _jsonl(tmp_path / "bad.jsonl", [deb_rows[0], {**deb_rows[1], "pruned": True}])
    assert score_cli.main(["--benchmark", "VSI-Bench-Debiased", "--predictions", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"{bad}:2: pruned: row is pruned (True)")


def _load_score_cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_score_cli_ext", REPO_ROOT / "eval" / "score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
