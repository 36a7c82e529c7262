"""Keep every rank's vision tower in step under DeepSpeed ZeRO-3 (and ZeRO-2).

Under ZeRO-3 each module's parameters are all-gathered (a collective) when the module runs and
reduce-scattered in backward. A rank whose micro-batch holds no image or video never calls the
vision tower, so the ranks that do wait forever for it: the run hangs (a weak point of the
released SpatialLadder code). The same happens, less visibly, when one rank's batch mixes images
and a video (the stock forward calls the tower twice) while another's holds only images (once).

:func:`install_uniform_vision_forward` patches the vision-language backbone's ``forward`` (on the
instance, like TRL patches the LM head) so that every forward that is not a cached decoding step
calls the vision tower **exactly once**:

* images and videos of the call are encoded together in one tower call (the tower treats each
  ``grid_thw`` row independently, so this equals two calls up to float rounding) and handed to the
  stock forward as ``mm_encoder_outputs``;
* a call with no pixels encodes a dummy 1×2×2-patch image of zeros and adds ``0 * features.sum()``
  to the input embeddings: the loss is unchanged, but the tower's forward and backward run, so its
  gather/reduce collectives match the other ranks'.

ZeRO-2 needs it too, for another reason: it reduces gradients in buckets as they become ready
during backward, so a text-only rank (no vision-tower gradients at all) fills different buckets than
a media rank and the reductions mismatch (measured: 2 gloo ranks crash in the first backward). The
dummy's zero gradients make every rank's buckets the same.

It is only installed when asked (``vision_dummy=True``) or under DeepSpeed ZeRO-2/3 (``"auto"``);
otherwise the model is untouched. Generation with ``ds3_gather_for_generation=True`` (TRL's default) gathers the
full model first, so only the training/log-prob forwards depend on this.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

PATCHED_ATTR = "_spatialladder_uniform_vision"


def find_vision_backbone(model: nn.Module) -> nn.Module:
    """The module that owns the vision tower and merges its features (``Qwen2_5_VLModel``).

    Works through DeepSpeed/DDP/PEFT wrappers by searching the module tree.
    """
    for module in model.modules():
        if hasattr(module, "visual") and hasattr(module, "get_image_features"):
            return module
    raise ValueError(f"{type(model).__name__} has no vision-language backbone (no module with `.visual`)")


def zero_stage(accelerator: Any) -> int:
    """The DeepSpeed ZeRO stage an accelerate ``Accelerator`` runs (0: no DeepSpeed)."""
    plugin = getattr(getattr(accelerator, "state", None), "deepspeed_plugin", None)
    return 0 if plugin is None else int(getattr(plugin, "zero_stage", 0) or 0)


def is_zero3(accelerator: Any) -> bool:
    """Whether an accelerate ``Accelerator`` runs DeepSpeed ZeRO stage 3."""
    return zero_stage(accelerator) == 3


def _dummy_inputs(visual: nn.Module, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest valid tower input: one frame of 2×2 patches (one merged token), all zeros."""
    cfg = visual.config
    merge = int(getattr(cfg, "spatial_merge_size", 2))
    row = int(cfg.in_channels) * int(cfg.temporal_patch_size) * int(cfg.patch_size) ** 2
    pixels = torch.zeros(merge * merge, row, device=device, dtype=visual.dtype)
    grid = torch.tensor([[1, merge, merge]], device=device, dtype=torch.long)
    return pixels, grid


