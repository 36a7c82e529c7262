"""One media-to-inputs path: SFT, GRPO and evaluation turn the same sample into the same tensors.

The three real entry points are compared, each fed the way it is in a run: the SFT collator a
``record_to_sample`` sample, the GRPO trainer's ``process_sample`` a ``spatial_rows`` row, the eval
runner's ``generate_batch`` body (``batch_inputs``) the messages ``make_messages`` builds from files
through the frame cache, with its pixel bounds given per call (the SFT and GRPO processors carry
them). The eval video is a lossless 2-fps video of the training frame list, decoded by PyAV. Its
frames lie on the processor's resize grid already: the frame cache resizes frames off the grid with
PIL, which does not round exactly like the processor's own resize (see the report of issue 10).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from PIL import Image

from spatialladder.data import load_records
from spatialladder.evaluation.benchmarks.base import MediaItem, make_messages
from spatialladder.evaluation.media import FrameCache
from spatialladder.evaluation.runner import EvalConfig, batch_inputs, eval_media_config, load_model
from spatialladder.media_inputs import (
    MEDIA_KEYS,
    MediaConfig,
    collate_encoded,
    encode_messages,
    load_rgb,
    video_metadata,
)
from spatialladder.training.collator import IGNORE_INDEX, SpatialSFTCollator, resolve_training_chat_template
from spatialladder.training.conversations import ConversationSettings, record_to_sample
from spatialladder.training.grpo import spatial_rows
from spatialladder.training.grpo_trainer import IMAGES_COLUMN, VIDEO_COLUMN, process_sample
from spatialladder.training.modeling import load_processor

# Below the tiny checkpoint's max (50176 px), so that the bounds decide the grids: evaluation must
# apply the run's bounds per call to see what training sees.
MIN_PX, MAX_PX = 4 * 28 * 28, 16 * 28 * 28
FRAME = (112, 84)  # width, height: 4 x 3 cells of 28 px, inside the bounds (no resize)
DATA_TYPES = ("single_image", "multi_view", "video")
# Hand-worked grids (t, h, w) in 14-px patches. 160x120 = 19200 px > 12544: beta = sqrt(19200 / 12544)
# = 1.237, floor(120 / 1.237 / 28) = 3 and floor(160 / 1.237 / 28) = 4 cells -> 112x84. 192x96 on the
# grid is 196x84 = 16464 px > 12544: beta = sqrt(18432 / 12544) = 1.212 -> 2 x 5 cells = 140x56.
# 8 frames of 112x84 -> 4 temporal patches of 2 frames, 6x8 patches, 1 s each at 2 fps.
GRIDS = {
    "single_image": ("image_grid_thw", [[1, 6, 8]]),
    "multi_view": ("image_grid_thw", [[1, 4, 10]] * 8),
    "video": ("video_grid_thw", [[4, 6, 8]]),
}


def write_lossless_video(frames: list[Image.Image], path: Path, fps: int) -> Path:
    """RGB frames -> a PNG-coded QuickTime video: decoding gives the exact pixels back."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("png", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def records(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One spatial record per data type; the video's frames moved onto the resize grid (PNG)."""
    rows = [json.loads(line) for line in (synthetic_data_dir / "spld_spatial_data.jsonl").open()]
    media_root = synthetic_data_dir / "media"
    out_dir = tmp_path_factory.mktemp("on-grid")
    video_row = next(r for r in rows if r["data_type"] == "video")
    names = []
    for i, rel in enumerate(video_row["image"]):
        frame = load_rgb(media_root / rel).crop((0, 0, *FRAME))
        frame.save(out_dir / f"frame{i}.png")
        names.append(f"frame{i}.png")
    write_lossless_video([load_rgb(out_dir / n) for n in names], out_dir / "scene.mov", fps=2)
    (out_dir / "video.jsonl").write_text(json.dumps({**video_row, "image": names}) + "\n")
    by_type = {}
    for rec in load_records(synthetic_data_dir / "spld_spatial_data.jsonl", media_root, kind="spatial"):
        by_type.setdefault(rec.data_type, rec)
    by_type["video"] = load_records(out_dir / "video.jsonl", out_dir, kind="spatial")[0]
    return {"by_type": by_type, "video_file": out_dir / "scene.mov"}


@pytest.fixture(scope="module")
def train_processor(tiny_model_dir: Path) -> Any:
    return load_processor(str(tiny_model_dir), min_pixels=MIN_PX, max_pixels=MAX_PX)


@pytest.fixture(scope="module")
def eval_setup(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, EvalConfig]:
    _, processor = load_model(str(tiny_model_dir), torch.device("cpu"))  # the checkpoint's own bounds
    cfg = EvalConfig(model=[], benchmarks=[], output_dir=tmp_path_factory.mktemp("eval"),
                     min_pixels=MIN_PX, max_pixels=MAX_PX)  # fmt: skip
    return processor, cfg


