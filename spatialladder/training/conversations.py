"""SpatialLadder-26k records -> SFT samples (prompt, target, media) and their chat messages.

One sample per record, per stage:

* stage 1, grounding: the ``grounding`` prompt; target = a fenced ``json`` block listing
  ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}`` with every box mapped from *its image's real size*
  (read from the file) into the frame the processor resizes that image to
  (:meth:`~spatialladder.geometry.ResizeRule.resized_size` with the run's pixel bounds): the
  coordinates a Qwen2.5-VL model sees and answers in.
* stage 2, spatial: the ``direct`` prompt (question, options, answer instruction); target = the bare
  option letter or number.
* cold start: the record's own ``prompt`` (already the thinking prompt); target = its
  ``<think>…</think><answer>…</answer>`` solution.

Media follow ``data_type``: ``single_image`` = one image part, ``multi_view`` = one image part per
view, ``video`` = one video part holding the frame list uniformly subsampled to ``video_frames``.

Samples are flat dicts of strings and string lists (:data:`SAMPLE_COLUMNS`) so that a
``datasets.Dataset`` stores them without Arrow adding ``None`` keys to message parts (which the
Qwen chat template would render as extra image/video placeholders); :func:`sample_messages`
builds the messages at collate time (:mod:`spatialladder.media_inputs` loads the images).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from spatialladder.data import ColdStartRecord, GroundingRecord, Record, SpatialRecord, image_size
from spatialladder.geometry import ResizeRule, rescale_box
from spatialladder.prompts import build_messages, build_prompt

SAMPLE_COLUMNS = ("prompt", "target", "system", "images", "video", "data_type", "source")


@dataclass(frozen=True)
class ConversationSettings:
    """How records become samples. ``resize_rule`` is required for grounding records."""

    prompt_kind: str = "auto"
    system_message: str | None = None
    video_frames: int = 16
    resize_rule: ResizeRule | None = None


def subsample_frames(frames: Sequence[Any], num_frames: int) -> list[Any]:
    """``num_frames`` frames spread uniformly over ``frames`` (first and last kept), in order;
    all of them when there are not more than ``num_frames``."""
    frames = list(frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if len(frames) <= num_frames:
        return frames
    if num_frames == 1:
        return [frames[0]]
    step = (len(frames) - 1) / (num_frames - 1)
    return [frames[round(i * step)] for i in range(num_frames)]


def grounding_boxes(record: GroundingRecord, rule: ResizeRule) -> list[dict[str, Any]]:
    """The record's boxes mapped from its image's real size into the processor's resized frame."""
    width, height = image_size(record.images[0])
    resized = rule.resized_size(width, height)
    return [
        {"bbox_2d": rescale_box(box.bbox_2d, (width, height), resized), "label": box.label}
        for box in record.answer
    ]


def format_grounding_answer(boxes: Iterable[dict[str, Any]]) -> str:
    """Qwen2.5-VL's native grounding reply: a fenced json list, one box object per line."""
    lines = ",\n".join("\t" + json.dumps(box, ensure_ascii=False) for box in boxes)
    return f"```json\n[\n{lines}\n]\n```"


def _prompt_kind(record: Record, requested: str) -> str:
    if isinstance(record, GroundingRecord):
        if requested not in ("auto", "grounding"):
            raise ValueError(
                f"{record.source}: grounding rows need prompt_kind grounding (or auto), got {requested!r}"
            )
        return "grounding"
    if isinstance(record, SpatialRecord):
        if requested in ("auto", "direct"):
            return "direct"
        raise ValueError(
            f"{record.source}: spatial rows train with prompt_kind direct (or auto); {requested!r} needs a "
            "reasoning target, which only cold-start rows have"
        )
    return "record"  # cold start keeps its own prompt


def record_to_sample(record: Record, settings: ConversationSettings) -> dict[str, Any]:
    """One SFT sample (see :data:`SAMPLE_COLUMNS`) for a validated record."""
    kind = _prompt_kind(record, settings.prompt_kind)
    if isinstance(record, GroundingRecord):
        if settings.resize_rule is None:
            raise ValueError(
                "grounding samples need ConversationSettings.resize_rule (the processor's resize)"
            )
        prompt = build_prompt(record.question, kind="grounding")
        target = format_grounding_answer(grounding_boxes(record, settings.resize_rule))
    elif isinstance(record, SpatialRecord):
        prompt = build_prompt(record.question, record.options, kind=kind)  # type: ignore[arg-type]
        target = record.answer.strip()
    elif isinstance(record, ColdStartRecord):
        prompt, target = record.prompt, record.solution.strip()
    else:
        raise TypeError(f"not a SpatialLadder record: {type(record).__name__}")
    paths = [str(p) for p in record.images]
    if record.data_type == "video":
        images, video = [], subsample_frames(paths, settings.video_frames)
    else:
        images, video = paths, []
    return {
        "prompt": prompt,
        "target": target,
        "system": settings.system_message,
        "images": images,
        "video": video,
        "data_type": record.data_type,
        "source": record.source,
    }


def records_to_samples(records: Iterable[Record], settings: ConversationSettings) -> list[dict[str, Any]]:
    return [record_to_sample(record, settings) for record in records]


def sample_messages(sample: dict[str, Any], *, with_answer: bool = True) -> list[dict[str, Any]]:
    """The chat messages of a sample (transformers multimodal format), media as paths."""
    images = [str(p) for p in sample.get("images") or []]
    video = [str(p) for p in sample["video"]] if sample.get("video") else None
    return build_messages(
        sample["prompt"],
        images,
        video=video,
        system=sample.get("system") or None,
        answer=sample["target"] if with_answer else None,
    )


__all__ = [
    "SAMPLE_COLUMNS",
    "ConversationSettings",
    "format_grounding_answer",
    "grounding_boxes",
    "record_to_sample",
    "records_to_samples",
    "sample_messages",
    "subsample_frames",
]
