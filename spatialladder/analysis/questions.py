"""Questions for the analyses: any benchmark the eval harness loads, or a SpatialLadder-26k jsonl.

A SpatialLadder-26k-format spatial file (``spld_spatial_data.jsonl``) is wrapped in
:class:`SpatialJsonl`, which has the surface of a benchmark module (``NAME``, ``TYPE_FIELD``,
``prompt_text``, ``build_request``, ``record``), so the eval runner's shard loop generates for it
unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import get_benchmark
from spatialladder.evaluation.benchmarks.base import MediaItem, assign_doc_ids, seeded_subset
from spatialladder.evaluation.scoring import TYPE_FIELD, is_numeric_type

DEFAULT_LETTERS = "ABCDEFGH"
_OPTION_LETTER_RE = re.compile(r"^\s*\(?([A-Z])[.):]")


def default_media_root(jsonl: Path) -> Path:
    """``images/`` (the released dataset) or ``media/`` (the synthetic one) beside the file."""
    for name in ("images", "media"):
        if (jsonl.parent / name).is_dir():
            return jsonl.parent / name
    return jsonl.parent


class SpatialJsonl:
    """A SpatialLadder-26k spatial jsonl as a benchmark for the eval runner's shard loop."""

    NAME = "SpatialLadder-26k"
    TYPE_FIELD = "question_type"

    def __init__(self, path: str | Path, media_root: str | Path | None = None) -> None:
        self.path = Path(path)
        self.media_root = Path(media_root) if media_root else default_media_root(self.path)

    def load_docs(self, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Validated rows (the project's loader: errors name file, line and field) as docs."""
        from spatialladder.data import load_records

        # Media existence is checked by the caller (runner.find_missing_media, all files listed).
        records = load_records(self.path, self.media_root, kind="spatial", check_media=False)
        docs = [
            {"question": r.question, "options": r.options, "answer": r.answer, "question_type": r.question_type,
             "data_type": r.data_type, "images": [str(p) for p in r.images], "source": r.source,
             "_media": [MediaItem(kind="image", path=Path(p)) for p in r.images]}
            for r in records
        ]  # fmt: skip
        assign_doc_ids(docs, [r.question_id for r in records])
        return seeded_subset(docs, limit, seed)

    @staticmethod
    def prompt_text(doc: dict[str, Any], prompt_kind: str) -> str:
        from spatialladder.prompts import build_prompt

        if prompt_kind not in ("direct", "thinking"):
            raise ValueError(
                f"{SpatialJsonl.NAME}: prompt kind must be 'direct' or 'thinking', got {prompt_kind!r}"
            )
        return build_prompt(doc["question"], doc["options"], prompt_kind)  # type: ignore[arg-type]

    def build_request(
        self, doc: dict[str, Any], *, prompt_kind: str, num_frames: int, media: Any
    ) -> list[dict]:
        from spatialladder.prompts import build_messages
        from spatialladder.training.conversations import subsample_frames

        images = [media.image(p) for p in doc["images"]]
        text = self.prompt_text(doc, prompt_kind)
        if doc["data_type"] == "video":  # a frame list, subsampled as in training
            return build_messages(text, video=subsample_frames(images, num_frames))
        return build_messages(text, images)

    @staticmethod
    def record(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "doc_id": doc["doc_id"],
            **{k: v for k, v in doc.items() if not k.startswith("_") and k != "doc_id"},
        }


def load_questions(
    *,
    benchmark: str | None,
    data_root: list[str],
    questions: str | None,
    media_root: str | None,
    limit: int | None,
    seed: int,
) -> tuple[Any, list[dict[str, Any]], Path]:
    """(benchmark-like object, docs, data root) from ``--benchmark``/``--data-root`` or ``--questions``."""
    if bool(benchmark) == bool(questions):
        raise SystemExit("give exactly one of --benchmark (with --data-root) or --questions FILE.jsonl")
    if questions:
        bench = SpatialJsonl(questions, media_root)
        return bench, bench.load_docs(limit=limit, seed=seed), bench.media_root
    from spatialladder.evaluation.runner import _parse_data_roots

    try:
        bench = get_benchmark(benchmark)
    except KeyError as err:
        raise SystemExit(str(err.args[0])) from None
    if not data_root:
        raise SystemExit(f"--benchmark {benchmark} needs --data-root")
    try:
        roots = _parse_data_roots(data_root, [bench.NAME])
    except ValueError as err:
        raise SystemExit(f"--data-root: {err}") from None
    return bench, bench.load_docs(roots[bench.NAME], limit=limit, seed=seed), roots[bench.NAME]


def question_type(bench: Any, doc: dict[str, Any]) -> str:
    return str(doc.get(TYPE_FIELD.get(bench.NAME, bench.TYPE_FIELD)))


def answer_kind(bench: Any, doc: dict[str, Any]) -> tuple[bool, str]:
    """(multiple choice?, allowed option letters) of one doc."""
    if isinstance(bench, SpatialJsonl):
        from spatialladder.rewards import question_kind

        mcq = question_kind(doc["answer"], doc["question_type"], doc["options"]) == "mcq"
    else:
        mcq = not is_numeric_type(bench.NAME, question_type(bench, doc))
    options = doc.get("options") or doc.get("choices") or []
    letters = "".join(m.group(1) for o in options if isinstance(o, str) and (m := _OPTION_LETTER_RE.match(o)))
    return mcq, letters or DEFAULT_LETTERS
