"""Load and validate the SpatialLadder-26k jsonl files.

The whole file is checked before anything is returned: a training run that dies on row 20,000
after hours of work, or silently trains on a broken box, costs far more than one up-front pass.
Every problem is reported as ``FILE:LINE: FIELD: message`` so a user can fix them all at once.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from .records import (
    DATA_TYPES,
    FILE_KINDS,
    MCQ_TYPES,
    NUMERIC_TYPES,
    OPTION_RE,
    QUESTION_TYPES,
    ColdStartRecord,
    GroundingBox,
    GroundingRecord,
    Record,
    SpatialRecord,
    detect_kind,
    parse_finite_float,
)

MAX_PROBLEMS_SHOWN = 50

# Exactly one <think> block followed by one <answer> block, nothing else around them: the same
# shape the stage-3 format reward demands, so cold start never teaches a format GRPO punishes.
_SOLUTION_RE = re.compile(r"\A\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*\Z", re.DOTALL)
_TAG_RE = re.compile(r"</?(think|answer)>")


class DatasetValidationError(ValueError):
    """Raised once per file with every problem found, as ``FILE:LINE: FIELD: message`` strings."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__(self._render())

    def __reduce__(self) -> tuple[type[DatasetValidationError], tuple[list[str]]]:
        # The default reduce would re-create the error from the rendered message, not the list.
        return (type(self), (self.problems,))

    def _render(self) -> str:
        n = len(self.problems)
        head = f"dataset validation failed with {n} problem{'s' if n != 1 else ''}:"
        lines = [head, *self.problems[:MAX_PROBLEMS_SHOWN]]
        if n > MAX_PROBLEMS_SHOWN:
            lines.append(f"… and {n - MAX_PROBLEMS_SHOWN} more ({n} problems in total)")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Media probing
# --------------------------------------------------------------------------------------------

# Keyed by (path, mtime_ns, size) so a file that is replaced on disk is probed again, while
# loading the spatial and cold-start files (which share frames) opens each frame only once.
_PROBE_CACHE: dict[tuple[str, int, int], tuple[int, int] | str] = {}


def _probe_image(path: str) -> tuple[int, int] | str:
    """Return ``(width, height)`` if the file decodes as an image, else a problem message."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "media file not found"
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        return f"cannot stat media file ({exc})"
    if not os.path.isfile(path):
        return "media path is not a regular file"
    key = (path, st.st_mtime_ns, st.st_size)
    cached = _PROBE_CACHE.get(key)
    if cached is not None:
        return cached
    result = _decode_image(path)
    _PROBE_CACHE[key] = result
    return result


def _decode_image(path: str) -> tuple[int, int] | str:
    from PIL import Image  # local: importing the records must not require Pillow

    try:
        with Image.open(path) as im:
            size = (int(im.width), int(im.height))
            # A header-only check (Image.verify) misses truncated JPEGs, which are the common
            # corruption from interrupted unzips. Decoding at 1/8 scale via the JPEG draft mode
            # still reads every entropy-coded block but is several times cheaper than a full
            # decode; for other formats draft() is a no-op and we do a full decode.
            im.draft(im.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            im.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBomb...
        return f"cannot open image ({type(exc).__name__}: {exc})"
    if size[0] <= 0 or size[1] <= 0:
        return f"image has empty size {size[0]}x{size[1]}"
    return size


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image, using the loader's probe cache.

    Raises ``OSError`` if the file is missing or cannot be decoded.
    """
    result = _probe_image(os.path.abspath(os.fspath(path)))
    if isinstance(result, str):
        raise OSError(f"{path}: {result}")
    return result


def _probe_many(paths: Sequence[str], progress: bool | None) -> dict[str, tuple[int, int] | str]:
    if not paths:
        return {}
    # Pillow releases the GIL while decoding, so threads scale on the ~200k frame checks.
    workers = min(32, (os.cpu_count() or 1) * 2, len(paths))
    show = progress if progress is not None else (len(paths) >= 2000 and sys.stderr.isatty())
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results: Iterable[tuple[int, int] | str] = pool.map(_probe_image, paths, chunksize=64)
        if show:
            try:
                from tqdm import tqdm

                results = tqdm(results, total=len(paths), desc="checking media", unit="img")
            except ImportError:  # progress is a nicety; never fail validation over it
                pass
        return dict(zip(paths, results))


