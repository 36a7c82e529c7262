"""Fetch SpatialLadder-26k, the paper's six evaluation benchmarks and the three extended ones from the
Hugging Face Hub and lay them out as the trainers and ``eval/`` expect.

    python data/prepare.py                          # everything, into data/
    python data/prepare.py --only SpatialLadder-26k VSI-Bench
    python data/prepare.py --source /mirror         # no download: /mirror/<owner>/<name> per Hub repo

Result (``--data-root``, default this folder)::

    SpatialLadder-26k/spld_{grounding,spatial,coldstart}_data.jsonl + images/<scene>/<frame>.jpg
    benchmarks/VSI-Bench/test-00000-of-00001.parquet + {arkitscenes,scannet,scannetpp}/<scene>.mp4
    benchmarks/SPBench/SPBench-{SI,MV}.parquet + images/<scene>/<frame>
    benchmarks/CV-Bench/test_{2d,3d}.parquet
    benchmarks/SPAR-Bench/data/test-*.parquet
    benchmarks/ViewSpatial-Bench/ViewSpatial-Bench.json + scannetv2_val/..., val2017/...
    benchmarks/VSI-Bench/test_debiased.parquet            (VSI-Bench-Debiased, VSI-Bench's videos)
    benchmarks/MMSI-Bench/MMSI_Bench.parquet              (images embedded)
    benchmarks/MindCube/data/raw/MindCube_tinybench.jsonl + data/other_all_image/...

so training uses ``DATA_DIR=data/SpatialLadder-26k`` and evaluation ``--data-root data/benchmarks``.
Every media zip is checked and unpacked (a leading folder named like its destination is not
doubled; a finished zip is not unpacked again on a rerun). Then the training files go through the
project's validator and every benchmark through its own loader, with every media file it names
checked on disk. Anything missing or broken is reported by file and the rest is still prepared;
the exit status is 1 when anything was reported.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Target:
    """One Hub dataset repository and where it goes.

    ``files``: patterns of files copied keeping their relative paths (each must match something);
    ``zips``: (pattern, destination folder relative to the target folder); ``benchmarks``: names of
    the eval loaders that read the target folder (empty: the training files, checked by the validator)."""

    name: str
    repo_id: str
    folder: str
    files: tuple[str, ...]
    zips: tuple[tuple[str, str], ...] = ()
    benchmarks: tuple[str, ...] = ()


TARGETS: tuple[Target, ...] = (
    Target("SpatialLadder-26k", "hongxingli/SpatialLadder-26k", "SpatialLadder-26k",
           ("spld_grounding_data.jsonl", "spld_spatial_data.jsonl", "spld_coldstart_data.jsonl"),
           (("images.zip", "images"),)),
    Target("VSI-Bench", "nyu-visionx/VSI-Bench", "benchmarks/VSI-Bench", ("test-00000-of-00001.parquet",),
           (("arkitscenes.zip", "arkitscenes"), ("scannet.zip", "scannet"), ("scannetpp.zip", "scannetpp")),
           ("VSI-Bench",)),
    # The SPBench repository's media zip names are not confirmed: every zip in it is unpacked into images/.
    Target("SPBench", "hongxingli/SPBench", "benchmarks/SPBench", ("SPBench-SI.parquet", "SPBench-MV.parquet"),
           (("*.zip", "images"),), ("SPBench-SI", "SPBench-MV")),
    Target("CV-Bench", "nyu-visionx/CV-Bench", "benchmarks/CV-Bench", ("test_2d.parquet", "test_3d.parquet"),
           (), ("CV-Bench",)),
    Target("SPAR-Bench", "jasonzhango/SPAR-Bench", "benchmarks/SPAR-Bench", ("data/test-*.parquet",), (),
           ("SPAR-Bench",)),
    Target("ViewSpatial-Bench", "lidingm/ViewSpatial-Bench", "benchmarks/ViewSpatial-Bench",
           ("ViewSpatial-Bench.json",), (("scannetv2_val.zip", "scannetv2_val"), ("val2017.zip", "val2017")),
           ("ViewSpatial-Bench",)),
    # The extended benchmarks (docs/benchmarks.md). VSI-Bench-Debiased is a file of the VSI-Bench repository
    # beside the full set, read with VSI-Bench's videos; its own target so a missing file stays its problem.
    Target("VSI-Bench-Debiased", "nyu-visionx/VSI-Bench", "benchmarks/VSI-Bench", ("test_debiased.parquet",),
           (), ("VSI-Bench-Debiased",)),
    Target("MMSI-Bench", "RunsenXu/MMSI-Bench", "benchmarks/MMSI-Bench", ("MMSI_Bench.parquet",), (),
           ("MMSI-Bench",)),
    Target("MindCube-Tiny", "MLL-Lab/MindCube", "benchmarks/MindCube", (), (("data.zip", "data"),),
           ("MindCube-Tiny",)),
)  # fmt: skip
TARGETS_BY_NAME = {t.name: t for t in TARGETS}
MAX_LISTED = 10


@dataclass
class Report:
    name: str
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def fetch(target: Target, source: Path | None) -> Path:
    """The folder holding the repository's files: ``source/<owner>/<name>``, or a Hub snapshot."""
    if source is not None:
        path = source / target.repo_id
        if not path.is_dir():
            raise FileNotFoundError(
                f"{path}: no such folder (expected a copy of the Hub repository {target.repo_id})"
            )
        return path
    from huggingface_hub import snapshot_download

    patterns = [*target.files, *(z for z, _ in target.zips)]
    return Path(snapshot_download(repo_id=target.repo_id, repo_type="dataset", allow_patterns=patterns))


def matches(src: Path, pattern: str) -> list[Path]:
    return sorted(p for p in src.glob(pattern) if p.is_file())


