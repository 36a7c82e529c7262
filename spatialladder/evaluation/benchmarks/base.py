"""The :class:`Benchmark` base class, and the plumbing benchmark modules share: files, doc ids, subsets,
media, prompts, records.

A *doc* is one benchmark row as a plain dict: the dataset's own fields under their real column names,
plus ``doc_id`` (stable string id), ``benchmark`` and ``_media`` (a list of :class:`MediaItem`).
Keys starting with ``_`` are internal and never written to prediction files. A *record* is what a
prediction file holds for a doc (:meth:`Benchmark.record`): the doc's own fields plus ``doc_id``; the
scorer reads records, never docs, so a predictions file can be re-scored without the dataset.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from spatialladder.evaluation.benchmarks.scoring_rules import (
    ScoringInputError,
    field,
    mean,
    official_answer_text,
    spatialladder_answer_text,
)
from spatialladder.prompts import (
    DIRECT_MCQ_INSTRUCTION,
    DIRECT_NUMERIC_INSTRUCTION,
    THINKING_MCQ_SUFFIX,
    THINKING_NUMERIC_SUFFIX,
    build_messages,
    build_prompt,
)

if TYPE_CHECKING:  # media.py pulls in PyAV / PIL; keep `import benchmarks` light
    from spatialladder.evaluation.media import FrameCache

PROMPT_KINDS: tuple[str, ...] = ("thinking", "direct", "official")
EvalPromptKind = Literal["thinking", "direct", "official"]
# `official` (default): benchmarks.md policy 1, then each benchmark's own extraction, metric and
# aggregation with its quirks. `spatialladder`: the SpatialLadder release's `eval_spld` scoring (policy 5),
# to compare with the paper's table; never the default.
SCORERS: tuple[str, ...] = ("official", "spatialladder")


class BenchmarkDataError(ValueError):
    """The benchmark's files are not where, or not what, this loader expects."""


@dataclass(frozen=True)
class MediaItem:
    """One visual input of a doc: a video file, an image file, or image bytes embedded in the parquet."""

    kind: Literal["video", "image"]
    path: Path | None = None
    data: bytes | None = None

    def exists(self) -> bool:
        if self.path is not None:
            return self.path.is_file()
        return bool(self.data)

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        return "<embedded image bytes>" if self.data else "<embedded image missing>"


class ReferenceScore(NamedTuple):
    """A published overall score (percent) of a model on a benchmark, and where it was read."""

    model: str
    overall: float
    source: str


def check_scorer(scorer: str) -> None:
    if scorer not in SCORERS:
        raise ScoringInputError("scorer", f"unknown scorer {scorer!r}; expected one of {list(SCORERS)}")


