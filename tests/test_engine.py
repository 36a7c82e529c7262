"""Fast checks of the engine selection and the ZeRO-3 guards (the multi-rank runs are in
tests/test_zero3_training.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from spatialladder.training.engine import (
    ENGINE_ENV,
    EngineMismatchError,
    check_engine,
    requested_engine,
    requested_engine_of_config,
)
from spatialladder.training.zero3 import (
    check_generation_gather,
    find_vision_backbone,
    install_uniform_vision_forward,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "config, engine",
    [
        ("zero3.yaml", "deepspeed-zero3"),
        ("zero2.yaml", "deepspeed-zero2"),
        ("multi_node.yaml", "deepspeed-zero3"),
        ("multi_gpu.yaml", "ddp"),
        ("single_gpu.yaml", "single"),
        ("cpu.yaml", "single"),
    ],
)
def test_requested_engine_of_each_hardware_config(config: str, engine: str, monkeypatch) -> None:
    monkeypatch.chdir(REPO)  # deepspeed_config_file paths are relative to the repo root
    assert requested_engine_of_config(f"configs/accelerate/{config}", cpu=True) == engine


def test_deepspeed_configs_that_would_not_run_deepspeed_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    base = yaml.safe_load((REPO / "configs/accelerate/zero3.yaml").read_text())
    with_cpu = tmp_path / "use_cpu.yaml"
    with_cpu.write_text(yaml.safe_dump({**base, "use_cpu": True}))
    with pytest.raises(ValueError, match="use_cpu: true makes accelerate drop DeepSpeed"):
        requested_engine_of_config(with_cpu)
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(yaml.safe_dump({**base, "mixed_precision": "no"}))
    assert requested_engine_of_config(mixed) == "deepspeed-zero3"  # fine on GPUs
    with pytest.raises(ValueError, match="mixed_precision key stops DeepSpeed on CPU"):
        requested_engine_of_config(mixed, cpu=True)


def test_requested_engine_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    for key in (ENGINE_ENV, "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    assert requested_engine() is None
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # what `accelerate launch` sets
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(ds))
    assert requested_engine() == "deepspeed-zero2"
    monkeypatch.setenv(ENGINE_ENV, "deepspeed-zero3")  # run_scripts' word wins
    assert requested_engine() == "deepspeed-zero3"


def test_check_engine_stops_when_deepspeed_was_dropped(monkeypatch, caplog) -> None:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)  # one process, no DeepSpeed: what accelerate fell back to
    monkeypatch.setenv(ENGINE_ENV, "deepspeed-zero3")
    with pytest.raises(EngineMismatchError, match="requested training engine deepspeed-zero3 but this pro"):
        check_engine(accelerator)
    monkeypatch.setenv(ENGINE_ENV, "ddp")  # a DDP config launched with one process is fine
    with caplog.at_level("WARNING", logger="spatialladder.engine"):
        assert check_engine(accelerator) == "single"
    assert "training engine: single process (no DeepSpeed), 1 process(es)" in caplog.text


def test_generation_without_gather_is_refused_with_media_under_zero3() -> None:
    with pytest.raises(ValueError, match="ds3_gather_for_generation=false is not supported with image/vid"):
        check_generation_gather(zero3=True, gather_for_generation=False, has_media=True)
    check_generation_gather(zero3=True, gather_for_generation=True, has_media=True)
    check_generation_gather(zero3=True, gather_for_generation=False, has_media=False)
    check_generation_gather(zero3=False, gather_for_generation=False, has_media=True)


def test_dummy_calls_the_vision_tower_first_with_and_without_pixels(tiny_model_dir: Path) -> None:
    """ZeRO-3 gathers parameters in call order: a text-only rank must call the tower before the
    token embedding, exactly like a rank with media, or the two ranks' gathers disagree."""
    from PIL import Image
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    backbone = install_uniform_vision_forward(model)
    order: list[str] = []
    backbone.visual.register_forward_pre_hook(lambda *a: order.append("tower"))
    backbone.get_input_embeddings().register_forward_pre_hook(lambda *a: order.append("embed"))

    def first_two(**inputs: torch.Tensor) -> list[str]:
        order.clear()
        with torch.no_grad():
            model(**inputs)
        return order[:2]

    text = processor(text=["how far is the chair?"], return_tensors="pt")
    assert first_two(input_ids=text["input_ids"]) == ["tower", "embed"]
    image = Image.new("RGB", (56, 56), (200, 30, 30))
    prompt = "<|vision_start|><|image_pad|><|vision_end|>what is this?"
    media = processor(text=[prompt], images=[image], return_tensors="pt")
    assert first_two(**media) == ["tower", "embed"]
    assert find_vision_backbone(model) is backbone


def test_vision_dummy_auto_is_on_under_zero2_and_zero3_only() -> None:
    from types import SimpleNamespace

    from spatialladder.training.zero3 import resolve_vision_dummy

    def accelerator(stage: int | None) -> SimpleNamespace:
        plugin = None if stage is None else SimpleNamespace(zero_stage=stage)
        return SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin))

    assert [resolve_vision_dummy("auto", accelerator(s)) for s in (None, 1, 2, 3)] == [
        False,
        False,
        True,
        True,
    ]
    assert resolve_vision_dummy(False, accelerator(2)) is False
