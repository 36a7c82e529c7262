"""``python -m spatialladder.construction build --scannet-root DIR --out OUT [--scenes ID ...] [--seed N]
[--max-per-type N]``: build SpatialLadder-26k-format files from scans in the ScanNet layout.

Each finished scene is saved under ``OUT/.scenes/`` first, so a rerun of the same command skips the
scenes already done (built with the same settings) and only re-assembles the files. A scene that
cannot be read is reported by name and file and the others are still built (exit status 1)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from spatialladder.construction.build import (
    IMAGES_DIR,
    BuildConfig,
    assemble,
    build_and_save_scene,
    load_part,
)
from spatialladder.construction.project import VisibilityConfig
from spatialladder.construction.scannet import (
    EXCLUDED_LABELS,
    ScanNetFormatError,
    list_scenes,
    load_label_map,
    read_scene,
    scene_dir,
)
from spatialladder.synthetic.generate import COLDSTART_FILE, GROUNDING_FILE, SPATIAL_FILE


def build_dataset(
    scannet_root: str | Path,
    out: str | Path,
    cfg: BuildConfig = BuildConfig(),
    *,
    scenes: Sequence[str] | None = None,
    label_map: dict[str, str] | None = None,
    progress: bool = True,
    validate: bool = True,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Build (or resume) a dataset; returns (stats, {scene id: error} for scenes that failed)."""
    root, out = Path(scannet_root), Path(out)
    ids = list(scenes) if scenes else list_scenes(root)
    if not ids:
        raise FileNotFoundError(f"{root}: no ScanNet scene folders (<scene>/<scene>.aggregation.json)")
    missing = [s for s in ids if not scene_dir(root, s).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root}: scene folder(s) not found: {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    parts, errors, resumed = [], {}, 0
    bar = tqdm(ids, desc="scenes", unit="scene", disable=not progress)
    for sid in bar:
        bar.set_postfix_str(sid)
        part = load_part(out, sid, cfg)
        if part is not None:
            resumed += 1
        else:
            try:
                scan = read_scene(scene_dir(root, sid), label_map=label_map, excluded_labels=EXCLUDED_LABELS)
            except (ScanNetFormatError, OSError, ValueError) as exc:
                errors[sid] = str(exc)
                continue
            part = build_and_save_scene(scan, out, cfg)
        parts.append(part)
    stats = assemble(out, parts, cfg)
    stats["resumed_scenes"] = resumed
    stats["failed_scenes"] = errors
    if validate:
        from spatialladder.data import load_records

        for name in (GROUNDING_FILE, SPATIAL_FILE, COLDSTART_FILE):
            load_records(out / name, out / IMAGES_DIR, num_views=cfg.num_views, progress=False)
    return stats, errors


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spatialladder.construction", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the three jsonl files, images/, stats.json and stats.md")
    b.add_argument("--scannet-root", required=True, type=Path, help="folder of scene folders (or its scans/)")
    b.add_argument("--out", required=True, type=Path)
    b.add_argument(
        "--scenes", nargs="+", default=None, metavar="ID", help="default: every scene under the root"
    )
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-per-type", type=int, default=None, help="per scene, question type and data type")
    b.add_argument("--video-frames", type=int, default=16)
    b.add_argument("--num-views", type=int, default=8)
    b.add_argument("--coldstart-fraction", type=float, default=0.5)
    b.add_argument("--label-map", type=Path, default=None, help="scannetv2-labels.combined.tsv")
    b.add_argument("--label-column", default="category", help="its column naming the category")
    b.add_argument("--no-validate", action="store_true")
    b.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.max_per_type is not None and args.max_per_type < 1:
        p.error("--max-per-type must be >= 1")
    cfg = BuildConfig(seed=args.seed, max_per_type=args.max_per_type, video_frames=args.video_frames,
                      num_views=args.num_views, coldstart_fraction=args.coldstart_fraction,
                      visibility=VisibilityConfig())  # fmt: skip
    label_map = load_label_map(args.label_map, args.label_column) if args.label_map else None
    stats, errors = build_dataset(args.scannet_root, args.out, cfg, scenes=args.scenes, label_map=label_map,
                                  progress=not args.no_progress, validate=not args.no_validate)  # fmt: skip
    print((args.out / "stats.md").read_text(encoding="utf-8"))
    print(f"resumed {stats['resumed_scenes']} scene(s); wrote {args.out}")
    for sid, err in errors.items():
        print(f"FAILED scene {sid}: {err}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