def encode_media_once(
    backbone: nn.Module,
    pixel_values: torch.Tensor | None,
    image_grid_thw: torch.Tensor | None,
    pixel_values_videos: torch.Tensor | None,
    video_grid_thw: torch.Tensor | None,
) -> dict[str, BaseModelOutputWithPooling]:
    """Encode the images and videos of one forward in a single vision-tower call.

    Returns ``mm_encoder_outputs`` as the stock forward expects it: per modality, the merged
    features split per image / per video.
    """
    visual = backbone.visual
    rows, grids = [], []
    if pixel_values is not None:
        rows.append(pixel_values.type(visual.dtype))
        grids.append(image_grid_thw)
    if pixel_values_videos is not None:
        rows.append(pixel_values_videos.type(visual.dtype))
        grids.append(video_grid_thw)
    grid = torch.cat(grids, dim=0)
    pooled = visual(torch.cat(rows, dim=0), grid_thw=grid).pooler_output
    merge_unit = int(visual.spatial_merge_size) ** 2
    per_item = torch.split(pooled, (grid.prod(-1) // merge_unit).tolist())
    n_images = image_grid_thw.shape[0] if pixel_values is not None else 0
    out: dict[str, BaseModelOutputWithPooling] = {}
    if pixel_values is not None:
        out["image"] = BaseModelOutputWithPooling(pooler_output=per_item[:n_images])
    if pixel_values_videos is not None:
        out["video"] = BaseModelOutputWithPooling(pooler_output=per_item[n_images:])
    return out


def _is_cached_decode_step(kwargs: dict[str, Any]) -> bool:
    cache = kwargs.get("past_key_values")
    if cache is None:
        return False
    try:
        return int(cache.get_seq_length()) > 0
    except (AttributeError, TypeError):
        return True


def install_uniform_vision_forward(model: nn.Module) -> nn.Module:
    """Patch ``model``'s vision-language backbone so each forward runs the vision tower exactly once.

    Idempotent. Returns the patched backbone. See the module docstring for why.
    """
    backbone = find_vision_backbone(model)
    if getattr(backbone, PATCHED_ATTR, False):
        return backbone
    original_forward = backbone.forward

    @functools.wraps(original_forward)
    def forward(*args: Any, **kwargs: Any) -> Any:
        if args:  # normalise the first positional argument (input_ids) into kwargs
            kwargs["input_ids"], args = args[0], args[1:]
        # Already-encoded media (transformers' generate() pre-encodes them) or a cached decoding step:
        # nothing to do. An empty mm_encoder_outputs dict (generate's default) counts as none.
        if kwargs.get("mm_encoder_outputs") or _is_cached_decode_step(kwargs):
            return original_forward(*args, **kwargs)
        pixel_values = kwargs.pop("pixel_values", None)
        pixel_values_videos = kwargs.pop("pixel_values_videos", None)
        # Both branches call the tower FIRST, before any other module runs: ZeRO-3 gathers
        # parameters in call order, so a text-only rank that embedded its tokens before the dummy
        # tower call would gather the embedding while a media rank gathers the tower (mismatch).
        if pixel_values is not None or pixel_values_videos is not None:
            kwargs["mm_encoder_outputs"] = encode_media_once(  # one tower call for images + videos
                backbone,
                pixel_values,
                kwargs.get("image_grid_thw"),
                pixel_values_videos,
                kwargs.get("video_grid_thw"),
            )
            return original_forward(*args, **kwargs)
        # No pixels on this rank: run the tower on a dummy whose contribution is exactly zero.
        embeds = kwargs.get("inputs_embeds")
        device = (embeds if embeds is not None else kwargs["input_ids"]).device
        pixels, grid = _dummy_inputs(backbone.visual, device)
        dummy = backbone.visual(pixels, grid_thw=grid).pooler_output
        if embeds is None:
            embeds = backbone.get_input_embeddings()(kwargs["input_ids"])
        kwargs["inputs_embeds"] = embeds + 0.0 * dummy.sum().to(embeds.dtype)
        return original_forward(*args, **kwargs)

    backbone.forward = forward
    setattr(backbone, PATCHED_ATTR, True)
    return backbone


def check_generation_gather(zero3: bool, gather_for_generation: bool, has_media: bool) -> None:
    """Refuse ZeRO-3 + ``ds3_gather_for_generation=False`` on data with media.

    Without the gather, ``generate`` runs on the sharded model and encodes media in its own prefill
    path (``mm_encoder_outputs`` computed before the patched forward is reached), and each rank
    decodes a different number of tokens: the vision dummy cannot keep the ranks' parameter
    gathers in step there, so ranks with different media would hang (NCCL) or crash (gloo).
    """
    if zero3 and has_media and not gather_for_generation:
        raise ValueError(
            "ds3_gather_for_generation=false is not supported with image/video data under DeepSpeed "
            "ZeRO-3: generation would encode media outside the vision-dummy forward, so ranks with "
            "different media (or none) would issue mismatched parameter gathers and hang. Keep "
            "ds3_gather_for_generation true (TRL's default: the full model is gathered for generation)."
        )


def resolve_vision_dummy(setting: bool | str | None, accelerator: Any) -> bool:
    """``True``/``False`` as given; ``"auto"``/None: on exactly under DeepSpeed ZeRO-2 or ZeRO-3."""
    if isinstance(setting, bool):
        return setting
    if setting in (None, "auto"):
        return zero_stage(accelerator) >= 2
    if isinstance(setting, str) and setting.lower() in ("true", "false"):
        return setting.lower() == "true"
    raise ValueError(f"vision_dummy must be true, false or 'auto', got {setting!r}")


__all__ = [
    "check_generation_gather",
    "encode_media_once",
    "find_vision_backbone",
    "install_uniform_vision_forward",
    "is_zero3",
    "zero_stage",
    "resolve_vision_dummy",
]
