"""GPU check: the paths CPU CI cannot exercise, in one table (run through bench/gpu_check.sh).

Rows (each independent; a failure is reported in its row and the others still run):

1. ``logprobs``: per-token log-probs of the tiny Qwen2.5-VL on an image prompt, bf16 with
   FlashAttention-2 (sdpa when flash-attn is missing; sdpa on CPU) against fp32 sdpa: max |diff|.
2. ``sft_step`` / 3. ``grpo_step``: one step of the real SFT / GRPO entry point in bf16 on the demo
   recipe (tiny model, synthetic images / 8 views / videos): loss and seconds (without CUDA: the
   same on CPU with ``use_cpu``, which checks the bf16 code path but not the GPU kernels).
4. ``3b_sft``: a Qwen2.5-VL with Qwen2.5-VL-3B-Instruct's shapes (config written below, random
   init, no download): training steps on 2 x 2048 tokens with one 448x448 image each, fp32 weights,
   bf16 autocast, gradient checkpointing, AdamW: tokens/s and peak memory. CUDA only.
5. ``zero3_1proc``: the SFT stage through run_scripts with ``ACCELERATE_CONFIG=zero3.yaml`` and one
   process: the engine line the entry point logged, and the loss (on CPU: DeepSpeed's CPU accelerator).

    .venv/bin/python bench/gpu_check.py [--work DIR] [--only ROW ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SKIP_NO_CUDA = "skipped: no CUDA"

# Qwen/Qwen2.5-VL-3B-Instruct's config.json shapes (the values that set compute and memory).
QWEN25VL_3B = {
    "text_config": {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "tie_word_embeddings": True,
    },
    "vision_config": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "hidden_act": "silu",
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,
        "window_size": 112,
        "out_hidden_size": 2048,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "tie_word_embeddings": True,
}


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def attention_for_bf16() -> str:
    if not cuda():
        return "sdpa"
    try:
        import flash_attn  # noqa: F401

        return "flash_attention_2"
    except ImportError:
        return "sdpa"


# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------


def row_logprobs(work: Path) -> str:
    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    device = "cuda" if cuda() else "cpu"
    model_dir = tiny_model(work)
    processor = AutoProcessor.from_pretrained(model_dir)
    image = Image.linear_gradient("L").convert("RGB").resize((112, 84))
    text = (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>how far is the red chair?<|im_end|>\n"
    )
    inputs = processor(text=[text + "<|im_start|>assistant\nabout two meters<|im_end|>"], images=[image],
                       return_tensors="pt").to(device)  # fmt: skip

    def logps(dtype: torch.dtype, attn: str) -> torch.Tensor:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            model_dir, dtype=dtype, attn_implementation=attn
        ).to(device)
        with torch.no_grad():
            logits = model(**inputs).logits[:, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, inputs["input_ids"][:, 1:, None]).squeeze(-1)

    attn = attention_for_bf16()
    diff = (logps(torch.bfloat16, attn) - logps(torch.float32, "sdpa")).abs()
    n = diff.numel()
    return f"bf16+{attn} vs fp32 ({device}, {n} tokens): max |diff| {diff.max():.3g}, mean {diff.mean():.3g}"


def _entry_step(work: Path, module: str, recipe: str, extra: list[str]) -> str:
    """One bf16 step of an entry point; on CPU too (bf16 autocast on CPU, ``use_cpu``), labelled so."""
    device = "cuda" if cuda() else "cpu"
    if device == "cpu":
        extra = [*extra, "--use_cpu", "true"]
    data = synthetic(work)
    out = work / f"{module.rsplit('.', 1)[1]}-bf16"
    cmd = [sys.executable, "-m", module, "--config", recipe, "--model_name_or_path", str(tiny_model(work)),
           "--output_dir", str(out), "--data_files",
           str(data / "spld_spatial_data.jsonl"), "--media_root", str(data / "media"),
           "--bf16", "true", "--max_steps", "1", "--save_strategy", "no", *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {log[-600:]}")
    loss = re.findall(r"'loss': '([^']+)'", log)
    return f"1 step bf16 on {device} OK in {seconds:.0f} s (incl. load), loss {loss[-1] if loss else '?'}"


def row_sft_step(work: Path) -> str:
    return _entry_step(work, "spatialladder.training.sft", "configs/recipes/demo/stage2_spatial.yaml", [])


def row_grpo_step(work: Path) -> str:
    extra = ["--gradient_accumulation_steps", "1", "--num_generations", "2", "--sample_log_every", "0"]
    return _entry_step(work, "spatialladder.training.grpo", "configs/recipes/demo/stage3_grpo.yaml", extra)


def row_3b_sft(work: Path) -> str:
    if not cuda():
        return SKIP_NO_CUDA
    return sft_throughput(QWEN25VL_3B, "cuda")


def sft_throughput(
    config_kwargs: dict[str, Any],
    device: str,
    steps: int = 4,
    batch: int = 2,
    seq: int = 2048,
    side: int = 32,
) -> str:
    """Training steps of a randomly initialised Qwen2.5-VL of the given config on ``batch`` x ``seq``
    tokens, each row with one image of ``side`` x ``side`` patches: tokens/s and peak memory."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(**config_kwargs)
    with torch.device(device):  # random init, fp32 master weights; attention set on every sub-config
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, attn_implementation=attention_for_bf16()
        )
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
    grid = (1, side, side)  # side=32: one 448x448 image, 1024 patches -> 256 merged tokens
    n_img = side * side // 4
    vocab = config.text_config.vocab_size
    ids = torch.randint(0, min(vocab, config.vision_start_token_id), (batch, seq), device=device)
    ids[:, 1] = config.vision_start_token_id
    ids[:, 2 : 2 + n_img] = config.image_token_id
    ids[:, 2 + n_img] = config.vision_end_token_id
    types = (ids == config.image_token_id).long()
    vc = config.vision_config
    row = vc.in_channels * vc.temporal_patch_size * vc.patch_size**2
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": types,
        "pixel_values": torch.randn(batch * side * side, row, device=device),
        "image_grid_thw": torch.tensor([grid] * batch, device=device),
        "labels": ids.masked_fill(types.bool(), -100),
    }

    def step() -> float:
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(**inputs).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return float(loss)

    step()  # warm-up (allocations, kernels)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "n/a on CPU"
    return (
        f"{n_params / 1e9:.2f}B params, {batch}x{seq} tok/step: {batch * seq * steps / seconds:,.0f} tok/s, "
        f"peak {peak} (fp32 weights+AdamW, bf16 autocast, grad ckpt, {model.config._attn_implementation}), "
        f"loss {loss:.2f}"
    )


