"""Chat messages + images / video frames -> Qwen2.5-VL model inputs: the one path of SFT, GRPO and eval.

Training and evaluation must see a sample the same way: the same rendered text, the same pixels
and grids, the same seconds per temporal patch (and with them the same M-RoPE positions). So the
SFT collator (:mod:`spatialladder.training.collator`), the GRPO trainer
(:func:`spatialladder.training.grpo_trainer.process_sample`) and the eval runner
(:func:`spatialladder.evaluation.runner.generate_batch`) all encode one conversation at a time with
:func:`encode_messages` and batch with :func:`collate_encoded` / :func:`collate_media`.

One conversation per processor call, never a batch: with videos given as frame lists, Qwen2.5-VL's
processor misreads a batch whose first conversation has no video but a later one has (the empty
first entry makes it read one frame list as that many videos), and an image-only and a video
batch would otherwise take different code paths. Per-sample results are padded (TRL's ``pad``)
and the vision tensors concatenated in sample order, which is the order the model assigns
features to placeholders.

Media in the messages may be paths, bytes or PIL images (:func:`load_rgb` loads them all). A video
part is a list of frames, optionally with ``video_metadata`` (what the eval frame cache records
for a decoded video); without it the frames are a frame list at :attr:`MediaConfig.video_fps`
(SpatialLadder-26k's videos, as qwen-vl-utils treats them). Frames are never resampled.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers.video_utils import VideoMetadata
from trl.trainer.utils import pad

from spatialladder.geometry import ResizeRule

MEDIA_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
# Per-token keys padded like input_ids, with their padding value.
TOKEN_PAD_VALUES = {"attention_mask": 0, "mm_token_type_ids": 0}


@dataclass(frozen=True)
class MediaConfig:
    """Per-run settings of how media become inputs.

    ``video_fps`` is the frame rate assumed for a frame list (qwen-vl-utils uses 2.0): it sets
    ``second_per_grid_ts`` and with it the temporal M-RoPE step. ``min_pixels``/``max_pixels``
    override the processor's bounds per call (evaluation's ``--min-pixels``/``--max-pixels``);
    None keeps the processor's (training sets them in the processor when it loads it).
    """

    video_fps: float = 2.0
    min_pixels: int | None = None
    max_pixels: int | None = None

    def resize_rule(self, processor: Any) -> ResizeRule:
        """The smart-resize these inputs get: the processor's patch grid, these pixel bounds."""
        return ResizeRule.from_processor(processor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)


def load_rgb(item: str | os.PathLike[str] | bytes | Image.Image) -> Image.Image:
    """A fully loaded RGB PIL image from a path, encoded bytes or an image (returned as is when RGB)."""
    if isinstance(item, Image.Image):
        return item if item.mode == "RGB" else item.convert("RGB")
    if isinstance(item, (bytes, bytearray)):
        with Image.open(io.BytesIO(item)) as img:
            return img.convert("RGB")
    if isinstance(item, (str, os.PathLike)):
        with Image.open(item) as img:
            return img.convert("RGB")
    raise TypeError(f"not an image, image path or image bytes: {type(item).__name__}")


def video_metadata(
    frames: Sequence[Any],
    fps: float,
    frames_indices: Sequence[int] | None = None,
    total_num_frames: int | None = None,
) -> VideoMetadata:
    """``VideoMetadata`` of sampled ``frames``: the source's ``fps``, the indices the frames were
    taken at and its frame count. The defaults describe a frame list (the frames are the whole
    video). Qwen2.5-VL's processor reads ``sampled_fps`` = len(indices) / total * fps from it."""
    indices = list(range(len(frames))) if frames_indices is None else [int(i) for i in frames_indices]
    first = frames[0] if frames else None
    width, height = first.size if isinstance(first, Image.Image) else (None, None)
    return VideoMetadata(
        total_num_frames=len(frames) if total_num_frames is None else int(total_num_frames),
        fps=float(fps),
        frames_indices=indices,
        width=width,
        height=height,
    )


def _part_metadata(frames: list[Image.Image], described: Any, config: MediaConfig) -> VideoMetadata:
    if described is None:
        return video_metadata(frames, config.video_fps)
    if not isinstance(described, Mapping) or described.get("fps") is None:
        raise ValueError(f"a video part's video_metadata needs at least fps; got {described!r}")
    return video_metadata(
        frames, described["fps"], described.get("frames_indices"), described.get("total_num_frames")
    )


