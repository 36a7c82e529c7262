"""Qwen2.5-VL's original M-RoPE convention (spatialladder.positions), checked where positions are used.

Expected positions are worked out here from the rules (``hand_layout``), never by the module under
test, and compared with what reaches the language model's rotary embedding in the project's real
paths: training ``load_model`` + forward (left padding, cached decoding via ``rope_deltas``), the
eval runner's ``load_model`` + ``generate_batch`` (prefill and decode steps), and a GRPO step
(generation, old-policy, reference and policy forwards).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from spatialladder import positions
from spatialladder.positions import (
    POSITION_CONVENTION,
    STOCK_CONVENTION,
    PositionConventionChanged,
    check_stock_convention,
    position_convention,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TPS = 2  # tiny model's vision_config.tokens_per_second (Qwen2.5-VL-3B's value)
MERGE = 2
PATCH_ROW = 3 * 2 * 14 * 14  # channels * temporal_patch_size * patch_size**2


# ------------------------------------------------------------------------------------------------
# The rules, by hand
# ------------------------------------------------------------------------------------------------
def hand_layout(segments: list[tuple], rule: str = "original") -> list[list[int]]:
    """[t, h, w] positions of a token sequence described as segments:
    ("text", n) | ("image", (h, w)) | ("video", (t, h, w), seconds_per_grid), grids merged.

    Text: one position per token, equal on all axes, counting on from the running start. A vision
    block at start s: t = s + int(i * tokens_per_second * seconds) (0 for an image), h = s + row,
    w = s + column. The next block starts at the block's max position + 1 over all three axes
    (original), or at s + max(h, w) (transformers 5.23, ``rule="stock"``).
    """
    axes: list[list[int]] = [[], [], []]
    start = 0
    for seg in segments:
        if seg[0] == "text":
            for axis in axes:
                axis.extend(range(start, start + seg[1]))
            start += seg[1]
            continue
        (t, h, w), step = ((1, *seg[1]), 0.0) if seg[0] == "image" else (seg[1], TPS * seg[2])
        for ti, hi, wi in itertools.product(range(t), range(h), range(w)):
            axes[0].append(start + int(ti * step))
            axes[1].append(start + hi)
            axes[2].append(start + wi)
        if rule == "original":
            start = max(start + int((t - 1) * step), start + h - 1, start + w - 1) + 1
        else:
            start += max(h, w)
    return axes


def segments_of(ids: list[int], config: Any, grids: dict[str, Any]) -> list[tuple]:
    """Segments of one row's real tokens (runs of image pads / video pads / other tokens), taking
    grids (and seconds per grid) in order from the shared iterators in ``grids``."""
    out: list[tuple] = []
    for token, run in itertools.groupby(ids):
        n = len(list(run))
        if token == config.image_token_id:
            _, h, w = next(grids["image"])
            out.append(("image", (h // MERGE, w // MERGE)))
        elif token == config.video_token_id:
            t, h, w = next(grids["video"])
            out.append(("video", (t, h // MERGE, w // MERGE), next(grids["seconds"])))
        elif out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + n)
        else:
            out.append(("text", n))
    return out


def expected_rows(inputs: dict[str, Any], config: Any, rule: str = "original") -> list[list[list[int]]]:
    """Per batch row, the hand-worked [t, h, w] positions of its real (unpadded) tokens."""

    def listed(key: str) -> list:
        value = inputs.get(key)
        return [] if value is None else value.tolist()

    grids = {key: iter(listed(name)) for key, name in
             (("image", "image_grid_thw"), ("video", "video_grid_thw"), ("seconds", "second_per_grid_ts"))}  # fmt: skip
    rows = []
    for b, ids in enumerate(inputs["input_ids"].tolist()):
        mask = inputs.get("attention_mask")
        real = ids if mask is None else [i for i, m in zip(ids, mask[b].tolist()) if m]
        rows.append(hand_layout(segments_of(real, config, grids), rule))
    return rows


def real_positions(
    rope_positions: torch.Tensor, attention_mask: torch.Tensor | None
) -> list[list[list[int]]]:
    """What the rotary embedding got ([3, batch, seq]) at each row's real tokens."""
    out = []
    for b in range(rope_positions.shape[1]):
        keep = attention_mask[b].bool() if attention_mask is not None else slice(None)
        out.append(rope_positions[:, b, keep].tolist())
    return out