class Benchmark:
    """One evaluation benchmark: its files, its prompts and its scoring, in one class (lmms-eval's task).

    Adding a benchmark is one module under ``spatialladder/evaluation/benchmarks/`` holding a subclass,
    plus one line in the registry (``benchmarks/__init__.py``). The registry holds one instance per
    benchmark; the runner, ``eval/score.py`` and the report reach every benchmark through this surface.

    Declare (class attributes):

    * ``NAME``: canonical name: output folder, ``--benchmark`` value, key of the registry.
    * ``FOLDER_NAMES``: folders under a shared ``--data-root`` that may hold its files.
    * ``ALIASES``: extra short names for ``--benchmarks`` (case and punctuation are ignored anyway).
    * ``QUESTION_TYPES``: the question types, in report order.
    * ``NUMERIC_TYPES``: the question types scored by MRA (a number); the others are multiple choice.
    * ``REQUIRED_FIELDS``: record fields scoring reads; checked present (not null) before anything else.
    * ``TYPE_FIELD``: record field whose value buckets the aggregate (``per_type``); ``question_type``.
    * ``TYPE_VALUES``: the values ``TYPE_FIELD`` may take when they are not ``QUESTION_TYPES``.
    * ``OTHER_TYPES``: more names reports and :meth:`is_numeric_type` know (a combined task, 2D/3D).
    * ``VIDEO``: docs hold a video sampled to ``num_frames`` frames (then ``num_frames`` is a setting
      of the run).
    * ``RECORD_DROP``: doc fields kept out of prediction files (embedded image bytes).
    * ``REFERENCE_SCORES``: published overall scores (:class:`ReferenceScore`: model, percent, source)
      that the report prints beside a benchmark outside the paper's table (the "extended" table).

    Write (methods):

    * ``load_docs(data_root, *, limit=None, seed=0) -> list[dict]``: rows with their real column
      names plus ``doc_id`` (:func:`assign_doc_ids`), ``benchmark`` and ``_media`` (:class:`MediaItem`
      list), then :func:`seeded_subset`. Missing/odd files raise :class:`BenchmarkDataError`.
    * ``prompt_text(doc, prompt_kind) -> str``: ``thinking`` / ``direct`` via :func:`shared_prompt`,
      ``official`` = the benchmark's own prompt; call :func:`check_prompt_kind` first.
    * ``target(record)``: the validated ground truth the scorers compare against (any object); raises
      :class:`ScoringInputError` naming the field. It runs before the reply is read, so bad data
      fails even when the reply is unparsable.
    * ``score_official(text, target) -> float`` in [0, 1]: ``text`` is the reply after policy 1 (the
      last ``<answer>`` content, or the raw reply without tags; an unclosed tag already scored 0).

    Override when needed:

    * ``score_spatialladder(text, target)``: the release's rule on its own tag extraction (default:
      the official rule).
    * ``summarize(buckets, scorer) -> (per_type, groups, overall)`` from ``{type value: [scores]}``, as
      fractions: default per-type means in ``TYPE_VALUES`` order, no groups, overall = sample mean.
      ``overall`` may be None when no bucket present counts towards it.
    * ``canonical_type(value)``: a spelling fix applied before a type is looked up.
    * ``build_request`` / ``record``: the defaults send ``doc["_media"]`` then the prompt, and write the
      doc's fields minus ``RECORD_DROP``.

    Provided, not overridden: :meth:`question_type`, :meth:`is_numeric_type`, :meth:`score`,
    :meth:`aggregate` -- the one place that picks the scorer and validates records -- and
    :meth:`type_means` for ``summarize``. Building blocks: :mod:`.scoring_rules` (``field`` /
    ``str_field`` / ``numeric_target`` / ``to_float``, the release's ``sl_number`` / ``sl_letter``,
    ``mean`` / ``weighted_mean``), :func:`spatialladder.metrics.mean_relative_accuracy` (MRA) and
    :mod:`spatialladder.answers` (shared with the training rewards). ``tests/test_benchmark_registry.py``
    holds a complete toy benchmark in one file.
    """

    NAME: ClassVar[str]
    FOLDER_NAMES: ClassVar[tuple[str, ...]] = ()
    ALIASES: ClassVar[tuple[str, ...]] = ()
    QUESTION_TYPES: ClassVar[tuple[str, ...]]
    NUMERIC_TYPES: ClassVar[frozenset[str]] = frozenset()
    REQUIRED_FIELDS: ClassVar[tuple[str, ...]]
    TYPE_FIELD: ClassVar[str] = "question_type"
    TYPE_VALUES: ClassVar[tuple[str, ...] | None] = None
    OTHER_TYPES: ClassVar[tuple[str, ...]] = ()
    VIDEO: ClassVar[bool] = False
    RECORD_DROP: ClassVar[tuple[str, ...]] = ()
    REFERENCE_SCORES: ClassVar[tuple[ReferenceScore, ...]] = ()

    def __repr__(self) -> str:
        return f"<benchmark {self.NAME}>"

    # -- to write ---------------------------------------------------------------------------------
    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        raise NotImplementedError

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        raise NotImplementedError

    def target(self, record: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def score_official(self, text: str, target: Any) -> float:
        raise NotImplementedError

    # -- defaults ---------------------------------------------------------------------------------
    def score_spatialladder(self, text: str, target: Any) -> float:
        return self.score_official(text, target)

    def summarize(
        self, buckets: Mapping[str, Sequence[float]], scorer: str
    ) -> tuple[dict[str, float], dict[str, float], float | None]:
        per_type = self.type_means(buckets)
        return per_type, {}, mean([s for scores in buckets.values() for s in scores])

    def canonical_type(self, value: str) -> str:
        return value

    def build_request(
        self, doc: Mapping[str, Any], *, prompt_kind: str, num_frames: int, media: FrameCache
    ) -> list[dict[str, Any]]:
        """Chat messages: the doc's media (a video as ``num_frames`` uniform frames), then the prompt."""
        return make_messages(self.prompt_text(doc, prompt_kind), doc["_media"], media=media, num_frames=num_frames)

    def record(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return record_of(doc, drop=self.RECORD_DROP)

    # -- provided ---------------------------------------------------------------------------------
    @property
    def type_values(self) -> tuple[str, ...]:
        return self.TYPE_VALUES if self.TYPE_VALUES is not None else self.QUESTION_TYPES

    @property
    def report_types(self) -> tuple[str, ...]:
        """Every type name this benchmark reports, in order (per-type table rows)."""
        return tuple(dict.fromkeys((*self.QUESTION_TYPES, *self.type_values, *self.OTHER_TYPES)))

    def type_means(self, buckets: Mapping[str, Sequence[float]]) -> dict[str, float]:
        """Mean score per type value present, in ``TYPE_VALUES`` order."""
        return {t: mean(buckets[t]) for t in self.type_values if t in buckets}

    def question_type(self, record: Mapping[str, Any]) -> str:
        """The validated ``TYPE_FIELD`` value of ``record`` (its aggregate bucket)."""
        name = self.TYPE_FIELD
        value = field(record, name)
        if not isinstance(value, str):
            raise ScoringInputError(name, f"expected a string, got {type(value).__name__}")
        value = self.canonical_type(value)
        if value not in self.type_values:
            raise ScoringInputError(
                name, f"unknown {name} {value!r} for {self.NAME}; expected one of {list(self.type_values)}"
            )
        return value

    def is_numeric_type(self, qtype: str) -> bool:
        """True when ``qtype`` is scored by MRA (a numeric answer), False for accuracy. Any name of
        :attr:`report_types` is accepted; another raises :class:`ScoringInputError`."""
        qtype = self.canonical_type(qtype)
        if qtype not in self.report_types:
            raise ScoringInputError("question_type", f"unknown question type {qtype!r} for {self.NAME}")
        return qtype in self.NUMERIC_TYPES

    def score(self, record: Mapping[str, Any], prediction: str, scorer: str = "official") -> float:
        """Score one raw model reply against one record; a float in [0, 1].

        Raises :class:`ScoringInputError` (a ValueError) naming the field for a missing / malformed
        field, an unknown question type, a non-string prediction or an unknown scorer.
        """
        check_scorer(scorer)
        if not isinstance(record, Mapping):
            raise ScoringInputError("record", f"expected a mapping, got {type(record).__name__}")
        if not isinstance(prediction, str):
            raise ScoringInputError("prediction", f"expected a string, got {type(prediction).__name__}")
        for name in self.REQUIRED_FIELDS:
            field(record, name)
        target = self.target(record)
        if scorer == "official":
            text = official_answer_text(prediction)
            return 0.0 if text is None else self.score_official(text, target)
        return self.score_spatialladder(spatialladder_answer_text(prediction), target)

    def aggregate(self, records: Sequence[Mapping[str, Any]], scorer: str = "official") -> dict[str, Any]:
        """Aggregate scored records (each with ``score`` in [0, 1] plus ``TYPE_FIELD``).

        Returns ``{"benchmark", "scorer", "n", "overall", "per_type", "groups"}`` with scores in
        percent. Types absent from ``records`` are skipped, never counted as 0; a group with no type
        present is left out. ``overall`` is None when ``records`` is empty, or when none of them counts
        towards it (a benchmark whose ``summarize`` leaves some types out of the overall).
        """
        check_scorer(scorer)
        buckets: dict[str, list[float]] = {}
        for record in records:
            if not isinstance(record, Mapping):
                raise ScoringInputError("record", f"expected a mapping, got {type(record).__name__}")
            buckets.setdefault(self.question_type(record), []).append(_record_score(record))
        n = sum(len(v) for v in buckets.values())
        result: dict[str, Any] = {"benchmark": self.NAME, "scorer": scorer, "n": n, "overall": None,
                                  "per_type": {}, "groups": {}}  # fmt: skip
        if n == 0:
            return result
        per_type, groups, overall = self.summarize(buckets, scorer)
        result["overall"] = None if overall is None else overall * 100.0
        result["per_type"] = {t: v * 100.0 for t, v in per_type.items()}
        result["groups"] = {g: v * 100.0 for g, v in groups.items()}
        return result


def _record_score(record: Mapping[str, Any]) -> float:
    value = field(record, "score")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ScoringInputError("score", f"expected a number in [0, 1], got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------------
# Locating and reading files
# ------------------------------------------------------------------------------------------------
def find_benchmark_dir(
    data_root: str | Path, folder_names: Sequence[str], has_files: Callable[[Path], bool], benchmark: str
) -> Path:
    """The directory holding ``benchmark``: ``data_root`` itself when it already has the benchmark's
    files (a per-benchmark ``--data-root NAME=DIR``), else the first of ``data_root/<folder>``."""
    root = Path(data_root).expanduser()
    candidates = [root, *(root / name for name in folder_names)]
    for candidate in candidates:
        if candidate.is_dir() and has_files(candidate):
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise BenchmarkDataError(f"{benchmark}: no benchmark files found; looked in {tried}")


def read_parquet_rows(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """All rows of ``paths`` (in order) as plain Python dicts (lists, dicts, bytes; no numpy)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def parquet_columns(paths: Sequence[Path]) -> list[str]:
    import pyarrow.parquet as pq

    columns: list[str] = []
    for path in paths:
        for name in pq.read_schema(path).names:
            if name not in columns:
                columns.append(name)
    return columns


def require_columns(columns: Iterable[str], required: Sequence[str], benchmark: str, source: Any) -> None:
    """Fail with the missing AND present column names (benchmarks.md: confirm on real files)."""
    present = list(columns)
    missing = [c for c in required if c not in present]
    if missing:
        raise BenchmarkDataError(
            f"{benchmark}: {source} lacks column(s) {missing}; it has {present}. "
            "The loader expects the dataset's published column names (see benchmarks.md)."
        )


# ------------------------------------------------------------------------------------------------
# Ids and subsets
# ------------------------------------------------------------------------------------------------
def assign_doc_ids(docs: list[dict[str, Any]], base_ids: Sequence[Any]) -> None:
    """Set ``doc_id`` = str(base id); a repeated id gets ``#k`` appended for its k-th repeat, so ids stay
    unique and stable for a fixed file (the order of rows is the file's order)."""
    seen: dict[str, int] = {}
    for doc, base in zip(docs, base_ids, strict=True):
        key = str(base)
        k = seen.get(key, 0)
        seen[key] = k + 1
        doc["doc_id"] = key if k == 0 else f"{key}#{k}"


_NATURAL_RE = re.compile(r"(\d+)")


def natural_key(doc_id: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``2D-9`` before ``2D-10`` (numbers compared as numbers)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _NATURAL_RE.split(doc_id) if p != "")


def seeded_subset(docs: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """``limit`` docs drawn without replacement by ``random.Random(seed)``, kept in file order.

    Deterministic for (file, limit, seed) and independent of the number of processes; ``None`` (or a
    limit >= the number of docs) keeps every doc, which is the default: the full set is scored."""
    if limit is None or limit >= len(docs):
        return docs
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    keep = sorted(random.Random(seed).sample(range(len(docs)), limit))
    return [docs[i] for i in keep]


# ------------------------------------------------------------------------------------------------
# Records and JSON
# ------------------------------------------------------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, bytes dropped to a marker, NaN to None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if hasattr(value, "tolist") and not isinstance(value, (str, int, float, bool)):
        return to_jsonable(value.tolist())  # numpy array or scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_of(doc: Mapping[str, Any], drop: Sequence[str] = ()) -> dict[str, Any]:
    """The doc's own fields for the prediction file: ``doc_id`` first, internal ``_`` keys and the
    ``drop`` fields (embedded image bytes) left out."""
    out: dict[str, Any] = {"doc_id": doc["doc_id"]}
    for key, value in doc.items():
        if key.startswith("_") or key in drop or key in out:
            continue
        out[key] = to_jsonable(value)
    return out


# ------------------------------------------------------------------------------------------------
# Prompts
# ------------------------------------------------------------------------------------------------
_OPTION_LINE_RE = re.compile(r"^\s*\(?([A-H])[.):]\s*(.+?)\s*$")


def split_embedded_options(question: str) -> tuple[str, list[str]] | None:
    """Options written into the question text as lines ``A. x`` / ``(A) x`` / ``A: x``: returns the
    question without them and ``["A. x", ...]``, or None unless >= 2 consecutive letters from A."""
    lines = question.split("\n")
    options: list[str] = []
    kept: list[str] = []
    for line in lines:
        m = _OPTION_LINE_RE.match(line)
        if m and ord(m.group(1)) - ord("A") == len(options):
            options.append(f"{m.group(1)}. {m.group(2)}")
        else:
            kept.append(line)
    if len(options) < 2:
        return None
    return "\n".join(kept).strip(), options


def shared_prompt(
    question: str, options: Sequence[str] | None, kind: str, *, answer_format: Literal["mcq", "number", "free"]
) -> str:
    """The shared ``direct`` / ``thinking`` prompt (spatialladder.prompts) for any answer format.

    ``build_prompt`` decides multiple choice by the presence of ``options``. Two benchmark cases fall
    outside it and are handled here with the prompt module's own wording: multiple choice whose options
    stay inside the question text (SPAR rows we cannot split) gets the MCQ instruction instead of the
    numeric one, and free-form answers (SPAR ``view_change_infer``) get neither, since asking for "a
    single number" would contradict the question's own answer format.
    """
    if kind not in ("direct", "thinking"):
        raise ValueError(f"shared prompt kind must be 'direct' or 'thinking', got {kind!r}")
    if answer_format == "mcq" and options:
        return build_prompt(question, list(options), kind)  # type: ignore[arg-type]
    text = build_prompt(question, None, kind)  # type: ignore[arg-type]
    if answer_format == "number":
        return text
    numeric_tail = DIRECT_NUMERIC_INSTRUCTION if kind == "direct" else THINKING_NUMERIC_SUFFIX
    assert text.endswith(numeric_tail), "prompts.build_prompt layout changed; update shared_prompt"
    head = text[: -len(numeric_tail)].rstrip("\n")
    if answer_format == "free":
        return head
    return head + "\n" + (DIRECT_MCQ_INSTRUCTION if kind == "direct" else THINKING_MCQ_SUFFIX)


def check_prompt_kind(kind: str) -> None:
    if kind not in PROMPT_KINDS:
        raise ValueError(f"unknown prompt kind {kind!r}; expected one of {PROMPT_KINDS}")


# ------------------------------------------------------------------------------------------------
# Messages with media
# ------------------------------------------------------------------------------------------------
def make_messages(
    text: str, media_items: Sequence[MediaItem], *, media: FrameCache, num_frames: int
) -> list[dict[str, Any]]:
    """Chat messages (spatialladder.prompts.build_messages) with decoded visuals.

    A video becomes ``num_frames`` uniformly sampled frames (decoded once per video by ``media``); its
    content part also carries ``video_metadata`` (fps, total frames, sampled indices), which the
    runner hands to the processor so Qwen2.5-VL's temporal position ids match the sampled frame rate.
    Chat templates ignore the extra key.
    """
    images = []
    video = None
    for item in media_items:
        if item.kind == "video":
            if video is not None:
                raise ValueError("one video per request is supported")
            assert item.path is not None
            video = media.video(item.path, num_frames)
        elif item.path is not None:
            images.append(media.image(item.path))
        else:
            assert item.data is not None
            images.append(media.image_bytes(item.data))
    messages = build_messages(text, images, video=video.frames if video is not None else None)
    if video is not None:
        for part in messages[-1]["content"]:
            if part.get("type") == "video":
                part["video_metadata"] = video.metadata()
    return messages


def image_bytes_of(value: Any) -> bytes | None:
    """Bytes of an embedded image cell: HF ``Image`` struct ``{"bytes", "path"}`` or raw bytes."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, Mapping):
        data = value.get("bytes")
        return bytes(data) if data else None
    raise BenchmarkDataError(f"unsupported embedded image cell of type {type(value).__name__}")
