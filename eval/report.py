#!/usr/bin/env python
"""Write report.md / report.csv (paper layout, paper rows beside the evaluated models).

    python eval/report.py --results-dir OUT [--output-dir DIR] [--scorer official|spatialladder]

``--scorer`` re-scores runs that were scored with the other scorer from their predictions.jsonl. A
``learning.json`` in the results dir (the learning demo) puts its table first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spatialladder.demo.learning import learning_preface
from spatialladder.evaluation.benchmarks import SCORERS
from spatialladder.evaluation.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", required=True, type=Path, help="the --output-dir of run_eval")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: the results dir")
    parser.add_argument("--scorer", choices=SCORERS, default=None, help="default: as each run was scored")
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        parser.error(f"{args.results_dir} is not a directory")
    md, csv = write_report(args.results_dir, args.output_dir, scorer=args.scorer,
                           preface=learning_preface(args.results_dir))  # fmt: skip
    print(md)
    print(csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