def sft_inputs(processor: Any, record: Any) -> dict[str, torch.Tensor]:
    sample = record_to_sample(record, ConversationSettings(prompt_kind="direct", video_frames=8))
    collator = SpatialSFTCollator(
        processor, chat_template=resolve_training_chat_template(processor), video_fps=2.0
    )
    return {
        k: v[0] if k in ("input_ids", "labels", "mm_token_type_ids") else v
        for k, v in collator([sample]).items()
    }


def grpo_inputs(processor: Any, record: Any) -> dict[str, torch.Tensor]:
    row = spatial_rows([record], "direct", 8)[0]
    sample = process_sample(
        processor, row["prompt"], row[IMAGES_COLUMN], row[VIDEO_COLUMN] or None, MediaConfig()
    )
    return {
        "input_ids": torch.tensor(sample.prompt_ids),
        **{k: v for k, v in sample.tensors.items() if v is not None},
    }


def eval_messages(record: Any, video_file: Path, cache: FrameCache) -> list[dict[str, Any]]:
    text = record_to_sample(record, ConversationSettings(prompt_kind="direct"))["prompt"]
    items = (
        [MediaItem("video", path=video_file)]
        if record.data_type == "video"
        else [MediaItem("image", path=Path(p)) for p in record.images]
    )
    return make_messages(text, items, media=cache, num_frames=len(record.images))


@pytest.fixture(scope="module")
def three_paths(records, train_processor, eval_setup) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    eval_processor, cfg = eval_setup
    cache = FrameCache(None, resize=eval_media_config(cfg).resize_rule(eval_processor))
    out: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for data_type, record in records["by_type"].items():
        messages = eval_messages(record, records["video_file"], cache)
        evaluated = batch_inputs(eval_processor, [messages], cfg)
        out[data_type] = {
            "sft": sft_inputs(train_processor, record),
            "grpo": grpo_inputs(train_processor, record),
            "eval": {k: v[0] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v
                     for k, v in evaluated.items()},
        }  # fmt: skip
    assert cache.stats.decodes == 1  # the eval video really was decoded
    return out


@pytest.mark.parametrize("data_type", DATA_TYPES)
def test_sft_grpo_and_eval_give_identical_tensors(three_paths, data_type: str) -> None:
    sft, grpo, evaluated = (three_paths[data_type][path] for path in ("sft", "grpo", "eval"))
    prompt = grpo["input_ids"]
    n = prompt.numel()
    # The prompt (system, user turn with every placeholder, assistant header) is the same tokens;
    # SFT's sequence continues with the answer, and its loss starts exactly there.
    assert torch.equal(evaluated["input_ids"], prompt)
    assert torch.equal(sft["input_ids"][:n], prompt)
    assert (sft["labels"][:n] == IGNORE_INDEX).all() and sft["labels"][n] != IGNORE_INDEX
    assert torch.equal(sft["mm_token_type_ids"][:n], evaluated["mm_token_type_ids"])
    present = {k for k in MEDIA_KEYS if k in sft}
    assert present == {k for k in MEDIA_KEYS if k in grpo} == {k for k in MEDIA_KEYS if k in evaluated}
    for key in present:
        for name, other in (("grpo", grpo), ("eval", evaluated)):
            assert sft[key].dtype == other[key].dtype and torch.equal(sft[key], other[key]), (name, key)
    grid_key, grid = GRIDS[data_type]
    assert sft[grid_key].tolist() == grid
    if data_type == "video":
        assert present == {"pixel_values_videos", "video_grid_thw", "second_per_grid_ts"}
        assert sft["second_per_grid_ts"].tolist() == [1.0]  # temporal patch of 2 frames / 2 fps
    else:
        assert present == {"pixel_values", "image_grid_thw"}


def test_eval_batch_mixing_images_and_video_keeps_each_sample(three_paths, records, eval_setup) -> None:
    """Left padding in a mixed batch (image first, then a video: the case that breaks one processor
    call over frame lists) leaves every sample's tokens and vision tensors as encoded alone."""
    processor, cfg = eval_setup
    cache = FrameCache(None, resize=eval_media_config(cfg).resize_rule(processor))
    order = ["single_image", "video", "multi_view"]
    batch = batch_inputs(
        processor, [eval_messages(records["by_type"][t], records["video_file"], cache) for t in order], cfg
    )
    width = batch["input_ids"].shape[1]
    for row, data_type in enumerate(order):
        alone = three_paths[data_type]["eval"]
        n = alone["input_ids"].numel()
        assert torch.equal(batch["input_ids"][row, width - n :], alone["input_ids"])
        mask = batch["attention_mask"][row]
        assert (mask[: width - n] == 0).all() and mask[width - n :].all()
    for key in MEDIA_KEYS:
        parts = [three_paths[t]["eval"][key] for t in order if key in three_paths[t]["eval"]]
        assert torch.equal(batch[key], torch.cat(parts))


