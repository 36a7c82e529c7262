"""data/prepare.py through its real code path, with --source standing in for the Hub: a folder per
repository (<owner>/<name>) built from the synthetic dataset and the eval fixtures, media zipped."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from spatialladder.demo.benchmark_fixtures import make_fixtures
from spatialladder.synthetic import generate_dataset

ROOT = Path(__file__).resolve().parents[1]


def _prepare_module():
    spec = importlib.util.spec_from_file_location("prepare", ROOT / "data" / "prepare.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["prepare"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _zip(folder: Path, zip_path: Path, *, keep_folder: bool) -> None:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(
                    p, (Path(folder.name) / p.relative_to(folder)) if keep_folder else p.relative_to(folder)
                )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local copy of every Hub repository prepare.py fetches, laid out like the repository."""
    work, hub = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("hub")
    ds = generate_dataset(work / "spld", num_scenes=1, image_size=(64, 48), video_frames=4, num_views=8)
    repo = hub / "hongxingli" / "SpatialLadder-26k"
    repo.mkdir(parents=True)
    for k in ("grounding", "spatial", "coldstart"):
        shutil.copy(ds[k], repo / ds[k].name)
    _zip(ds["media"], repo / "images.zip", keep_folder=False)  # scene folders at the zip's top level

    fx = make_fixtures(work / "fx", per_type=1, image_size=(64, 48), video_frames=4)
    vsi = hub / "nyu-visionx" / "VSI-Bench"
    vsi.mkdir(parents=True)
    shutil.copy(fx["VSI-Bench"] / "test-00000-of-00001.parquet", vsi)
    for name in ("arkitscenes", "scannet"):
        _zip(fx["VSI-Bench"] / name, vsi / f"{name}.zip", keep_folder=True)  # "scannet/scene....mp4" inside
    (work / "scannetpp").mkdir()
    (work / "scannetpp" / "README").write_text("no scannetpp videos in the fixture\n")
    _zip(work / "scannetpp", vsi / "scannetpp.zip", keep_folder=True)
    spb = hub / "hongxingli" / "SPBench"
    spb.mkdir(parents=True)
    for f in ("SPBench-SI.parquet", "SPBench-MV.parquet"):
        shutil.copy(fx["SPBench-SI"] / f, spb)
    _zip(fx["SPBench-SI"] / "images", spb / "images.zip", keep_folder=True)
    cvb = hub / "nyu-visionx" / "CV-Bench"
    shutil.copytree(fx["CV-Bench"], cvb)
    shutil.copytree(fx["SPAR-Bench"], hub / "jasonzhango" / "SPAR-Bench")
    vs = hub / "lidingm" / "ViewSpatial-Bench"
    vs.mkdir(parents=True)
    shutil.copy(fx["ViewSpatial-Bench"] / "ViewSpatial-Bench.json", vs)
    for name in ("scannetv2_val", "val2017"):
        _zip(fx["ViewSpatial-Bench"] / name, vs / f"{name}.zip", keep_folder=True)
    shutil.copy(fx["VSI-Bench-Debiased"] / "test_debiased.parquet", vsi)
    mmsi = hub / "RunsenXu" / "MMSI-Bench"
    mmsi.mkdir(parents=True)
    shutil.copy(fx["MMSI-Bench"] / "MMSI_Bench.parquet", mmsi)
    mindcube = hub / "MLL-Lab" / "MindCube"
    mindcube.mkdir(parents=True)
    _zip(fx["MindCube-Tiny"] / "data", mindcube / "data.zip", keep_folder=True)  # "data/raw/..." inside
    return hub


def test_prepare_lays_out_everything_and_checks_it(hub: Path, tmp_path: Path, capsys) -> None:
    prep = _prepare_module()
    assert prep.main(["--source", str(hub), "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count(": OK") == 9 and "PROBLEM" not in out
    assert "validated spld_spatial_data.jsonl" in out
    # the layouts the trainers and eval/ read
    spld = tmp_path / "SpatialLadder-26k"
    assert (spld / "images" / "scene0000_00").is_dir() and not (spld / "images" / "images").exists()
    bench = tmp_path / "benchmarks"
    assert (
        any((bench / "VSI-Bench" / "scannet").glob("*.mp4"))
        and not (bench / "VSI-Bench" / "scannet" / "scannet").exists()
    )
    assert (bench / "SPBench" / "images").is_dir() and (bench / "SPAR-Bench" / "data").is_dir()
    assert (bench / "MindCube" / "data" / "raw" / "MindCube_tinybench.jsonl").is_file()
    assert not (bench / "MindCube" / "data" / "data").exists()
    for name in ("VSI-Bench", "SPBench-SI", "SPBench-MV", "CV-Bench", "SPAR-Bench", "ViewSpatial-Bench",
                 "VSI-Bench-Debiased", "MMSI-Bench", "MindCube-Tiny"):
        assert f"{name}: " in out and "all media present" in out
    # a rerun does not unpack again
    assert prep.main(["--source", str(hub), "--data-root", str(tmp_path), "--only", "VSI-Bench"]) == 0
    assert "already done" in capsys.readouterr().out


def test_prepare_reports_a_corrupt_zip_and_a_missing_file(hub: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "hub"
    shutil.copytree(hub, bad)
    zpath = bad / "lidingm" / "ViewSpatial-Bench" / "val2017.zip"
    data = bytearray(zpath.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"\0" * 64  # damage a member's compressed bytes
    zpath.write_bytes(bytes(data))
    (bad / "nyu-visionx" / "CV-Bench" / "test_3d.parquet").unlink()
    prep = _prepare_module()
    assert prep.main(["--source", str(bad), "--data-root", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "!! MISSING nyu-visionx/CV-Bench/test_3d.parquet" in out
    assert f"!! CORRUPT {zpath}: corrupt zip" in out
    # ViewSpatial's json and other zip were still placed; its loader reports the images the bad zip held
    assert "MISSING MEDIA ViewSpatial-Bench" in out and "val2017" in out
    # everything else was prepared and checked
    for name in ("SpatialLadder-26k", "VSI-Bench", "SPBench", "SPAR-Bench"):
        assert f"== {name}: OK" in out
    assert "2 of 9 target(s) incomplete" in out
    assert (tmp_path / "data" / "benchmarks" / "CV-Bench" / "test_2d.parquet").is_file()
    assert (tmp_path / "data" / "benchmarks" / "ViewSpatial-Bench" / "scannetv2_val").is_dir()
