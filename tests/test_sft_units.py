"""SFT building blocks on the tiny model + synthetic data: samples, targets, masks, config, loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from trl import ModelConfig
from trl.chat_template_utils import qwen2_5_vl_chat_template as QWEN25VL_INSTRUCT_TEMPLATE

from spatialladder.data import load_records
from spatialladder.geometry import ResizeRule
from spatialladder.training.collator import IGNORE_INDEX, SpatialSFTCollator, resolve_training_chat_template
from spatialladder.training.config import ConfigError, SFTConfig, SpatialLadderArguments, parse_args
from spatialladder.training.conversations import (
    ConversationSettings,
    record_to_sample,
    records_to_samples,
    subsample_frames,
)
from spatialladder.training.modeling import (
    checkpoint_problems,
    find_resume_checkpoint,
    freeze_vision_tower,
    load_processor,
    resolve_attn_implementation,
)

REPO = Path(__file__).resolve().parents[1]
MIN_PX, MAX_PX = 16 * 28 * 28, 128 * 28 * 28  # the paper's training bounds
DATA_TYPES = ("single_image", "multi_view", "video")


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return load_processor(str(tiny_model_dir), min_pixels=MIN_PX, max_pixels=MAX_PX)


@pytest.fixture(scope="module")
def samples(synthetic_data_dir: Path, processor) -> dict[str, dict[str, list[dict]]]:
    """Samples per file kind and data type (spatial: direct prompts, cold start: own prompts)."""
    settings = ConversationSettings(video_frames=4, resize_rule=ResizeRule.from_processor(processor))
    out: dict[str, dict[str, list[dict]]] = {}
    for kind in ("grounding", "spatial", "coldstart"):
        records = load_records(synthetic_data_dir / f"spld_{kind}_data.jsonl", synthetic_data_dir / "media")
        by_type: dict[str, list[dict]] = {}
        for sample in records_to_samples(records, settings):
            by_type.setdefault(sample["data_type"], []).append(sample)
        out[kind] = by_type
    return out


def _collator(processor, template: str | None = None) -> SpatialSFTCollator:
    return SpatialSFTCollator(processor, chat_template=template, video_fps=2.0)


def _unmasked_text(processor, batch: dict, row: int) -> str:
    keep = batch["labels"][row] != IGNORE_INDEX
    return processor.tokenizer.decode(batch["input_ids"][row][keep])


# ------------------------------------------------------------------------------------- targets


def test_grounding_boxes_rescaled_per_real_image_size(tmp_path: Path, processor) -> None:
    # Two images, same relative box, different real sizes: each is mapped with its own scale.
    #   160x120 -> smart_resize (factor 28) -> 168x112: x * 168/160 = 1.05, y * 112/120 = 0.9333
    #       [16, 12, 80, 60] -> [16.8, 11.2, 84, 56] -> [17, 11, 84, 56]
    #   320x240 -> 308x252: x * 0.9625, y * 1.05
    #       [32, 24, 160, 120] -> [30.8, 25.2, 154, 126] -> [31, 25, 154, 126]
    media = tmp_path / "media"
    media.mkdir()
    Image.new("RGB", (160, 120), (90, 90, 90)).save(media / "small.jpg")
    Image.new("RGB", (320, 240), (90, 90, 90)).save(media / "large.jpg")
    rows = [
        {"question_id": 0, "question": "Locate the chair.", "image": ["small.jpg"], "data_type": "single_image",
         "answer": [{"bbox_2d": [16, 12, 80, 60], "label": "chair"}]},
        {"question_id": 1, "question": "Locate the chair and the lamp.", "image": ["large.jpg"],
         "data_type": "single_image", "answer": [{"bbox_2d": [32, 24, 160, 120], "label": "chair"},
                                                 {"bbox_2d": [0, 0, 10, 20], "label": "lamp"}]},
    ]  # fmt: skip
    path = tmp_path / "spld_grounding_data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rule = ResizeRule.from_processor(processor)
    assert (rule.min_pixels, rule.max_pixels) == (MIN_PX, MAX_PX)
    assert rule.resized_size(160, 120) == (168, 112) and rule.resized_size(320, 240) == (308, 252)

    settings = ConversationSettings(resize_rule=rule)
    small, large = (record_to_sample(r, settings) for r in load_records(path, media))
    assert small["target"] == '```json\n[\n\t{"bbox_2d": [17, 11, 84, 56], "label": "chair"}\n]\n```'
    assert large["target"] == (
        '```json\n[\n\t{"bbox_2d": [31, 25, 154, 126], "label": "chair"},\n'
        '\t{"bbox_2d": [0, 0, 10, 21], "label": "lamp"}\n]\n```'
    )
    assert small["prompt"].startswith("Question: Locate the chair.\n") and "JSON" in small["prompt"]
    assert small["images"] == [str(media / "small.jpg")] and small["video"] == []


def test_spatial_and_coldstart_targets(samples) -> None:
    for data_type in DATA_TYPES:
        sample = samples["spatial"][data_type][0]
        assert sample["prompt"].startswith("Question: ")
        assert sample["target"] and len(sample["target"].split()) == 1  # bare letter or number
        assert sample["prompt"].endswith("directly.")
        cold = samples["coldstart"][data_type][0]
        assert cold["target"].startswith("<think>") and cold["target"].endswith("</answer>")
        assert "<think> </think>" in cold["prompt"]  # the row's own thinking prompt
    mcq = next(s for s in samples["spatial"]["single_image"] if "Options:" in s["prompt"])
    assert mcq["target"] in "ABCD"
    assert len(samples["spatial"]["multi_view"][0]["images"]) == 8
    video = samples["spatial"]["video"][0]
    assert video["images"] == [] and len(video["video"]) == 4


def test_subsample_frames_uniform() -> None:
    assert subsample_frames(range(16), 4) == [0, 5, 10, 15]
    assert subsample_frames(range(8), 4) == [0, 2, 5, 7]
    assert subsample_frames(range(3), 8) == [0, 1, 2]
    assert subsample_frames(range(9), 1) == [0]


def test_thinking_prompt_needs_reasoning_targets(samples, synthetic_data_dir: Path, processor) -> None:
    records = load_records(synthetic_data_dir / "spld_spatial_data.jsonl", synthetic_data_dir / "media")
    with pytest.raises(ValueError, match="prompt_kind"):
        record_to_sample(records[0], ConversationSettings(prompt_kind="thinking"))


# ------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("data_type", DATA_TYPES)
@pytest.mark.parametrize("kind", ["spatial", "coldstart"])
def test_labels_are_exactly_answer_and_end_of_turn(processor, samples, kind: str, data_type: str) -> None:
    sample = samples[kind][data_type][0]
    batch = _collator(processor)([sample])
    assert _unmasked_text(processor, batch, 0) == sample["target"] + "<|im_end|>"
    # Vision placeholders are in the input but never in the loss.
    pad_ids = {processor.tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>")}
    labels = batch["labels"][0]
    assert not any(int(t) in pad_ids for t in labels[labels != IGNORE_INDEX])
    assert any(int(t) in pad_ids for t in batch["input_ids"][0])
    if data_type == "video":
        assert batch["video_grid_thw"].shape == (1, 3) and "pixel_values" not in batch
        assert batch["second_per_grid_ts"].tolist() == [1.0]  # temporal_patch_size 2 / 2 fps
    else:
        assert batch["image_grid_thw"].shape[0] == (8 if data_type == "multi_view" else 1)


def test_grounding_labels_exact(processor, samples) -> None:
    sample = samples["grounding"]["single_image"][0]
    batch = _collator(processor)([sample])
    assert _unmasked_text(processor, batch, 0) == sample["target"] + "<|im_end|>"


def test_mixed_batch_keeps_images_and_videos(processor, samples, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText

    batch_samples = [
        samples["spatial"]["single_image"][0],  # image first, then a video: the case that breaks a
        samples["spatial"]["video"][0],  # single processor call over frame-path lists
        samples["spatial"]["multi_view"][0],
        samples["coldstart"]["video"][0],
    ]
    batch = _collator(processor)(batch_samples)
    for row, sample in enumerate(batch_samples):
        assert _unmasked_text(processor, batch, row) == sample["target"] + "<|im_end|>"
    lengths = batch["attention_mask"].sum(dim=1)
    for row, length in enumerate(lengths.tolist()):
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()  # padding never counts
        assert (batch["attention_mask"][row, length:] == 0).all()
    assert batch["image_grid_thw"].shape[0] == 1 + 8 and batch["video_grid_thw"].shape[0] == 2
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(-1).sum())
    assert batch["pixel_values_videos"].shape[0] == int(batch["video_grid_thw"].prod(-1).sum())
    assert batch["second_per_grid_ts"].shape == (2,)
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0  # pixels reached the tower


def test_stock_qwen_template_gets_trl_training_template(tiny_model_dir: Path, samples) -> None:
    # The real Qwen2.5-VL-Instruct template has no {% generation %} markers: TRL's training version
    # renders the same text with markers, and the labels are still exactly answer + <|im_end|>.
    stock = load_processor(str(tiny_model_dir), min_pixels=MIN_PX, max_pixels=MAX_PX)
    stock.chat_template = QWEN25VL_INSTRUCT_TEMPLATE
    template = resolve_training_chat_template(stock)
    assert template is not None and "{% generation %}" in template
    batch_samples = [samples["spatial"]["video"][0], samples["spatial"]["multi_view"][0]]
    batch = _collator(stock, template)(batch_samples)
    for row, sample in enumerate(batch_samples):
        assert _unmasked_text(stock, batch, row) == sample["target"] + "<|im_end|>"
    ours = _collator(load_processor(str(tiny_model_dir), min_pixels=MIN_PX, max_pixels=MAX_PX))(batch_samples)
    assert torch.equal(ours["input_ids"], batch["input_ids"]) and torch.equal(ours["labels"], batch["labels"])


def test_unknown_template_without_markers_is_refused(tiny_model_dir: Path) -> None:
    proc = load_processor(str(tiny_model_dir))
    proc.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ValueError, match="generation"):
        resolve_training_chat_template(proc)


def test_max_length_raises_instead_of_truncating(processor, samples) -> None:
    sample = samples["spatial"]["multi_view"][0]
    with pytest.raises(ValueError, match="max_length"):
        SpatialSFTCollator(processor, max_length=32)([sample])


# ------------------------------------------------------------------------------------- config


def _parse(*argv: str):
    return parse_args((SpatialLadderArguments, SFTConfig, ModelConfig), list(argv))


def test_paper_recipes(monkeypatch: pytest.MonkeyPatch) -> None:
    from spatialladder.training.ladder import LADDER, Settings, read_recipe, stage_input

    out = {}
    for stage in ("stage1_grounding", "stage2_spatial", "coldstart"):
        # bf16 needs a GPU; everything else is read as written
        script, train, model = _parse(
            "--config", str(REPO / f"configs/recipes/{stage}.yaml"), "--bf16", "false"
        )
        assert (train.learning_rate, train.lr_scheduler_type.value, train.warmup_steps) == (
            1e-5,
            "cosine",
            0.1,
        )
        assert (train.per_device_train_batch_size, train.gradient_accumulation_steps) == (1, 8)
        assert train.gradient_checkpointing and train.save_strategy.value == "steps"
        assert train.report_to == ["wandb"] and not train.remove_unused_columns
        assert (script.min_pixels, script.max_pixels) == (MIN_PX, MAX_PX)
        assert script.data_files[0].startswith("data/SpatialLadder-26k/") and not script.freeze_vision_tower
        assert model.dtype == "float32" and not model.use_peft  # master weights; bf16 = compute
        out[stage] = (model.model_name_or_path, train.output_dir)
    assert out["stage1_grounding"][0] == "Qwen/Qwen2.5-VL-3B-Instruct"
    # The chain is the ladder's: each later stage reads the previous recipe's output_dir, and no
    # recipe declares it a second time.
    assert out["stage2_spatial"][0] is None and out["coldstart"][0] is None
    monkeypatch.chdir(REPO)  # the stage scripts resolve recipes from the repository root
    recipes = {s.name: read_recipe(Path(f"configs/recipes/{s.name}.yaml")) for s in LADDER}
    inputs = {name: stage_input(name, Settings(), recipe) for name, recipe in recipes.items()}
    assert inputs == {
        "stage1_grounding": "Qwen/Qwen2.5-VL-3B-Instruct",
        "stage2_spatial": out["stage1_grounding"][1],
        "coldstart": out["stage2_spatial"][1],
        "stage3_grpo": out["coldstart"][1],
    }
    assert "model_name_or_path" not in recipes["stage3_grpo"]
    text = (REPO / "configs/recipes/stage1_grounding.yaml").read_text()
    assert "bf16: true" in text


def test_demo_recipes_parse_for_cpu() -> None:
    for stage in ("stage1_grounding", "stage2_spatial", "coldstart"):
        script, train, model = _parse("--config", str(REPO / f"configs/recipes/demo/{stage}.yaml"))
        assert not train.bf16 and model.dtype == "float32" and train.report_to == []
        assert train.dataset_kwargs == {"skip_prepare_dataset": True}


def test_cli_overrides_recipe_and_bad_keys_are_named(tmp_path: Path) -> None:
    recipe = REPO / "configs/recipes/demo/stage1_grounding.yaml"
    script, train, _ = _parse("--config", str(recipe), "--learning_rate", "0.5", "--video_frames", "3")
    assert train.learning_rate == 0.5 and script.video_frames == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text() + "learning_rat: 1.0e-5\nwarmup_ratio: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"unknown key\(s\) in recipe .*bad\.yaml: learning_rat, warmup_ratio"
    ):
        _parse("--config", str(bad))
    with pytest.raises(ConfigError, match="--max_pixel"):
        _parse("--config", str(recipe), "--max_pixel", "5")
    with pytest.raises(ConfigError, match="cannot read recipe"):
        _parse("--config", str(tmp_path / "missing.yaml"))


# ------------------------------------------------------------------------------------- modeling


def test_checkpoint_problems_name_what_is_missing(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert checkpoint_problems(tiny_model_dir) == []
    assert checkpoint_problems(tmp_path / "nope") == [f"{tmp_path / 'nope'}: no such directory"]
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    problems = "\n".join(checkpoint_problems(partial))
    assert "model weights missing" in problems and "processor files missing" in problems
    assert "tokenizer files missing" in problems and "config.json missing" not in problems
    (partial / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "shard-1.safetensors"}})
    )
    assert any("shard-1.safetensors" in p for p in checkpoint_problems(partial))


def test_resume_picks_newest_complete_checkpoint(tmp_path: Path) -> None:
    assert find_resume_checkpoint(tmp_path) is None
    for step, complete in ((5, True), (10, True), (15, False)):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_bytes(b"x")
        if complete:
            (ckpt / "trainer_state.json").write_text("{}")
    assert find_resume_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_auto_attention_dtype_and_freezing(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText

    assert resolve_attn_implementation(None) == resolve_attn_implementation("auto") == "sdpa"  # no CUDA here
    assert resolve_attn_implementation("eager") == "eager"
    assert SFTConfig(output_dir="x", report_to="none").bf16 is False  # bf16 auto = off without a GPU
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert freeze_vision_tower(model) > 0
    visual = model.model.visual
    assert not visual.patch_embed.proj.weight.requires_grad
    assert all(p.requires_grad for p in visual.merger.parameters())
    assert all(p.requires_grad for p in model.model.language_model.parameters())


def test_hardware_configs_are_separate_and_valid() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {}
    for name in ("single_gpu", "multi_gpu", "zero2", "zero3", "multi_node", "cpu"):
        config = load_config_from_file(str(REPO / f"configs/accelerate/{name}.yaml"))
        kinds[name] = config.distributed_type.value
        assert config.mixed_precision in (None, "no")  # precision is the recipe's (bf16 / auto)
        ds_file = (config.deepspeed_config or {}).get("deepspeed_config_file")
        if ds_file:
            ds = json.loads((REPO / ds_file).read_text())
            assert ds["bf16"]["enabled"] == "auto" and ds["train_micro_batch_size_per_gpu"] == "auto"
            assert ds["zero_optimization"]["stage"] == (2 if name == "zero2" else 3)
    assert kinds == {
        "single_gpu": "NO", "multi_gpu": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED",
        "multi_node": "DEEPSPEED", "cpu": "NO",
    }  # fmt: skip
    zero3 = json.loads((REPO / "configs/accelerate/ds_zero3.json").read_text())
    assert zero3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