def test_decoded_video_metadata_sets_seconds_per_grid(train_processor) -> None:
    # 8 frames sampled from 40 at 8 fps: sampled fps 8 * 8 / 40 = 1.6, so a temporal patch of two
    # frames spans 2 / 1.6 = 1.25 s; the same frames as a plain frame list at 2 fps span 1 s.
    frames = [Image.new("RGB", FRAME, (10 * i, 90, 160)) for i in range(8)]
    meta = video_metadata(frames, 8.0, [0, 5, 11, 16, 22, 27, 33, 39], 40)
    assert meta.sampled_fps == pytest.approx(1.6) and (meta.width, meta.height) == FRAME
    described = [{"role": "user", "content": [{"type": "video", "video": frames, "video_metadata": dict(meta)},
                                              {"type": "text", "text": "q"}]}]  # fmt: skip
    plain = [{"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": "q"}]}]
    assert encode_messages(train_processor, described)["second_per_grid_ts"].tolist() == [1.25]
    assert encode_messages(train_processor, plain)["second_per_grid_ts"].tolist() == [1.0]
    with pytest.raises(ValueError, match="fps"):
        encode_messages(train_processor, [{"role": "user", "content": [
            {"type": "video", "video": frames, "video_metadata": {"total_num_frames": 8}}]}])  # fmt: skip


def test_frame_cache_grid_comes_from_the_processor(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A processor with 16-px patches (Qwen3-VL's) resizes to multiples of 32: the frame cache's
    rule follows it, so the processor's own resize of the cached frames changes nothing."""
    processor = load_processor(str(tiny_model_dir))
    for sub in (processor.image_processor, processor.video_processor):
        sub.patch_size = 16
    rule = MediaConfig(min_pixels=MIN_PX, max_pixels=MAX_PX).resize_rule(processor)
    assert (rule.factor, rule.min_pixels, rule.max_pixels) == (32, MIN_PX, MAX_PX)
    frames = [Image.new("RGB", (200, 150), (30 * i, 60, 90)) for i in range(4)]
    cache = FrameCache(None, resize=rule)
    video = cache.video(write_lossless_video(frames, tmp_path / "v.mov", fps=4), 4)
    # 200x150 = 30000 px > 12544: beta = sqrt(30000 / 12544) = 1.547, floor(150 / 1.547 / 32) = 3 and
    # floor(200 / 1.547 / 32) = 4 cells of 32 px -> 128x96 (a 28 grid would give 140x84).
    assert {f.size for f in video.frames} == {(128, 96)}
    size = {"shortest_edge": MIN_PX, "longest_edge": MAX_PX}
    grid = processor.video_processor(videos=[video.frames], size=size, do_sample_frames=False)[
        "video_grid_thw"
    ]
    assert grid.tolist() == [[2, 96 // 16, 128 // 16]]


def test_load_rgb_and_collate_by_hand(tmp_path: Path) -> None:
    grey = Image.new("L", (3, 2), 7)
    grey.save(tmp_path / "g.png")
    buf = io.BytesIO()
    grey.save(buf, format="PNG")
    for item in (grey, tmp_path / "g.png", str(tmp_path / "g.png"), buf.getvalue()):
        img = load_rgb(item)
        assert img.mode == "RGB" and img.size == (3, 2) and np.asarray(img).tolist()[0][0] == [7, 7, 7]
    with pytest.raises(TypeError):
        load_rgb(3)  # type: ignore[arg-type]

    a = {"input_ids": torch.tensor([5, 6, 7]), "attention_mask": torch.ones(3, dtype=torch.long),
         "labels": torch.tensor([-100, 6, 7]), "pixel_values": torch.ones(4, 2)}  # fmt: skip
    b = {"input_ids": torch.tensor([8]), "attention_mask": torch.ones(1, dtype=torch.long),
         "labels": torch.tensor([8]), "pixel_values": torch.zeros(1, 2)}  # fmt: skip
    right = collate_encoded([a, b], pad_token_id=0, padding_side="right", pad_to_multiple_of=4,
                            pad_values={"labels": IGNORE_INDEX})  # fmt: skip
    assert right["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert right["labels"].tolist() == [[-100, 6, 7, -100], [8, -100, -100, -100]]
    assert right["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert right["pixel_values"].shape == (5, 2) and right["pixel_values"][4].tolist() == [0, 0]
    left = collate_encoded([a, b], pad_token_id=9, padding_side="left")
    assert left["input_ids"].tolist() == [[5, 6, 7], [9, 9, 8]] and "labels" not in left
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
