"""Typed records for the three SpatialLadder-26k jsonl files.

The records are the *validated* form of a row: every path is already resolved against the
media root and every field has its declared type, so training and evaluation code can use them
without re-checking. Build them with :func:`spatialladder.data.load_records`, not by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MCQ_TYPES: tuple[str, ...] = ("relative distance", "relative direction", "appearance order")
NUMERIC_TYPES: tuple[str, ...] = ("object size", "room size", "object count", "absolute distance")
QUESTION_TYPES: tuple[str, ...] = MCQ_TYPES + NUMERIC_TYPES
DATA_TYPES: tuple[str, ...] = ("single_image", "multi_view", "video")

FileKind = Literal["grounding", "spatial", "coldstart"]
FILE_KINDS: tuple[str, ...] = ("grounding", "spatial", "coldstart")

# File-name stems of the released dataset; a name containing one of these decides the kind.
_KIND_BY_NAME: dict[str, str] = {
    "spld_grounding_data": "grounding",
    "spld_spatial_data": "spatial",
    "spld_coldstart_data": "coldstart",
}

# "A. left" -> letter "A", text "left". Option text may be anything non-empty.
OPTION_RE = re.compile(r"^([A-Z])\.\s*(\S.*)$", re.DOTALL)


@dataclass(frozen=True)
class GroundingBox:
    """One object box in original-image pixels, ``(x1, y1, x2, y2)`` with x1<x2 and y1<y2."""

    bbox_2d: tuple[float, float, float, float]
    label: str


@dataclass(frozen=True)
class GroundingRecord:
    """A row of ``spld_grounding_data.jsonl`` (stage 1, object localization)."""

    question_id: int
    question: str
    answer: list[GroundingBox]
    images: list[Path]
    data_type: str
    source: str  # "file:line", for error messages further down the pipeline


@dataclass(frozen=True)
class SpatialRecord:
    """A row of ``spld_spatial_data.jsonl`` (stages 2 and 3)."""

    question_id: int
    question: str
    options: list[str] | None
    answer: str
    images: list[Path]
    question_type: str
    data_type: str
    source: str

    @property
    def is_multiple_choice(self) -> bool:
        return self.question_type in MCQ_TYPES


@dataclass(frozen=True)
class ColdStartRecord:
    """A row of ``spld_coldstart_data.jsonl`` (cold-start SFT with thinking)."""

    question_id: int
    prompt: str
    solution: str
    images: list[Path]
    data_type: str
    source: str


Record = GroundingRecord | SpatialRecord | ColdStartRecord


def parse_finite_float(text: str) -> float | None:
    """``float(text)`` if that is a finite number, else None ("nan", "inf", "abc" -> None)."""
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        return None
    return value if math.isfinite(value) else None


def kind_from_name(path: str | Path) -> str | None:
    """The file kind named by the released file stems, or None if the name is not one of them."""
    name = Path(path).name
    for stem, kind in _KIND_BY_NAME.items():
        if stem in name:
            return kind
    return None


def kind_from_row(row: Mapping[str, object]) -> str | None:
    """Guess the file kind from one row's keys; None if the row fits none of them."""
    if "solution" in row or "prompt" in row:
        return "coldstart"
    if "question_type" in row or "options" in row:
        return "spatial"
    answer = row.get("answer")
    if isinstance(answer, list):
        return "grounding"
    if isinstance(answer, str):
        return "spatial"
    return None


def detect_kind(
    path: str | Path, first_row: Mapping[str, object] | None = None, kind: str | None = None
) -> str | None:
    """Resolve a file's kind: explicit ``kind`` wins, then the file name, then the first row's keys."""
    if kind is not None:
        if kind not in FILE_KINDS:
            raise ValueError(f"kind must be one of {FILE_KINDS}, got {kind!r}")
        return kind
    by_name = kind_from_name(path)
    if by_name is not None:
        return by_name
    if first_row is not None:
        return kind_from_row(first_row)
    return None