def place(src_file: Path, dst: Path) -> None:
    """Hard link (same disk) or copy; an up-to-date copy is kept."""
    if dst.exists() and dst.stat().st_size == src_file.stat().st_size:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src_file.resolve(), dst)
    except OSError:
        shutil.copy2(src_file, dst)


def unpack(zip_path: Path, dest: Path) -> int:
    """Unpack ``zip_path`` into ``dest`` (a leading ``<dest.name>/`` folder inside the zip is dropped);
    returns the number of files. Raises ValueError naming the zip when it is corrupt or unsafe."""
    marker = dest.parent / f".unpacked-{dest.name}-{zip_path.name}.json"
    stamp = {"zip": zip_path.name, "size": zip_path.stat().st_size}
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return -1
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            names = [m.filename for m in members]
            for n in names:
                if n.startswith("/") or ".." in Path(n).parts:
                    raise ValueError(f"{zip_path}: unsafe member path {n!r}")
            strip = bool(names) and all(n.startswith(dest.name + "/") for n in names)
            partial = dest.parent / f".partial-{dest.name}"
            shutil.rmtree(partial, ignore_errors=True)
            for m in members:
                rel = m.filename[len(dest.name) + 1 :] if strip else m.filename
                out = partial / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as fin, open(out, "wb") as fout:
                    shutil.copyfileobj(fin, fout)  # a bad CRC or truncated data raises here
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        shutil.rmtree(dest.parent / f".partial-{dest.name}", ignore_errors=True)
        raise ValueError(f"{zip_path}: corrupt zip ({exc})") from None
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(partial.rglob("*")):
        if p.is_file():
            target = dest / p.relative_to(partial)
            target.parent.mkdir(parents=True, exist_ok=True)
            p.replace(target)
    shutil.rmtree(partial, ignore_errors=True)
    marker.write_text(json.dumps(stamp))
    return len(members)


def check_training(folder: Path, report: Report) -> None:
    from spatialladder.data import DatasetValidationError, load_records

    for f in sorted(folder.glob("spld_*_data.jsonl")):
        try:
            records = load_records(f, folder / "images", progress=False)
        except DatasetValidationError as exc:
            report.problems += [f"INVALID {p}" for p in exc.problems[:MAX_LISTED]]
            if len(exc.problems) > MAX_LISTED:
                report.problems.append(f"INVALID {f}: ... {len(exc.problems) - MAX_LISTED} more problem(s)")
            continue
        report.done.append(f"validated {f.name}: {len(records)} rows")


def check_benchmark(data_root: Path, name: str, report: Report) -> None:
    from spatialladder.evaluation.benchmarks import get_benchmark

    try:
        docs = get_benchmark(name).load_docs(data_root)
    except (ValueError, OSError) as exc:  # BenchmarkDataError is a ValueError
        report.problems.append(f"UNREADABLE {name}: {exc}")
        return
    missing = sorted({m.describe() for d in docs for m in d["_media"] if not m.exists()})
    if missing:
        report.problems.append(
            f"MISSING MEDIA {name}: {len(missing)} file(s), e.g. " + ", ".join(missing[:3])
        )
    else:
        report.done.append(f"{name}: {len(docs)} questions, all media present")


def prepare(target: Target, data_root: Path, source: Path | None, check: bool = True) -> Report:
    report = Report(target.name)
    dest = data_root / target.folder
    try:
        src = fetch(target, source)
    except Exception as exc:  # network, authentication, a missing mirror: report and go on
        report.problems.append(f"FETCH FAILED {target.repo_id}: {exc}")
        return report
    for pattern in target.files:
        found = matches(src, pattern)
        if not found:
            report.problems.append(f"MISSING {target.repo_id}/{pattern} (looked in {src})")
        for f in found:
            place(f, dest / f.relative_to(src))
            report.done.append(f"file {f.relative_to(src)}")
    for pattern, sub in target.zips:
        found = [z for z in matches(src, pattern) if fnmatch.fnmatch(z.name, Path(pattern).name)]
        if not found:
            report.problems.append(f"MISSING {target.repo_id}/{pattern} (media zip, looked in {src})")
        for z in found:
            try:
                n = unpack(z, dest / sub)
            except ValueError as exc:
                report.problems.append(f"CORRUPT {exc}")
                continue
            report.done.append(f"unpacked {z.name} -> {sub}/ ({'already done' if n < 0 else f'{n} files'})")
    if check:
        if target.benchmarks:
            for name in target.benchmarks:
                check_benchmark(data_root / "benchmarks", name, report)
        else:
            check_training(dest, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=HERE, help="where to lay the data out (default: data/)")
    p.add_argument("--source", type=Path, default=None,
                   help="local folder with one copy per Hub repository (<owner>/<name>) instead of downloading")  # fmt: skip
    p.add_argument("--only", nargs="+", choices=sorted(TARGETS_BY_NAME), default=None)
    p.add_argument("--no-check", action="store_true", help="skip the validator and the benchmark loaders")
    args = p.parse_args(argv)
    targets = [TARGETS_BY_NAME[n] for n in args.only] if args.only else list(TARGETS)
    reports = [prepare(t, args.data_root, args.source, check=not args.no_check) for t in targets]
    bad = 0
    for r in reports:
        print(f"== {r.name}: {'OK' if not r.problems else f'{len(r.problems)} PROBLEM(S)'}")
        for line in r.done:
            print(f"   {line}")
        for line in r.problems:
            print(f"   !! {line}")
        bad += bool(r.problems)
    if bad:
        print(f"{bad} of {len(reports)} target(s) incomplete: see the !! lines above")
        return 1
    print(f"all {len(reports)} target(s) prepared under {args.data_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