def _load_media(
    messages: Sequence[Mapping[str, Any]], config: MediaConfig
) -> tuple[list[dict[str, Any]], list[VideoMetadata]]:
    """Messages with every image and frame loaded as RGB PIL and only the keys a part needs (no
    ``None`` keys from Arrow, which the Qwen template would render as placeholders), plus one
    metadata per video in message order."""
    out: list[dict[str, Any]] = []
    metadata: list[VideoMetadata] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append({"role": message["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for part in content:
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": part.get("text") or ""})
            elif kind == "image":
                parts.append({"type": "image", "image": load_rgb(part["image"])})
            elif kind == "video":
                frames = [load_rgb(f) for f in part["video"]]
                if not frames:
                    raise ValueError("a video part has no frames")
                metadata.append(_part_metadata(frames, part.get("video_metadata"), config))
                parts.append({"type": "video", "video": frames})
            else:
                raise ValueError(f"unsupported content part type {kind!r} in a {message['role']} message")
        out.append({"role": message["role"], "content": parts})
    return out, metadata


def encode_messages(
    processor: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    config: MediaConfig | None = None,
    add_generation_prompt: bool = False,
    assistant_mask: bool = False,
    chat_template: str | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """One conversation -> 1-D ``input_ids``/``attention_mask``/``mm_token_type_ids`` (and
    ``assistant_masks``, bool, with ``assistant_mask=True``) plus its vision tensors
    (:data:`MEDIA_KEYS` that apply; ``second_per_grid_ts`` as float32).

    The processor renders and tokenizes (``apply_chat_template(tokenize=True)``): its assistant
    mask accounts for the expanded image/video placeholders, so no token id is hard-coded here.
    """
    config = config or MediaConfig()
    loaded, metadata = _load_media(messages, config)
    processor_kwargs: dict[str, Any] = {}
    if config.min_pixels is not None or config.max_pixels is not None:
        rule = config.resize_rule(processor)
        size = {"shortest_edge": rule.min_pixels, "longest_edge": rule.max_pixels}
        processor_kwargs["images_kwargs"] = {"size": size}
        processor_kwargs["videos_kwargs"] = {"size": size}
    if metadata:
        # The frames are the sampled video: no resampling, and the metadata's frame rate.
        processor_kwargs.setdefault("videos_kwargs", {}).update(
            {"do_sample_frames": False, "video_metadata": metadata}
        )
    out = processor.apply_chat_template(
        loaded,
        chat_template=chat_template,
        add_generation_prompt=add_generation_prompt,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        return_assistant_tokens_mask=assistant_mask,
        processor_kwargs=processor_kwargs,
        **(chat_template_kwargs or {}),
    )
    encoded: dict[str, torch.Tensor] = {
        "input_ids": out["input_ids"][0],
        "attention_mask": out["attention_mask"][0],
    }
    if "mm_token_type_ids" in out:
        encoded["mm_token_type_ids"] = out["mm_token_type_ids"][0]
    if assistant_mask:
        encoded["assistant_masks"] = torch.as_tensor(out["assistant_masks"])[0].bool()
    for key in MEDIA_KEYS:
        value = out.get(key)
        if value is not None:
            encoded[key] = torch.as_tensor(
                value, dtype=torch.float32 if key == "second_per_grid_ts" else None
            )
    return encoded


def collate_media(encoded: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Concatenate per-sample vision tensors in sample order; keys no sample has (or has as None)
    are left out. A sample's pixel rows are ``prod(grid_thw)`` per image/video, so slicing samples
    and concatenating keeps pixels and grids aligned."""
    out: dict[str, torch.Tensor] = {}
    for key in MEDIA_KEYS:
        parts = [e[key] for e in encoded if e.get(key) is not None]
        if parts:
            out[key] = torch.cat(parts, dim=0)
    return out


def pad_token_id(processor: Any) -> int:
    """The tokenizer's pad token (its end-of-sequence token when it has none)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad_id)


def collate_encoded(
    encoded: Sequence[Mapping[str, torch.Tensor]],
    *,
    pad_token_id: int,
    padding_side: str,
    pad_to_multiple_of: int | None = None,
    pad_values: Mapping[str, int] | None = None,
) -> dict[str, torch.Tensor]:
    """A batch of :func:`encode_messages` results: ``input_ids`` and the per-token keys padded
    (``pad_values`` adds keys, e.g. ``labels``), vision tensors concatenated (:func:`collate_media`)."""
    if not encoded:
        raise ValueError("an empty batch")
    batch = {
        "input_ids": pad([e["input_ids"] for e in encoded], pad_token_id, padding_side, pad_to_multiple_of)
    }
    for key, value in {**TOKEN_PAD_VALUES, **(pad_values or {})}.items():
        if key in encoded[0]:
            batch[key] = pad([e[key] for e in encoded], value, padding_side, pad_to_multiple_of)
    batch.update(collate_media(encoded))
    return batch


__all__ = [
    "MEDIA_KEYS",
    "TOKEN_PAD_VALUES",
    "MediaConfig",
    "collate_encoded",
    "collate_media",
    "encode_messages",
    "load_rgb",
    "pad_token_id",
    "video_metadata",
]
