#!/usr/bin/env python
"""Score a benchmark's predictions file.

    python eval/score.py --benchmark NAME --predictions FILE.jsonl \
        [--scorer official|spatialladder] [--per-sample OUT.jsonl]

Each input line is one JSON object: the benchmark's own fields (see
``spatialladder.evaluation.scoring.REQUIRED_FIELDS``) plus ``prediction``, the model's raw reply.
Prints ONE JSON object to stdout: ``benchmark``, ``scorer``, ``n``, ``overall``, every per-type and
per-group score in percent as flat keys, and the same nested under ``per_type`` / ``groups``.
``--per-sample`` writes every input record back with an added ``score`` in [0, 1].

Bad input (malformed JSON, a missing field, an unknown question type, ...) exits with code 2 and a
``FILE:LINE: FIELD: message`` line on stderr; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spatialladder.evaluation.scoring import (
    BENCHMARKS,
    SCORERS,
    ScoringInputError,
    aggregate,
    score_sample,
)

EXIT_BAD_INPUT = 2


class _BadInput(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    parser.add_argument(
        "--predictions", required=True, type=Path, help="JSONL: benchmark fields + prediction"
    )
    parser.add_argument("--scorer", default="official", choices=SCORERS)
    parser.add_argument(
        "--per-sample", type=Path, default=None, help="write records with an added score here"
    )
    return parser


def _score_file(path: Path, benchmark: str, scorer: str) -> list[dict[str, Any]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as err:
        raise _BadInput(f"{path}:0: predictions: cannot open: {err.strerror or err}") from None
    scored: list[dict[str, Any]] = []
    with handle:
        lineno = 0
        try:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue  # blank lines (e.g. a trailing newline) carry no record
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise _BadInput(f"{path}:{lineno}: json: {err.msg} (column {err.colno})") from None
                if not isinstance(record, dict):
                    raise _BadInput(
                        f"{path}:{lineno}: json: expected a JSON object, got {type(record).__name__}"
                    )
                if "prediction" not in record:
                    raise _BadInput(f"{path}:{lineno}: prediction: missing field")
                try:
                    score = score_sample(benchmark, record, record["prediction"], scorer=scorer)
                except ScoringInputError as err:
                    raise _BadInput(f"{path}:{lineno}: {err}") from None
                scored.append({**record, "score": score})
        except UnicodeDecodeError as err:
            raise _BadInput(f"{path}:{lineno + 1}: json: not UTF-8 ({err.reason})") from None
    if not scored:
        raise _BadInput(f"{path}:0: predictions: no records")
    return scored


def _report(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: summary[k] for k in ("benchmark", "scorer", "n", "overall")}
    for key, value in (*summary["per_type"].items(), *summary["groups"].items()):
        out.setdefault(key, value)  # flat copies; the reserved keys above always win
    out["per_type"] = summary["per_type"]
    out["groups"] = summary["groups"]
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code) if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        scored = _score_file(args.predictions, args.benchmark, args.scorer)
        try:
            summary = aggregate(args.benchmark, scored, scorer=args.scorer)
        except ScoringInputError as err:  # cannot happen after score_sample validated every record
            raise _BadInput(f"{args.predictions}:0: {err}") from None
    except _BadInput as err:
        print(err, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.per_sample is not None:
        args.per_sample.parent.mkdir(parents=True, exist_ok=True)
        with args.per_sample.open("w", encoding="utf-8") as out:
            for record in scored:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(json.dumps(_report(summary), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
