"""The tiny Qwen2.5-VL checkpoint is a faithful, loadable, generating stand-in for the real one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import (
    AutoProcessor,
    AutoTokenizer,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)
from trl.chat_template_utils import (
    get_training_chat_template,
    is_chat_template_stop_token_trained,
)
from trl.chat_template_utils import (
    qwen2_5_vl_chat_template as QWEN25VL_INSTRUCT_TEMPLATE,  # verbatim Qwen2.5-VL-Instruct template
)

from spatialladder.demo.tiny_model import (
    DEFAULT_SYSTEM_MESSAGE,
    MARKER_FILE,
    SPECIAL_TOKENS,
    build_tiny_qwen25vl,
    main,
)

ANSWER_1 = "<think>The chair is 1.5 meters left of the table.</think>\n<answer>B</answer>"
ANSWER_2 = '{"bbox_2d": [12, 40, 96, 180], "label": "chair"}'


def _image(w: int, h: int, seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy())


def _conversation(with_system: bool = False) -> list[dict]:
    conv: list[dict] = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": _image(90, 60, 0)},
                {"type": "text", "text": "Where is the chair relative to the table?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": ANSWER_1}]},
        {"role": "user", "content": "Output its bounding box in JSON."},
        {"role": "assistant", "content": ANSWER_2},
    ]
    if with_system:
        conv.insert(0, {"role": "system", "content": "You reason about 3D space."})
    return conv


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path) -> Qwen2_5_VLProcessor:
    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Qwen2_5_VLForConditionalGeneration:
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir).eval()


# --------------------------------------------------------------------------------------------- build


def test_build_is_fast_idempotent_and_safe(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    t0 = time.perf_counter()
    assert build_tiny_qwen25vl(out, seed=3) == out.resolve()
    assert time.perf_counter() - t0 < 20  # ~0.2 s once torch/transformers are imported
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "processor_config.json"} <= names
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", MARKER_FILE} <= names
    assert not [p for p in tmp_path.iterdir() if p.name != "ckpt"], "temporary build dir left behind"

    # Second call reuses the checkpoint: nothing is rewritten.
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    assert build_tiny_qwen25vl(str(out), seed=3) == out.resolve()
    assert time.perf_counter() - t0 < 0.5
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime

    # Different arguments, or a directory we did not build, are never silently replaced...
    with pytest.raises(FileExistsError):
        build_tiny_qwen25vl(out, seed=4)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        build_tiny_qwen25vl(foreign)
    assert (foreign / "keep.txt").read_text() == "user data"
    # ...but overwrite=True rebuilds with the new seed.
    build_tiny_qwen25vl(out, seed=4, overwrite=True)
    assert json.loads((out / MARKER_FILE).read_text())["params"]["seed"] == 4


def test_build_is_deterministic_per_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    same = build_tiny_qwen25vl(tmp_path / "same", seed=0)
    other = build_tiny_qwen25vl(tmp_path / "other", seed=1)
    assert (same / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
    ref, a, b = (load_file(d / "model.safetensors") for d in (tiny_model_dir, same, other))
    assert ref.keys() == a.keys() == b.keys()
    assert all(torch.equal(ref[k], a[k]) for k in ref)
    assert not all(torch.equal(ref[k], b[k]) for k in ref)
    assert {t.dtype for t in ref.values()} == {torch.float32}


def test_cli_prints_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path / "cli"), "--seed", "2"])
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert Path(printed) == (tmp_path / "cli").resolve()
    assert json.loads((Path(printed) / MARKER_FILE).read_text())["params"]["seed"] == 2


# ------------------------------------------------------------------------------------ load / config


def test_loads_with_auto_classes(tiny_model_dir: Path, processor, model) -> None:
    assert isinstance(processor, Qwen2_5_VLProcessor)
    assert isinstance(processor.image_processor, Qwen2VLImageProcessor)
    assert isinstance(processor.video_processor, Qwen2VLVideoProcessor)
    assert isinstance(processor.tokenizer, Qwen2Tokenizer)
    assert isinstance(AutoTokenizer.from_pretrained(tiny_model_dir), Qwen2Tokenizer)
    assert processor.image_processor.size["shortest_edge"] == 4 * 28 * 28
    assert processor.video_processor.size["longest_edge"] == 64 * 28 * 28

    cfg = model.config
    assert model.dtype == torch.float32
    assert (cfg.text_config.hidden_size, cfg.text_config.num_hidden_layers) == (64, 2)
    assert (cfg.text_config.num_attention_heads, cfg.text_config.num_key_value_heads) == (4, 2)
    assert cfg.vision_config.out_hidden_size == cfg.text_config.hidden_size
    assert all(0 <= i < cfg.vision_config.depth for i in cfg.vision_config.fullatt_block_indexes)
    head_dim = cfg.text_config.hidden_size // cfg.text_config.num_attention_heads
    assert sum(cfg.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    assert len(processor.tokenizer) <= cfg.text_config.vocab_size
    assert model.generation_config.eos_token_id == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.pad_token_id == processor.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def _fixed_inputs(processor) -> dict:
    conv = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How far is the lamp?"}]}
    ]
    text = processor.apply_chat_template(conv, add_generation_prompt=True)
    return processor(text=[text], images=[_image(84, 56, 1)], return_tensors="pt")


def test_save_load_round_trip(tmp_path: Path, processor, model) -> None:
    model.save_pretrained(tmp_path / "rt")
    processor.save_pretrained(tmp_path / "rt")
    reloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "rt").eval()
    reproc = AutoProcessor.from_pretrained(tmp_path / "rt")

    sd, sd2 = model.state_dict(), reloaded.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)

    inputs, inputs2 = _fixed_inputs(processor), _fixed_inputs(reproc)
    assert inputs.keys() == inputs2.keys()
    assert all(torch.equal(inputs[k], inputs2[k]) for k in inputs)
    with torch.no_grad():
        logits, logits2 = model(**inputs).logits, reloaded(**inputs2).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()
    assert torch.equal(logits, logits2)


def test_training_step_reaches_vision_tower(processor, model) -> None:
    inputs = _fixed_inputs(processor)
    model.zero_grad()
    out = model(**inputs, labels=inputs["input_ids"].clone())
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0  # image features feed the LLM
    model.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    "text",
    [
        ANSWER_1,
        ANSWER_2,
        "What is the distance between the sofa and the TV in meters? Options: A. 1.2 B. 3.4",
        "Ünïcödé, 中文, emoji 🙂 and tabs\tand\n\nnewlines  with   spaces ",
        "<|im_start|>user\nhi<|im_end|>\n<|vision_start|><|image_pad|><|vision_end|>",
    ],
)
def test_tokenizer_round_trips(processor, text: str) -> None:
    tok = processor.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.unk_token_id is None  # byte-level: every string is encodable


def test_special_tokens_match_model_config(processor, model) -> None:
    tok, cfg = processor.tokenizer, model.config
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in SPECIAL_TOKENS]
    assert all(len(i) == 1 for i in ids), "special tokens must never be split"
    flat = [i[0] for i in ids]
    # Qwen's order, appended right after the BPE vocabulary, like the real tokenizer.
    assert flat == list(range(len(tok) - len(SPECIAL_TOKENS), len(tok)))
    assert 1000 <= len(tok) <= 2000
    assert tok.convert_tokens_to_ids("<|image_pad|>") == cfg.image_token_id == processor.image_token_id
    assert tok.convert_tokens_to_ids("<|video_pad|>") == cfg.video_token_id == processor.video_token_id
    assert tok.convert_tokens_to_ids("<|vision_start|>") == cfg.vision_start_token_id
    assert tok.convert_tokens_to_ids("<|vision_end|>") == cfg.vision_end_token_id
    assert (tok.pad_token, tok.eos_token) == ("<|endoftext|>", "<|im_end|>")
    assert tok.decode(flat, skip_special_tokens=True) == ""
    # Common task words are whole tokens (the corpus covers them), not byte soup.
    assert len(tok(" meters left chair table answer", add_special_tokens=False)["input_ids"]) <= 6


# ------------------------------------------------------------------------------------- chat template


def test_chat_template_matches_qwen25vl_instruct(processor) -> None:
    video_turn = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Count chairs."}]}]
    cases = [
        (_conversation(), {}),
        (_conversation(with_system=True), {}),
        (_conversation()[:1], {"add_generation_prompt": True}),
        (video_turn, {"add_generation_prompt": True}),
        (_conversation()[:1] + video_turn, {"add_generation_prompt": True, "add_vision_id": True}),
    ]
    for conv, kwargs in cases:
        ours = processor.apply_chat_template(conv, **kwargs)
        ref = processor.apply_chat_template(conv, chat_template=QWEN25VL_INSTRUCT_TEMPLATE, **kwargs)
        assert ours == ref
    # TRL's SFTTrainer(assistant_only_loss=True) keeps our template as is and trains the stop token.
    assert get_training_chat_template(processor) is None
    assert is_chat_template_stop_token_trained(processor)


def test_chat_template_rendering(tiny_model_dir: Path, processor) -> None:
    text = processor.apply_chat_template(_conversation())
    assert text.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n")
    assert "<|vision_start|><|image_pad|><|vision_end|>Where is the chair" in text
    assert text.endswith(f"<|im_start|>assistant\n{ANSWER_2}<|im_end|>\n")

    with_sys = processor.apply_chat_template(_conversation(with_system=True))
    assert with_sys.startswith("<|im_start|>system\nYou reason about 3D space.<|im_end|>\n")
    assert DEFAULT_SYSTEM_MESSAGE not in with_sys

    video = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Count chairs."}]}]
    prompt = processor.apply_chat_template(video, add_generation_prompt=True)
    assert "<|vision_start|><|video_pad|><|vision_end|>Count chairs.<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")

    # The tokenizer alone (AutoTokenizer, e.g. TRL text-only paths) carries the same template.
    assert AutoTokenizer.from_pretrained(tiny_model_dir).chat_template == processor.chat_template
    assert "{% generation %}" in (tiny_model_dir / "chat_template.jinja").read_text()


def test_assistant_mask_covers_exactly_answers(processor) -> None:
    out = processor.apply_chat_template(
        _conversation(with_system=True),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        return_tensors="pt",
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    assert ids.shape == mask.shape
    # the image placeholder was expanded before masking: offsets must still line up
    assert (ids == processor.image_token_id).sum() > 1

    # split the mask into contiguous spans; each must be one full answer + <|im_end|>
    spans, start = [], None
    for i, m in enumerate(mask.tolist() + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    tok = processor.tokenizer
    decoded = [tok.decode(ids[a:b]) for a, b in spans]
    assert decoded == [f"{ANSWER_1}<|im_end|>", f"{ANSWER_2}<|im_end|>"]
    assert tok.decode(ids[mask]) == f"{ANSWER_1}<|im_end|>{ANSWER_2}<|im_end|>"
    # tokens right before each span are the assistant header, right after is the newline
    for a, b in spans:
        assert tok.decode(ids[:a]).endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert b == len(ids) or tok.decode(ids[b : b + 1]) == "\n"


# ---------------------------------------------------------------------------------------- generation


def _generate(model, inputs, new_tokens: int = 3) -> torch.Tensor:
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + new_tokens)
    assert torch.equal(out[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
    return out


def _assert_placeholders(processor, inputs, kind: str, n: int) -> None:
    grid = inputs[f"{kind}_grid_thw"]
    token_id = processor.image_token_id if kind == "image" else processor.video_token_id
    merge = processor.image_processor.merge_size
    assert grid.shape == (n, 3)
    assert int((inputs["input_ids"] == token_id).sum()) == int(grid.prod(-1).sum()) // merge**2


def test_generate_from_one_image(processor, model) -> None:
    conv = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": _image(120, 90, 5)},
                {"type": "text", "text": "Describe."},
            ],
        }
    ]
    inputs = processor.apply_chat_template(
        conv, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    _assert_placeholders(processor, inputs, "image", 1)
    out = _generate(model, inputs)
    assert isinstance(processor.batch_decode(out[:, inputs["input_ids"].shape[1] :])[0], str)


def test_generate_from_eight_images(processor, model) -> None:
    images = [_image(56 + 14 * i, 70, i) for i in range(8)]  # different sizes -> different grids
    conv = [
        {
            "role": "user",
            "content": [*({"type": "image"} for _ in images), {"type": "text", "text": "Which is left?"}],
        }
    ]
    text = processor.apply_chat_template(conv, add_generation_prompt=True)
    assert text.count("<|image_pad|>") == 8
    inputs = processor(text=[text], images=images, return_tensors="pt")
    _assert_placeholders(processor, inputs, "image", 8)
    assert len({tuple(g.tolist()) for g in inputs["image_grid_thw"]}) > 1
    _generate(model, inputs)


def test_generate_from_video_frames(processor, model) -> None:
    frames = [_image(64, 48, 10 + i) for i in range(6)]
    conv = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What appears first?"}]}]
    text = processor.apply_chat_template(conv, add_generation_prompt=True)
    # 5.x: a video is a list of PIL frames; its fps comes from `video_metadata` (default assumes 24 fps)
    inputs = processor(
        text=[text],
        videos=[frames],
        video_metadata=[{"fps": 2.0, "total_num_frames": len(frames)}],
        return_tensors="pt",
    )
    _assert_placeholders(processor, inputs, "video", 1)
    assert inputs["video_grid_thw"][0, 0] == len(frames) // 2  # temporal_patch_size 2
    assert inputs["second_per_grid_ts"].tolist() == [1.0]  # temporal_patch_size / fps
    _generate(model, inputs)

    # Same frames through apply_chat_template's video part give the same tokens.
    conv_v = [
        {
            "role": "user",
            "content": [{"type": "video", "video": frames}, {"type": "text", "text": "What appears first?"}],
        }
    ]
    inputs_v = processor.apply_chat_template(
        conv_v,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"video_metadata": [{"fps": 2.0, "total_num_frames": len(frames)}]},
    )
    assert torch.equal(inputs_v["input_ids"], inputs["input_ids"])
    assert torch.equal(inputs_v["pixel_values_videos"], inputs["pixel_values_videos"])
