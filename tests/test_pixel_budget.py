"""The run's pixel budget wins over the checkpoint's, whatever its preprocessor config format.

The Hub's ``Qwen/Qwen2.5-VL-3B-Instruct`` ships a ``preprocessor_config.json`` with top-level
``min_pixels``/``max_pixels`` (3136 / 12845056) and no ``size``; the checkpoints this project
saves use transformers 5's nested ``processor_config.json`` (``size = {shortest_edge,
longest_edge}`` for the image and the video processor). Both must end at the requested bounds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from spatialladder.geometry import ResizeRule, rescale_box
from spatialladder.training.modeling import check_pixel_bounds, load_processor

MIN_PX, MAX_PX = 16 * 28 * 28, 128 * 28 * 28  # the recipes' 12544 / 100352
HUB_MIN, HUB_MAX = 3136, 12845056
# Qwen/Qwen2.5-VL-3B-Instruct's preprocessor_config.json (the older format: no `size`, no video file).
HUB_PREPROCESSOR = {
    "min_pixels": HUB_MIN,
    "max_pixels": HUB_MAX,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}
SCANNET_FRAME = (1296, 968)  # width, height


@pytest.fixture(scope="module")
def hub_format_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hub-format") / "ckpt"
    shutil.copytree(tiny_model_dir, out)
    for name in ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json"):
        (out / name).unlink(missing_ok=True)
    (out / "preprocessor_config.json").write_text(json.dumps(HUB_PREPROCESSOR, indent=2))
    return out


def _bounds(sub_processor) -> tuple[int, int]:
    return sub_processor.size["shortest_edge"], sub_processor.size["longest_edge"]


def test_hub_format_fixture_carries_the_hubs_bounds(hub_format_dir: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(hub_format_dir)
    assert _bounds(processor.image_processor) == _bounds(processor.video_processor) == (HUB_MIN, HUB_MAX)
    # The `size` kwarg (what load_processor used to pass) loses against the file's top-level keys.
    sized = AutoProcessor.from_pretrained(
        hub_format_dir, size={"shortest_edge": MIN_PX, "longest_edge": MAX_PX}
    )
    assert _bounds(sized.image_processor) == (HUB_MIN, HUB_MAX)
    with pytest.raises(ValueError) as err:
        check_pixel_bounds(sized, MIN_PX, MAX_PX)  # the check that stops a run, naming both values
    message = str(err.value)
    assert f"requested min_pixels={MIN_PX}, max_pixels={MAX_PX}" in message
    assert f"image_processor min_pixels={HUB_MIN}, max_pixels={HUB_MAX}" in message
    assert f"video_processor min_pixels={HUB_MIN}, max_pixels={HUB_MAX}" in message


@pytest.mark.parametrize("config_format", ["hub", "nested"])
def test_requested_bounds_take_effect_for_images_video_and_boxes(
    config_format: str, hub_format_dir: Path, tiny_model_dir: Path
) -> None:
    path = hub_format_dir if config_format == "hub" else tiny_model_dir
    processor = load_processor(str(path), min_pixels=MIN_PX, max_pixels=MAX_PX)
    assert _bounds(processor.image_processor) == _bounds(processor.video_processor) == (MIN_PX, MAX_PX)
    check_pixel_bounds(processor, MIN_PX, MAX_PX)

    # A 1296x968 ScanNet frame: smart_resize to 364x252 = 26x18 patches of 14 px, merged 2x2:
    # 117 vision tokens (the Hub's own bounds would give 1610).
    frame = Image.new("RGB", SCANNET_FRAME, (120, 80, 40))
    image = processor.image_processor(images=[frame], return_tensors="pt")
    assert image["image_grid_thw"].tolist() == [[1, 18, 26]]
    merge = processor.image_processor.merge_size
    assert int(image["image_grid_thw"].prod()) // merge**2 == 117
    # Video frames get the same per-frame budget (2 frames = 1 temporal patch).
    video = processor.video_processor(videos=[[frame, frame]], return_tensors="pt", do_sample_frames=False)
    assert video["video_grid_thw"].tolist() == [[1, 18, 26]]

    # Grounding boxes are rescaled into the frame the model sees: 364x252, not the Hub's 1288x980.
    rule = ResizeRule.from_processor(processor)
    assert rule.resized_size(*SCANNET_FRAME) == (364, 252) == (26 * 14, 18 * 14)
    assert rescale_box([648, 484, 1296, 968], SCANNET_FRAME, rule.resized_size(*SCANNET_FRAME)) == [
        182,
        126,
        364,
        252,
    ]


def test_one_bound_keeps_the_checkpoints_other(hub_format_dir: Path) -> None:
    processor = load_processor(str(hub_format_dir), max_pixels=MAX_PX)
    assert _bounds(processor.image_processor) == _bounds(processor.video_processor) == (HUB_MIN, MAX_PX)


def test_saved_processor_reloads_with_the_run_bounds(hub_format_dir: Path, tmp_path: Path) -> None:
    # Stage 1 saves its processor; stage 2 reloads it (newer format) without passing bounds.
    load_processor(str(hub_format_dir), min_pixels=MIN_PX, max_pixels=MAX_PX).save_pretrained(tmp_path)
    reloaded = load_processor(str(tmp_path))
    assert _bounds(reloaded.image_processor) == _bounds(reloaded.video_processor) == (MIN_PX, MAX_PX)
