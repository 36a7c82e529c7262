"""SpatialLadder-26k data: typed records, a validating loader and a CLI validator."""

from .loader import MAX_PROBLEMS_SHOWN, DatasetValidationError, image_size, load_records, select_max_samples
from .records import (
    DATA_TYPES,
    FILE_KINDS,
    MCQ_TYPES,
    NUMERIC_TYPES,
    QUESTION_TYPES,
    ColdStartRecord,
    FileKind,
    GroundingBox,
    GroundingRecord,
    Record,
    SpatialRecord,
    detect_kind,
    kind_from_name,
    kind_from_row,
    parse_finite_float,
)

__all__ = [
    "DATA_TYPES",
    "FILE_KINDS",
    "MAX_PROBLEMS_SHOWN",
    "MCQ_TYPES",
    "NUMERIC_TYPES",
    "QUESTION_TYPES",
    "ColdStartRecord",
    "DatasetValidationError",
    "FileKind",
    "GroundingBox",
    "GroundingRecord",
    "Record",
    "SpatialRecord",
    "detect_kind",
    "image_size",
    "kind_from_name",
    "kind_from_row",
    "load_records",
    "select_max_samples",
    "parse_finite_float",
]
