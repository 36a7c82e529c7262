#!/usr/bin/env python
"""Write miniature copies of every registered benchmark (real file layouts and column names) to OUT_DIR.

    python eval/make_fixtures.py OUT_DIR [--seed 0] [--per-type 2]

Then: eval/run_eval.sh --model M --data-root OUT_DIR --output-dir RESULTS ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spatialladder.demo.benchmark_fixtures import make_fixtures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-type", type=int, default=2, help="questions per question type")
    parser.add_argument("--video-frames", type=int, default=24)
    args = parser.parse_args(argv)
    for name, path in make_fixtures(args.out_dir, seed=args.seed, per_type=args.per_type,
                                    video_frames=args.video_frames).items():  # fmt: skip
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