# --------------------------------------------------------------------------------------------
# Row checking
# --------------------------------------------------------------------------------------------


@dataclass
class _MediaRef:
    line: int
    field: str
    path: str


@dataclass
class _BoxCheck:
    line: int
    field: str
    box: tuple[float, float, float, float]
    image_path: str


@dataclass
class _State:
    file_label: str
    media_root: str
    num_views: int
    problems: list[tuple[int, str]] = field(default_factory=list)
    media_refs: list[_MediaRef] = field(default_factory=list)
    box_checks: list[_BoxCheck] = field(default_factory=list)

    def add(self, line: int, fld: str, msg: str) -> None:
        self.problems.append((line, f"{self.file_label}:{line}: {fld}: {msg}"))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {dict: "object", list: "list", str: "str", int: "int", float: "float"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_MISSING = object()


def _get(st: _State, line: int, row: dict[str, Any], key: str) -> Any:
    if key not in row:
        st.add(line, key, "missing field")
        return _MISSING
    return row[key]


def _check_int(st: _State, line: int, row: dict[str, Any], key: str) -> int | None:
    value = _get(st, line, row, key)
    if value is _MISSING:
        return None
    # bool is an int subclass in Python but True is never a valid id.
    if not isinstance(value, int) or isinstance(value, bool):
        st.add(line, key, f"expected int, got {_type_name(value)} {_short(value)}")
        return None
    return value


def _check_str(st: _State, line: int, row: dict[str, Any], key: str, *, nonempty: bool = True) -> str | None:
    value = _get(st, line, row, key)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        st.add(line, key, f"expected str, got {_type_name(value)} {_short(value)}")
        return None
    if nonempty and not value.strip():
        st.add(line, key, "empty string")
        return None
    return value


def _check_data_type(st: _State, line: int, row: dict[str, Any]) -> str | None:
    value = _check_str(st, line, row, "data_type")
    if value is None:
        return None
    if value not in DATA_TYPES:
        st.add(line, "data_type", f"unknown data_type {value!r} (expected one of {', '.join(DATA_TYPES)})")
        return None
    return value


def _check_images(st: _State, line: int, row: dict[str, Any], data_type: str | None) -> list[str] | None:
    """Type- and count-check ``image``; queue every path for the media pass; return resolved paths."""
    value = _get(st, line, row, "image")
    if value is _MISSING:
        return None
    if not isinstance(value, list):
        st.add(line, "image", f"expected list of str, got {_type_name(value)} {_short(value)}")
        return None
    if not value:
        st.add(line, "image", "empty image list")
        return None
    resolved: list[str] = []
    ok = True
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            what = "empty string" if isinstance(item, str) else f"{_type_name(item)} {_short(item)}"
            st.add(line, f"image[{i}]", f"expected a non-empty path string, got {what}")
            ok = False
            continue
        path = os.path.normpath(os.path.join(st.media_root, item))
        resolved.append(path)
        st.media_refs.append(_MediaRef(line, f"image[{i}]", path))
    if data_type == "single_image" and len(value) != 1:
        st.add(line, "image", f"data_type 'single_image' needs exactly 1 image, got {len(value)}")
        ok = False
    elif data_type == "multi_view" and len(value) != st.num_views:
        st.add(line, "image", f"data_type 'multi_view' needs exactly {st.num_views} views, got {len(value)}")
        ok = False
    elif data_type == "video" and len(value) < 2:
        st.add(line, "image", f"data_type 'video' needs at least 2 frames, got {len(value)}")
        ok = False
    return resolved if ok else None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check_grounding(st: _State, line: int, row: dict[str, Any]) -> GroundingRecord | None:
    qid = _check_int(st, line, row, "question_id")
    question = _check_str(st, line, row, "question")
    data_type = _check_data_type(st, line, row)
    images = _check_images(st, line, row, data_type)

    boxes: list[GroundingBox] | None = None
    answer = _get(st, line, row, "answer")
    if answer is not _MISSING:
        if not isinstance(answer, list):
            st.add(line, "answer", f"expected list of boxes, got {_type_name(answer)} {_short(answer)}")
        elif not answer:
            st.add(line, "answer", "empty box list")
        else:
            # Check every box (not just up to the first bad one) so all problems are reported.
            checked = [_check_box(st, line, f"answer[{i}]", item) for i, item in enumerate(answer)]
            for i, box in enumerate(checked):
                # Bounds need the image size, known only after the media pass.
                if box is not None and images is not None and len(images) == 1:
                    st.box_checks.append(_BoxCheck(line, f"answer[{i}].bbox_2d", box.bbox_2d, images[0]))
            if all(box is not None for box in checked):
                boxes = [box for box in checked if box is not None]

    if qid is None or question is None or data_type is None or images is None or boxes is None:
        return None
    return GroundingRecord(
        question_id=qid,
        question=question,
        answer=boxes,
        images=[Path(p) for p in images],
        data_type=data_type,
        source=f"{st.file_label}:{line}",
    )


def _check_box(st: _State, line: int, prefix: str, item: Any) -> GroundingBox | None:
    if not isinstance(item, dict):
        st.add(
            line, prefix, f"expected an object with bbox_2d and label, got {_type_name(item)} {_short(item)}"
        )
        return None
    ok = True
    coords: tuple[float, float, float, float] | None = None
    if "bbox_2d" not in item:
        st.add(line, f"{prefix}.bbox_2d", "missing field")
        ok = False
    else:
        raw = item["bbox_2d"]
        nums = [_as_number(v) for v in raw] if isinstance(raw, list) else []
        if not isinstance(raw, list) or len(raw) != 4 or any(v is None for v in nums):
            st.add(
                line, f"{prefix}.bbox_2d", f"expected 4 finite numbers [x1, y1, x2, y2], got {_short(raw)}"
            )
            ok = False
        else:
            x1, y1, x2, y2 = (float(v) for v in nums)  # type: ignore[arg-type]
            if not (x1 < x2 and y1 < y2):
                st.add(line, f"{prefix}.bbox_2d", f"expected x1 < x2 and y1 < y2, got {_short(raw)}")
                ok = False
            else:
                coords = (x1, y1, x2, y2)
    label = item.get("label", _MISSING)
    if label is _MISSING:
        st.add(line, f"{prefix}.label", "missing field")
        ok = False
    elif not isinstance(label, str) or not label.strip():
        st.add(line, f"{prefix}.label", f"expected a non-empty str, got {_short(label)}")
        ok = False
    if not ok or coords is None:
        return None
    return GroundingBox(bbox_2d=coords, label=label)


def _check_spatial(st: _State, line: int, row: dict[str, Any]) -> SpatialRecord | None:
    qid = _check_int(st, line, row, "question_id")
    question = _check_str(st, line, row, "question")
    data_type = _check_data_type(st, line, row)
    images = _check_images(st, line, row, data_type)
    ok = True

    qtype = _check_str(st, line, row, "question_type")
    if qtype is not None and qtype not in QUESTION_TYPES:
        st.add(
            line,
            "question_type",
            f"unknown question_type {qtype!r} (expected one of {', '.join(QUESTION_TYPES)})",
        )
        qtype = None

    options: list[str] | None = None
    raw_options = _get(st, line, row, "options")
    options_ok = raw_options is not _MISSING
    if raw_options is not _MISSING and raw_options is not None:
        if not isinstance(raw_options, list) or not all(isinstance(o, str) for o in raw_options):
            st.add(line, "options", f"expected a list of str or null, got {_short(raw_options)}")
            options_ok = False
        else:
            options = list(raw_options)

    answer = _check_str(st, line, row, "answer")

    letters: list[str] = []
    if qtype in MCQ_TYPES and options_ok:
        if options is None:
            st.add(line, "options", f"multiple-choice question_type {qtype!r} needs options, got null")
            options_ok = False
        elif len(options) < 2:
            st.add(line, "options", f"multiple-choice question needs at least 2 options, got {len(options)}")
            options_ok = False
        else:
            for i, opt in enumerate(options):
                want = chr(ord("A") + i)
                m = OPTION_RE.match(opt)
                if m is None or m.group(1) != want:
                    st.add(
                        line, f"options[{i}]", f"expected an option lettered '{want}. …', got {_short(opt)}"
                    )
                    options_ok = False
                else:
                    letters.append(want)
        if options_ok and answer is not None and answer not in letters:
            st.add(line, "answer", f"{answer!r} is not one of the option letters {', '.join(letters)}")
            ok = False
    elif qtype in NUMERIC_TYPES:
        if options_ok and options is not None:
            st.add(
                line,
                "options",
                f"numeric question_type {qtype!r} must have null options, got {_short(options)}",
            )
            options_ok = False
        if answer is not None:
            value = parse_finite_float(answer)
            if value is None:
                st.add(line, "answer", f"numeric answer must be a finite number, got {answer!r}")
                ok = False
            elif value < 0:
                st.add(line, "answer", f"numeric answer must be >= 0 for {qtype!r}, got {answer!r}")
                ok = False
            elif qtype == "object count" and not value.is_integer():
                st.add(line, "answer", f"object count must be a whole number, got {answer!r}")
                ok = False

    if not ok or not options_ok or None in (qid, question, data_type, images, qtype, answer):
        return None
    return SpatialRecord(
        question_id=qid,  # type: ignore[arg-type]
        question=question,  # type: ignore[arg-type]
        options=options,
        answer=answer,  # type: ignore[arg-type]
        images=[Path(p) for p in images],  # type: ignore[union-attr]
        question_type=qtype,  # type: ignore[arg-type]
        data_type=data_type,  # type: ignore[arg-type]
        source=f"{st.file_label}:{line}",
    )


def _check_coldstart(st: _State, line: int, row: dict[str, Any]) -> ColdStartRecord | None:
    qid = _check_int(st, line, row, "question_id")
    prompt = _check_str(st, line, row, "prompt")
    data_type = _check_data_type(st, line, row)
    images = _check_images(st, line, row, data_type)
    solution = _check_str(st, line, row, "solution")
    if solution is not None:
        m = _SOLUTION_RE.match(solution)
        if m is None:
            st.add(line, "solution", f"expected '<think>…</think><answer>…</answer>', got {_short(solution)}")
            solution = None
        elif _TAG_RE.search(m.group(1)) or _TAG_RE.search(m.group(2)):
            st.add(line, "solution", "nested or repeated <think>/<answer> tags")
            solution = None
        elif not m.group(2).strip():
            st.add(line, "solution", "empty <answer></answer>")
            solution = None
    if None in (qid, prompt, data_type, images, solution):
        return None
    return ColdStartRecord(
        question_id=qid,  # type: ignore[arg-type]
        prompt=prompt,  # type: ignore[arg-type]
        solution=solution,  # type: ignore[arg-type]
        images=[Path(p) for p in images],  # type: ignore[union-attr]
        data_type=data_type,  # type: ignore[arg-type]
        source=f"{st.file_label}:{line}",
    )


_CHECKERS = {"grounding": _check_grounding, "spatial": _check_spatial, "coldstart": _check_coldstart}


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def _read_rows(path: Path, st: _State) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    # Split on b"\n" only: str.splitlines() would also split on U+2028 etc., which JSON strings
    # may contain raw, and then the reported line numbers would drift from the editor's.
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                obj = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                st.add(line_no, "<json>", f"malformed JSON ({exc})")
                continue
            if not isinstance(obj, dict):
                st.add(line_no, "<json>", f"expected a JSON object, got {_type_name(obj)}")
                continue
            rows.append((line_no, obj))
    return rows


@overload
def load_records(
    path: str | Path,
    media_root: str | Path,
    *,
    kind: Literal["grounding"],
    num_views: int = ...,
    check_media: bool = ...,
    progress: bool | None = ...,
) -> list[GroundingRecord]: ...
@overload
def load_records(
    path: str | Path,
    media_root: str | Path,
    *,
    kind: Literal["spatial"],
    num_views: int = ...,
    check_media: bool = ...,
    progress: bool | None = ...,
) -> list[SpatialRecord]: ...
@overload
def load_records(
    path: str | Path,
    media_root: str | Path,
    *,
    kind: Literal["coldstart"],
    num_views: int = ...,
    check_media: bool = ...,
    progress: bool | None = ...,
) -> list[ColdStartRecord]: ...
@overload
def load_records(
    path: str | Path,
    media_root: str | Path,
    *,
    kind: str | None = ...,
    num_views: int = ...,
    check_media: bool = ...,
    progress: bool | None = ...,
) -> list[Record]: ...


def load_records(
    path: str | Path,
    media_root: str | Path,
    *,
    kind: str | None = None,
    num_views: int = 8,
    check_media: bool = True,
    progress: bool | None = None,
) -> list[Record]:
    """Validate a whole SpatialLadder-26k jsonl file and return its typed records.

    ``kind`` is "grounding", "spatial" or "coldstart"; when None it comes from the file name
    (``spld_grounding_data`` …) or, failing that, from the first row's keys. Image paths are
    resolved against ``media_root``. With ``check_media`` every distinct media file is opened
    once (in a thread pool) and decoded; grounding boxes are then checked against the real
    image size. Without it, missing/corrupt media and out-of-image boxes are not detected.

    Raises :class:`DatasetValidationError` listing every problem in the file (never a partial
    result), ``FileNotFoundError`` if ``path`` does not exist or ``media_root`` is not a
    directory while ``check_media`` is set, and ``ValueError`` for a bad ``kind``/``num_views``.
    """
    path = Path(path)
    if kind is not None and kind not in FILE_KINDS:
        raise ValueError(f"kind must be one of {FILE_KINDS}, got {kind!r}")
    if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
        raise ValueError(f"num_views must be a positive int, got {num_views!r}")
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    root = Path(media_root)
    if check_media and not root.is_dir():
        raise FileNotFoundError(f"media root is not a directory: {root}")

    file_label = str(path)
    st = _State(file_label=file_label, media_root=str(root.resolve()), num_views=num_views)
    rows = _read_rows(path, st)

    if not rows and not st.problems:
        st.add(1, "<file>", "no records in file")
        raise DatasetValidationError([p for _, p in st.problems])

    resolved_kind = detect_kind(path, rows[0][1] if rows else None, kind)
    if resolved_kind is None:
        first_line = rows[0][0] if rows else 1
        keys = sorted(rows[0][1]) if rows else []
        st.add(
            first_line,
            "<kind>",
            f"cannot tell the file kind from its name or keys {keys}; pass kind= one of {', '.join(FILE_KINDS)}",
        )
        raise DatasetValidationError([p for _, p in sorted(st.problems, key=lambda t: t[0])])

    checker = _CHECKERS[resolved_kind]
    records: list[Record] = []
    for line_no, row in rows:
        record = checker(st, line_no, row)
        if record is not None:
            records.append(record)

    if check_media:
        distinct = list(dict.fromkeys(ref.path for ref in st.media_refs))
        probed = _probe_many(distinct, progress)
        for ref in st.media_refs:
            result = probed[ref.path]
            if isinstance(result, str):
                st.add(ref.line, ref.field, f"{result}: {ref.path}")
        for bc in st.box_checks:
            size = probed.get(bc.image_path)
            if not isinstance(size, tuple):
                continue  # the media problem is already reported
            w, h = size
            x1, y1, x2, y2 = bc.box
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
                st.add(
                    bc.line,
                    bc.field,
                    f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies outside the {w}x{h} image[0]",
                )

    if st.problems:
        # Stable sort: problems of one row stay in field order, media problems follow the row's
        # structural ones, and the report reads top-to-bottom like the file.
        st.problems.sort(key=lambda t: t[0])
        raise DatasetValidationError([p for _, p in st.problems])
    return records


def select_max_samples(records: Sequence[Any], max_samples: int | None) -> list[Any]:
    """``max_samples`` evenly spaced rows of ``records`` (all of them when unset or not fewer).

    Evenly spaced rather than the first N: a fixed subset that still spans every scene and data
    type of a file sorted by scene or type. Shared by the SFT stages and GRPO.
    """
    if max_samples is None or max_samples >= len(records):
        return list(records)
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    return [records[i * len(records) // max_samples] for i in range(max_samples)]