class RopeRecorder:
    """Captures, per language-model forward, the model inputs and the position ids that reach the
    rotary embedding (a forward pre-hook on each)."""

    def __init__(self, model: Any) -> None:
        self.calls: list[dict[str, Any]] = []
        self._handles = [
            model.register_forward_pre_hook(self._on_model, with_kwargs=True),
            model.model.language_model.rotary_emb.register_forward_pre_hook(self._on_rope),
        ]

    def _on_model(self, module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        cache = kwargs.get("past_key_values")
        self.calls.append(
            {
                "inputs": {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)},
                "decode": cache is not None and cache.get_seq_length() > 0,
            }
        )

    def _on_rope(self, module: Any, args: tuple) -> None:
        self.calls[-1]["rope"] = args[1].detach().clone()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def issue_inputs(config: Any, frames: int) -> dict[str, torch.Tensor]:
    t, h, w = frames // 2, 20, 26  # temporal_patch_size 2
    n = t * (h // MERGE) * (w // MERGE)
    return {
        "input_ids": torch.tensor([[7] * 5 + [config.video_token_id] * n + [8] * 10]),
        "mm_token_type_ids": torch.tensor([[0] * 5 + [2] * n + [0] * 10]),
        "video_grid_thw": torch.tensor([[t, h, w]]),
        "second_per_grid_ts": torch.tensor([1.0]),
        "pixel_values_videos": torch.randn(t * h * w, PATCH_ROW),
    }


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_model(tiny_model_dir: Path) -> Any:
    """The model as SFT / GRPO load it."""
    from trl import ModelConfig

    from spatialladder.training.modeling import load_model

    return load_model(ModelConfig(model_name_or_path=str(tiny_model_dir), dtype="float32")).eval()


@pytest.fixture(scope="module")
def stock_model(tiny_model_dir: Path) -> Any:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


# ------------------------------------------------------------------------------------------------
# The issue's table and the startup check
# ------------------------------------------------------------------------------------------------
# frames -> first position of the text after the video: (transformers 5.23, original). 5 text tokens,
# then the video at 5: temporal reach 5 + 2 * (T - 1), spatial reach 5 + 13 - 1 (merged 10x13).
ISSUE_TABLE = {4: (18, 18), 16: (18, 20), 32: (18, 36)}


def test_stock_transformers_gives_the_523_table_and_the_startup_check_knows_it(stock_model) -> None:
    config = stock_model.config
    for frames, (stock_first, _) in ISSUE_TABLE.items():
        inputs = issue_inputs(config, frames)
        inputs.pop("pixel_values_videos")
        got, _ = Qwen2_5_VLModel.get_rope_index(stock_model.model, **inputs)
        first = 5 + int(inputs["video_grid_thw"][0].prod()) // MERGE**2
        assert got[:, 0, first].tolist() == [stock_first] * 3, frames
        assert got[:, 0].tolist() == hand_layout(
            [("text", 5), ("video", (frames // 2, 10, 13), 1.0), ("text", 10)], "stock"
        )
    assert position_convention(stock_model) == STOCK_CONVENTION
    check_stock_convention(stock_model)  # the pinned transformers: passes


def test_startup_check_fails_loudly_when_transformers_changes(stock_model, monkeypatch) -> None:
    stock = Qwen2_5_VLModel.get_rope_index

    def upstream_fixed(self, input_ids, mm_token_type_ids, **kwargs):
        pos, _ = stock(self, input_ids, mm_token_type_ids, **kwargs)
        return positions.original_convention_positions(pos, mm_token_type_ids, kwargs.get("attention_mask"))

    monkeypatch.setattr(Qwen2_5_VLModel, "get_rope_index", upstream_fixed)
    with pytest.raises(
        PositionConventionChanged, match="upstream fixed .*45381.*drop spatialladder/positions.py"
    ):
        check_stock_convention(stock_model)

    def shifted(self, *args, **kwargs):
        pos, deltas = stock(self, *args, **kwargs)
        return pos + 1, deltas

    monkeypatch.setattr(Qwen2_5_VLModel, "get_rope_index", shifted)
    with pytest.raises(PositionConventionChanged, match="layout changed"):
        check_stock_convention(stock_model)


# ------------------------------------------------------------------------------------------------
# Training path: load_model + forward
# ------------------------------------------------------------------------------------------------
def test_video_table_reaches_the_rotary_embedding_in_a_forward(train_model) -> None:
    assert position_convention(train_model) == POSITION_CONVENTION
    rec = RopeRecorder(train_model)
    try:
        for frames, (_, original_first) in ISSUE_TABLE.items():
            inputs = issue_inputs(train_model.config, frames)
            with torch.no_grad():
                train_model(**inputs)
            rope = rec.calls[-1]["rope"]
            first = 5 + int(inputs["video_grid_thw"][0].prod()) // MERGE**2
            assert rope[:, 0, first].tolist() == [original_first] * 3, frames
            assert rope[:, 0].tolist() == expected_rows(inputs, train_model.config)[0]
            assert rope[0, 0, first:].tolist() == list(range(original_first, original_first + 10))
    finally:
        rec.remove()


def test_a_deep_copy_keeps_the_convention_bound_to_itself(train_model) -> None:
    import copy

    twin = copy.deepcopy(train_model)  # e.g. a reference model copied from the policy
    assert position_convention(twin) == POSITION_CONVENTION
    assert twin.model.get_rope_index.__self__ is twin.model  # not the original's backbone
    inputs = issue_inputs(twin.config, 16)
    inputs.pop("pixel_values_videos")
    got, _ = twin.model.get_rope_index(**inputs)
    assert got[:, 0, 5 + 8 * 130].tolist() == [ISSUE_TABLE[16][1]] * 3


def mixed_batch(config: Any) -> dict[str, torch.Tensor]:
    """Row 0: text, image (merged 2x3), text, image (3x2), text. Row 1: text, image (2x2), text,
    8-grid video (2x3, 2 fps), text. Left padding to the longer row."""
    img, vid = config.image_token_id, config.video_token_id
    row0 = [7] * 3 + [img] * 6 + [8] * 2 + [img] * 6 + [9] * 4
    row1 = [7] * 3 + [img] * 4 + [8] * 2 + [vid] * 48 + [9] * 5
    width = max(len(row0), len(row1))
    ids, mask = [], []
    for row in (row0, row1):
        ids.append([config.text_config.pad_token_id] * (width - len(row)) + row)
        mask.append([0] * (width - len(row)) + [1] * len(row))
    ids_t = torch.tensor(ids)
    types = torch.where(ids_t == img, 1, torch.where(ids_t == vid, 2, 0))
    image_grid = torch.tensor([[1, 4, 6], [1, 6, 4], [1, 4, 4]])
    video_grid = torch.tensor([[8, 4, 6]])
    return {
        "input_ids": ids_t,
        "attention_mask": torch.tensor(mask),
        "mm_token_type_ids": types,
        "image_grid_thw": image_grid,
        "video_grid_thw": video_grid,
        "second_per_grid_ts": torch.tensor([1.0]),
        "pixel_values": torch.randn(int(image_grid.prod(-1).sum()), PATCH_ROW),
        "pixel_values_videos": torch.randn(int(video_grid.prod(-1).sum()), PATCH_ROW),
    }


def test_multi_image_and_image_then_video_with_left_padding_and_cached_decoding(train_model) -> None:
    config = train_model.config
    inputs = mixed_batch(config)
    # By hand: row 0 (images never overhang): text 0-2, image at 3 (h 3-4, w 3-5), text 6-7, image at 8
    # (h 8-10, w 8-9), text 11-14. Row 1: text 0-2, image at 3 (3-4), text 5-6, video at 7 with
    # t = 7 + 2i (i < 8: up to 21), h 7-8, w 7-9, text 22-26 (transformers 5.23: 10-14).
    want = expected_rows(inputs, config)
    assert want[0][0] == [0, 1, 2] + [3] * 6 + [6, 7] + [8] * 6 + [11, 12, 13, 14]
    assert want[1][0][-5:] == [22, 23, 24, 25, 26] and want[1][0][7 + 4] == 7 and max(want[1][0]) == 26
    assert expected_rows(inputs, config, "stock")[1][0][-5:] == [10, 11, 12, 13, 14]

    rec = RopeRecorder(train_model)
    try:
        with torch.no_grad():
            train_model(**inputs)  # a training / log-prob forward: positions built from the batch
            deltas = train_model.model.rope_deltas.flatten().tolist()
            # Cached decoding without position_ids adds those rope_deltas to the text position. (5.23's
            # forward mis-sizes that path when a padded 2D mask comes along, stock or not, so decode
            # the unpadded row 1 on its own; generate() passes position_ids and is checked below.)
            row1 = {k: v[1:] for k, v in inputs.items() if k in ("input_ids", "mm_token_type_ids")}
            out = train_model(
                **row1,
                image_grid_thw=inputs["image_grid_thw"][2:],
                video_grid_thw=inputs["video_grid_thw"],
                second_per_grid_ts=inputs["second_per_grid_ts"],
                pixel_values=inputs["pixel_values"][int(inputs["image_grid_thw"][:2].prod(-1).sum()) :],
                pixel_values_videos=inputs["pixel_values_videos"],
                use_cache=True,
            )
            for _ in range(2):
                out = train_model(
                    input_ids=torch.tensor([[7]]), past_key_values=out.past_key_values, use_cache=True
                )
    finally:
        rec.remove()
    batch_forward, row1_prefill, *decodes = rec.calls
    assert real_positions(batch_forward["rope"], inputs["attention_mask"]) == want
    n_real = inputs["attention_mask"].sum(1).tolist()
    assert deltas == [max(want[b][0]) + 1 - n_real[b] for b in range(2)]
    assert row1_prefill["rope"][:, 0].tolist() == want[1]
    assert len(decodes) == 2
    for k, call in enumerate(decodes, start=1):
        assert call["decode"] and call["rope"][:, 0, 0].tolist() == [max(want[1][0]) + k] * 3, k


# ------------------------------------------------------------------------------------------------
# Evaluation path: runner.load_model + generate_batch (prefill and decode steps)
# ------------------------------------------------------------------------------------------------
def frames(n: int, size: int = 112) -> list[Any]:
    from PIL import Image

    return [Image.new("RGB", (size, size), (20 * i % 255, 90, 160)) for i in range(n)]


def video_messages(n_frames: int, question: str) -> list[dict[str, Any]]:
    from spatialladder.prompts import build_messages

    messages = build_messages(question, video=frames(n_frames))
    for part in messages[-1]["content"]:
        if part.get("type") == "video":  # 2 fps frame list, as the eval media cache describes them
            part["video_metadata"] = {
                "total_num_frames": n_frames,
                "fps": 2.0,
                "frames_indices": list(range(n_frames)),
            }
    return messages


def test_generate_prefill_and_decode_steps_with_left_padding(tiny_model_dir: Path, tmp_path: Path) -> None:
    from spatialladder.evaluation.runner import EvalConfig, _generation_config, generate_batch, load_model

    model, processor = load_model(str(tiny_model_dir), torch.device("cpu"))
    assert position_convention(model) == POSITION_CONVENTION
    cfg = EvalConfig(output_dir=tmp_path, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28, max_new_tokens=4)
    gen = _generation_config(model, cfg)
    gen.min_new_tokens = 4  # prefill + three decode steps for both rows, whatever the random model samples
    batch = [video_messages(16, "How many chairs are in the room?"), video_messages(8, "Which is closer?")]
    generate_inputs: dict[str, Any] = {}
    real_generate = model.generate

    def recording_generate(**kwargs: Any) -> Any:  # generate() consumes the grids before any forward
        generate_inputs.update(kwargs)
        return real_generate(**kwargs)

    model.generate = recording_generate
    rec = RopeRecorder(model)
    try:
        generate_batch(model, processor, batch, gen, cfg)
    finally:
        rec.remove()
    prefill, *decodes = rec.calls
    inputs = generate_inputs
    assert torch.equal(prefill["inputs"]["input_ids"], inputs["input_ids"])
    # 112x112 frames -> 8x8 patches (merged 4x4); 16 and 8 frames -> 8 and 4 temporal grids of 1 s
    assert inputs["video_grid_thw"].tolist() == [[8, 8, 8], [4, 8, 8]]
    assert inputs["second_per_grid_ts"].tolist() == [1.0, 1.0]
    mask = inputs["attention_mask"]
    assert not prefill["decode"] and mask.sum(1).tolist()[0] != mask.sum(1).tolist()[1]  # left padded
    want = expected_rows(inputs, model.config)
    assert real_positions(prefill["rope"], mask) == want
    # the question after the 16-frame video: temporal reach start + 14 beyond the spatial 4x4
    assert want[0] != expected_rows(inputs, model.config, "stock")[0]
    assert len(decodes) == 3
    for k, call in enumerate(decodes, start=1):
        assert call["decode"]
        for b in range(2):
            assert call["rope"][:, b, -1].tolist() == [max(want[b][0]) + k] * 3, (k, b)
    n_real = mask.sum(1)
    assert model.model.rope_deltas.flatten().tolist() == [
        max(w[0]) + 1 - int(n) for w, n in zip(want, n_real)
    ]


# ------------------------------------------------------------------------------------------------
# GRPO: generation, old-policy, reference and policy forwards
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_grpo_step_policy_and_reference_use_the_original_positions(
    tiny_model_dir: Path, synthetic_data_dir: Path, tmp_path: Path
) -> None:
    from test_grpo_video import make_trainer, synthetic_rows

    trainer = make_trainer(tiny_model_dir, synthetic_rows(synthetic_data_dir)["video"][:3], tmp_path / "out")
    assert position_convention(trainer.model) == POSITION_CONVENTION
    assert position_convention(trainer.ref_model) == POSITION_CONVENTION
    recorders = {"policy": RopeRecorder(trainer.model), "ref": RopeRecorder(trainer.ref_model)}
    trainer.train()
    checked = {"policy": 0, "ref": 0}
    overhang = 0
    for name, rec in recorders.items():
        rec.remove()
        for call in rec.calls:
            inputs = call["inputs"]
            if call["decode"] or "video_grid_thw" not in inputs:
                continue  # generation: its grids went to generate(), checked in the eval test above
            want = expected_rows(inputs, trainer.model.config)
            assert real_positions(call["rope"], inputs.get("attention_mask")) == want, name
            stock = expected_rows(inputs, trainer.model.config, "stock")
            overhang += sum(w != s for w, s in zip(want, stock))
            checked[name] += 1
    assert checked["policy"] >= 2 and checked["ref"] >= 1, checked  # old-policy + policy, reference
    assert overhang > 0  # the recipes' videos do overhang their frames: the two conventions differ here


# ------------------------------------------------------------------------------------------------
# Eval run configs
# ------------------------------------------------------------------------------------------------
def test_eval_resume_refuses_results_of_another_convention(tmp_path: Path) -> None:
    from spatialladder.evaluation.runner import EvalConfig, _check_run_config

    cfg = EvalConfig(output_dir=tmp_path)
    signature = cfg.run_signature("VSI-Bench", "some/model")
    assert signature["position_convention"] == POSITION_CONVENTION
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _check_run_config(fresh, signature)  # first run: recorded
    _check_run_config(fresh, signature)  # same convention: resumes
    assert json.loads((fresh / "run_config.json").read_text())["position_convention"] == POSITION_CONVENTION

    for old in (None, STOCK_CONVENTION):  # written before the convention was recorded / under the stock one
        bench_dir = tmp_path / f"old-{old is None}"
        bench_dir.mkdir()
        old_sig = {k: v for k, v in signature.items() if k != "position_convention"}
        if old is not None:
            old_sig["position_convention"] = old
        (bench_dir / "run_config.json").write_text(json.dumps(old_sig))
        with pytest.raises(SystemExit) as err:
            _check_run_config(bench_dir, signature)
        message = str(err.value)
        assert "position_convention" in message and "Rerun" in message and "45381" in message
        assert ("before the convention was recorded" in message) == (old is None)