def row_zero3_1proc(work: Path) -> str:
    stage_work = work / "zero3"
    stage_work.mkdir(exist_ok=True)
    if not (stage_work / "synthetic").exists():
        (stage_work / "synthetic").symlink_to(synthetic(work))
    env = {**os.environ, "DEMO": "1", "WORK_DIR": str(stage_work), "MODEL": str(tiny_model(work)),
           "ACCELERATE_CONFIG": "configs/accelerate/zero3.yaml", "NUM_PROCESSES": "1",
           "OUTPUT_DIR": str(stage_work / "stage2")}  # fmt: skip
    args = ["--bf16", "true"] if cuda() else []  # DeepSpeed's bf16 section follows the recipe's switch
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "run_scripts/stage2_spatial.sh", "--max_steps", "2", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=400)  # fmt: skip
    seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {log[-600:]}")
    engine = re.findall(r"training engine: (.+)", log)
    loss = re.findall(r"'loss': '([^']+)'", log)
    return f"{engine[0] if engine else 'engine line missing!'}; 2 steps, losses {loss}, {seconds:.0f} s"


ROWS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "logprobs": ("bf16 + FA2/sdpa log-probs vs fp32 (tiny)", row_logprobs),
    "sft_step": ("SFT step, media, bf16 (tiny)", row_sft_step),
    "grpo_step": ("GRPO step, media, bf16 (tiny)", row_grpo_step),
    "3b_sft": ("3B-shaped Qwen2.5-VL SFT tok/s + peak mem", row_3b_sft),
    "zero3_1proc": ("ZeRO-3, 1 process (run_scripts)", row_zero3_1proc),
}


# ---------------------------------------------------------------------------------------------
# assets
# ---------------------------------------------------------------------------------------------


def tiny_model(work: Path) -> Path:
    from spatialladder.demo.tiny_model import build_tiny_qwen25vl

    return Path(build_tiny_qwen25vl(work / "tiny-qwen25vl"))


def synthetic(work: Path) -> Path:
    out = work / "synthetic"
    if not (out / "spld_spatial_data.jsonl").is_file():
        from spatialladder.synthetic import generate_dataset

        generate_dataset(out, seed=0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--only", nargs="*", choices=list(ROWS), default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch

    device = torch.cuda.get_device_name(0) if cuda() else "no CUDA device (CPU only)"
    print(f"[gpu_check] torch {torch.__version__}, device: {device}, work dir {work}", flush=True)
    results: list[tuple[str, str, float]] = []
    failed = False
    for key in args.only or list(ROWS):
        title, fn = ROWS[key]
        print(f"[gpu_check] {title} ...", flush=True)
        t0 = time.perf_counter()
        try:
            result = fn(work)
        except Exception as exc:  # a row's failure is reported in the table; the others still run
            traceback.print_exc()
            result, failed = f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", True
        results.append((title, result, time.perf_counter() - t0))
    width = max(len(t) for t, _, _ in results)
    print(f"\n{'check':<{width}} | {'s':>4} | result")
    print(f"{'-' * width}-+------+-{'-' * 60}")
    for title, result, seconds in results:
        print(f"{title:<{width}} | {seconds:>4.0f} | {result}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
