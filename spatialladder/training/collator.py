"""Batching for SFT: render, process vision inputs and keep the loss on the assistant answer only.

Labels are ``-100`` everywhere except the assistant's answer tokens and its closing
``<|im_end|>``: system and user turns, vision placeholders and padding never count. The mask comes
from the chat template's ``{% generation %}`` markers through
``processor.apply_chat_template(..., return_assistant_tokens_mask=True)`` (transformers >= 5.18
shifts it past the expanded image/video placeholders), so no token id is hard-coded. A template
without markers (the stock Qwen2.5-VL one) is swapped for TRL's training version of it
(:func:`resolve_training_chat_template`); the rendered text is identical, only the markers differ,
and anything a generation span holds after its end-of-turn token (TRL's Qwen2.5-VL training
template includes the following newline) is dropped from the targets.

Why not TRL 1.16's ``DataCollatorForVisionLanguageModeling`` (``assistant_only_loss=True``)? It
does the same masking for images, but:

* it has no video path: media come only from an ``image``/``images`` column, and a video part left
  in the messages is loaded by the processor without frame-rate metadata (24 fps assumed, so
  ``second_per_grid_ts`` and the temporal M-RoPE positions differ from generation and evaluation,
  which use the frame-list rate ``video_fps``);
* a batch is processed in one processor call, and with videos given as frame-path lists (the
  dataset's form) Qwen2.5-VL's processor rejects a batch whose first sample has no video but a
  later one has ("Found total 1 <|video_pad|> tokens and 8 videos": the empty first entry makes it
  read the frame list as 8 videos), i.e. many batches mixing image and video samples;
* it needs messages stored in the dataset, where Arrow gives every content part ``image``/``video``
  ``None`` keys that the Qwen template treats as extra placeholders.

So each sample is encoded alone by :func:`spatialladder.media_inputs.encode_messages` (its own
images or video, with metadata: the path GRPO and evaluation take too) and the collator pads
(TRL's ``pad``) and concatenates: ``pixel_values``/``image_grid_thw`` and ``pixel_values_videos``/
``video_grid_thw``/``second_per_grid_ts`` are all kept, in sample order, which is the order the
model assigns features to placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from spatialladder.media_inputs import MediaConfig, collate_encoded, encode_messages, pad_token_id
from spatialladder.training.conversations import sample_messages

IGNORE_INDEX = -100


def resolve_training_chat_template(processor: Any) -> str | None:
    """A chat template with ``{% generation %}`` markers whose assistant span ends with the
    end-of-turn token; None when the processor's own template already is one.

    Raises ``ValueError`` when there is none (TRL ships training templates for the stock Qwen
    families; a custom template must add the markers itself).
    """
    from trl.chat_template_utils import (
        get_training_chat_template,
        has_generation_markers,
        is_chat_template_stop_token_trained,
    )

    template = processor.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if template is None:
        raise ValueError("the processor has no chat template")
    replacement = None
    if not has_generation_markers(template):
        replacement = get_training_chat_template(processor)
        if replacement is None or not has_generation_markers(replacement):
            raise ValueError(
                "the chat template has no {% generation %} markers and TRL has no training version of it; "
                "wrap the assistant content and its end-of-turn token in {% generation %}...{% endgeneration %}"
            )
    if not is_chat_template_stop_token_trained(processor, chat_template=replacement):
        raise ValueError(
            "the chat template's {% generation %} span does not include the assistant's end-of-turn token; "
            "the model would never learn to stop"
        )
    return replacement


@dataclass
class SpatialSFTCollator:
    """Collate :mod:`~spatialladder.training.conversations` samples into a Qwen2.5-VL batch.

    ``chat_template`` is the training template from :func:`resolve_training_chat_template` (None =
    the processor's). ``max_length`` (tokens, vision included) raises for a longer sample instead of
    truncating, which would cut placeholders or the answer.
    """

    processor: Any
    chat_template: str | None = None
    max_length: int | None = None
    video_fps: float = 2.0
    pad_to_multiple_of: int | None = None

    def encode(self, sample: dict[str, Any]) -> dict[str, Any]:
        """One sample -> 1-D ``input_ids``/``attention_mask``/``mm_token_type_ids``/``labels`` plus
        its vision tensors."""
        encoded = encode_messages(
            self.processor,
            sample_messages(sample),
            config=MediaConfig(video_fps=self.video_fps),
            assistant_mask=True,
            chat_template=self.chat_template,
        )
        input_ids = encoded["input_ids"]
        assistant = self._trim_after_end_of_turn(encoded.pop("assistant_masks"), input_ids)
        source = sample.get("source", "?")
        if not assistant.any():
            raise ValueError(
                f"{source}: no assistant tokens in the rendered sample (chat template without markers?)"
            )
        if self.max_length is not None and input_ids.numel() > self.max_length:
            raise ValueError(
                f"{source}: sample is {input_ids.numel()} tokens (vision included), over max_length="
                f"{self.max_length}; raise max_length or lower max_pixels / video_frames"
            )
        encoded["labels"] = torch.where(assistant, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        return encoded

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate_encoded(
            [self.encode(sample) for sample in samples],
            pad_token_id=pad_token_id(self.processor),
            padding_side="right",
            pad_to_multiple_of=self.pad_to_multiple_of or None,
            pad_values={"labels": IGNORE_INDEX},
        )

    def _trim_after_end_of_turn(self, mask: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Drop what a generation span holds after its end-of-turn token.

        TRL's training template for the stock Qwen2.5-VL template puts the newline that follows
        ``<|im_end|>`` inside ``{% generation %}``; the model never emits it (decoding stops at the
        end-of-turn token), so it is not a target. The end-of-turn token is the tokenizer's eos.
        """
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        eot = tokenizer.eos_token_id
        if eot is None:
            return mask
        mask = mask.clone()
        positions = mask.nonzero().flatten().tolist()
        spans: list[list[int]] = []
        for pos in positions:
            if spans and pos == spans[-1][-1] + 1:
                spans[-1].append(pos)
            else:
                spans.append([pos])
        for span in spans:
            ends = [pos for pos in span if int(input_ids[pos]) == eot]
            if ends:
                mask[ends[-1] + 1 : span[-1] + 1] = False
        return mask


__all__ = ["IGNORE_INDEX", "SpatialSFTCollator", "resolve_training_chat_template"]
