"""Sharded, resumable generation + official scoring over the six benchmarks (``eval/run_eval.py``).

One process per device (``accelerate launch`` / ``torchrun`` set ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK``; a plain ``python`` run is rank 0 of 1). Per model and benchmark:

1. every rank loads the docs (the full set, or the seeded ``--limit`` subset) and checks that all media
   exist: missing files are listed up front, with doc ids, before any generation (or, with
   ``--skip-missing-media``, counted and reported as skipped);
2. rank ``r`` takes docs ``i % world == r`` that no ``predictions.rank*.jsonl`` holds yet, generates
   in left-padded batches and appends one JSON line per doc to ``predictions.rank{r}.jsonl``, flushed
   and fsynced, so a killed run loses at most the batch in flight;
3. after a barrier rank 0 merges the rank files into ``predictions.jsonl`` (sorted by doc_id, no
   duplicates, every expected doc present), scores it with :mod:`spatialladder.evaluation.scoring`
   and writes ``per_sample_scores.jsonl`` and ``scores.json``; at the end it writes the report.

Output: ``OUTPUT/<model_name>/<benchmark>/{run_config.json, predictions.rank*.jsonl, predictions.jsonl,
per_sample_scores.jsonl, scores.json}`` and ``OUTPUT/report.{md,csv}``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import BENCHMARKS, PROMPT_KINDS, get_benchmark, resolve_benchmarks
from spatialladder.evaluation.benchmarks.base import natural_key
from spatialladder.evaluation.scoring import SCORERS, TYPE_FIELD, aggregate, score_sample
from spatialladder.positions import POSITION_CONVENTION, install_original_positions, resume_hint

__all__ = [
    "EvalConfig",
    "find_missing_media",
    "main",
    "merge_rank_files",
    "parse_args",
    "read_jsonl_tolerant",
    "score_records",
]

EXIT_MISSING_MEDIA = 2
PRED_GLOB = "predictions.rank*.jsonl"


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------
@dataclass
class EvalConfig:
    models: list[tuple[str, str]]  # (name used for the output folder, path or hub id)
    benchmarks: list[str]
    data_roots: dict[str, Path]
    output_dir: Path
    prompt_kind: str = "thinking"
    num_frames: int = 32
    min_pixels: int = 16 * 28 * 28
    max_pixels: int = 512 * 28 * 28
    batch_size: int = 4
    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0
    scorer: str = "official"
    limit: int | None = None
    skip_missing_media: bool = False
    frame_cache_dir: Path | None = None
    overwrite: bool = False
    attn_implementation: str = "auto"
    blind: bool = False
    write_report: bool = True
    # Replies sampled per doc (spatialladder.analysis.entropy); > 1 adds a "samples" list to each line.
    num_samples: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def generation_params(self) -> dict[str, Any]:
        """What decides each reply; recorded in every prediction line and checked on resume."""
        sampling = self.temperature > 0
        return {
            "do_sample": sampling,
            "temperature": self.temperature if sampling else 0.0,
            "top_p": self.top_p if sampling else 1.0,
            "num_beams": 1,
            "repetition_penalty": self.repetition_penalty,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        } | ({"num_return_sequences": self.num_samples} if self.num_samples > 1 else {})

    def run_signature(self, benchmark: str, model_path: str) -> dict[str, Any]:
        """Settings that must match for a rerun to resume (limit / batch size / processes may differ)."""
        sig = {
            "benchmark": benchmark,
            "model_path": model_path,
            "prompt_kind": self.prompt_kind,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "generation": self.generation_params(),
            "position_convention": POSITION_CONVENTION,
        }
        if benchmark == "VSI-Bench":
            sig["num_frames"] = self.num_frames
        if self.blind:  # blind replies never resume into (or mix with) sighted ones
            sig["blind"] = True
        return sig


def model_name_from_path(path: str) -> str:
    """Output folder name: the last path component (``parent-checkpoint-N`` for trainer checkpoints)."""
    p = Path(path.rstrip("/"))
    name = p.name
    if re.fullmatch(r"checkpoint-\d+", name) and p.parent.name:
        name = f"{p.parent.name}-{name}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "model"


def _parse_model(value: str) -> tuple[str, str]:
    if "=" in value and not Path(value).exists():
        name, path = value.split("=", 1)
        if not name or not path:
            raise argparse.ArgumentTypeError(f"--model {value!r}: expected PATH or NAME=PATH")
        return re.sub(r"[^A-Za-z0-9._+-]", "_", name), path
    return model_name_from_path(value), value


def _parse_data_roots(values: Sequence[str], benchmarks: Sequence[str]) -> dict[str, Path]:
    shared: Path | None = None
    per: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name:
            if name.lower() == "spbench":
                per["SPBench-SI"] = per["SPBench-MV"] = Path(path)
                continue
            try:
                per[get_benchmark(name).NAME] = Path(path)
                continue
            except KeyError:
                pass  # not NAME=DIR: a directory whose name contains '='
        if shared is not None:
            raise argparse.ArgumentTypeError("give one shared --data-root DIR; use NAME=DIR for the others")
        shared = Path(value)
    roots: dict[str, Path] = {}
    for bench in benchmarks:
        if bench in per:
            roots[bench] = per[bench]
        elif shared is not None:
            roots[bench] = shared
        else:
            raise argparse.ArgumentTypeError(f"no --data-root for {bench} (give DIR or {bench}=DIR)")
    return roots


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_eval",
        description="Evaluate Qwen2.5-VL checkpoints on the six spatial benchmarks (sharded, resumable).",
    )
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]PATH",
                   help="checkpoint dir or hub id; repeat for several models")
    p.add_argument("--benchmarks", default="all",
                   help=f"'all' or names separated by spaces/commas: {' '.join(BENCHMARKS)}")
    p.add_argument("--data-root", action="append", required=True, metavar="DIR|NAME=DIR",
                   help="one root holding each benchmark under its folder name, and/or NAME=DIR per benchmark")
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--prompt-kind", default="thinking", choices=PROMPT_KINDS)
    p.add_argument("--num-frames", type=int, default=32, help="uniformly sampled frames per video")
    p.add_argument("--min-pixels", type=int, default=16 * 28 * 28)
    p.add_argument("--max-pixels", type=int, default=512 * 28 * 28, help="per image or frame (512*28*28)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="only with --temperature > 0")
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit subset and of sampling")
    p.add_argument("--scorer", default="official", choices=SCORERS)
    p.add_argument("--limit", type=int, default=None, help="score a seeded subset of N docs per benchmark")
    p.add_argument("--skip-missing-media", action="store_true",
                   help="skip docs whose media are missing (counted and reported) instead of failing")
    p.add_argument("--frame-cache-dir", default=None,
                   help="on-disk frame cache (default OUTPUT/.frame_cache; '' disables it)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier predictions of these runs")
    p.add_argument("--attn-implementation", default="auto",
                   help="auto = flash_attention_2 on CUDA when installed, else sdpa")
    p.add_argument("--blind", action="store_true",
                   help="text-only-prior control: every image and video frame is replaced by a constant grey "
                        "image of the same size (same vision token counts); recorded in run_config.json, "
                        "scores.json and every prediction line, so use its own --model NAME")
    p.add_argument("--no-report", action="store_true", help="do not write OUTPUT/report.{md,csv}")
    p.add_argument("--num-processes", type=int, default=None,
                   help="read by eval/run_eval.sh (the launcher); ignored here")
    return p


def parse_args(argv: Sequence[str] | None = None) -> EvalConfig:
    args = build_parser().parse_args(argv)
    try:
        benchmarks = resolve_benchmarks(args.benchmarks)
    except KeyError as err:
        raise SystemExit(f"run_eval: {err.args[0]}") from None
    try:
        models = [_parse_model(m) for m in args.model]
        roots = _parse_data_roots(args.data_root, benchmarks)
    except argparse.ArgumentTypeError as err:
        raise SystemExit(f"run_eval: {err}") from None
    names = [n for n, _ in models]
    if len(set(names)) != len(names):
        raise SystemExit(f"run_eval: model names collide ({names}); use --model NAME=PATH")
    if args.batch_size < 1 or args.num_frames < 1 or args.max_new_tokens < 1:
        raise SystemExit("run_eval: --batch-size, --num-frames and --max-new-tokens must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise SystemExit("run_eval: --limit must be >= 1")
    if args.frame_cache_dir is None:
        cache: Path | None = args.output_dir / ".frame_cache"
    else:
        cache = Path(args.frame_cache_dir) if args.frame_cache_dir else None
    return EvalConfig(
        models=models, benchmarks=benchmarks, data_roots=roots, output_dir=args.output_dir,
        prompt_kind=args.prompt_kind, num_frames=args.num_frames, min_pixels=args.min_pixels,
        max_pixels=args.max_pixels, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
        seed=args.seed, scorer=args.scorer, limit=args.limit, skip_missing_media=args.skip_missing_media,
        frame_cache_dir=cache, overwrite=args.overwrite, attn_implementation=args.attn_implementation,
        blind=args.blind, write_report=not args.no_report,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Distributed plumbing (only a barrier is needed: gloo works for CPU and GPU runs alike)
# ------------------------------------------------------------------------------------------------
class Dist:
    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", str(self.rank)))
        self._pg = False
        if self.world > 1:
            import torch.distributed as dist

            # gloo, not NCCL: we only synchronise, and NCCL's watchdog would kill a rank that waits
            # at the barrier longer than its timeout while a slower rank is still generating.
            hours = float(os.environ.get("SPATIALLADDER_EVAL_BARRIER_HOURS", "48"))
            dist.init_process_group("gloo", timeout=datetime.timedelta(hours=hours))
            self._pg = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self._pg:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self._pg:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._pg = False


def _log(dist: Dist | None, msg: str, *, all_ranks: bool = False) -> None:
    if dist is None or dist.is_main or all_ranks:
        prefix = f"[rank {dist.rank}] " if dist is not None and dist.world > 1 and all_ranks else ""
        print(f"{prefix}{msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    _atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl_tolerant(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Complete JSON lines of ``path`` and whether a truncated last line (no newline: the process was
    killed mid-write) was ignored. A malformed line that IS newline-terminated is real corruption and
    raises, naming the file and line."""
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1  # 0 when there is no newline at all
    complete, tail = data[:cut], data[cut:]
    truncated = bool(tail.strip())
    records = []
    for lineno, raw in enumerate(complete.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError as err:
            raise RuntimeError(f"{path}:{lineno}: corrupt prediction line ({err.msg})") from None
    return records, truncated


def _repair_tail(path: Path) -> None:
    """Cut a truncated last line so the next append starts on a fresh line."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            f.seek(keep)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


def done_doc_ids(bench_dir: Path) -> set[str]:
    """doc_ids already predicted by ANY rank file (the world size may differ between runs)."""
    done: set[str] = set()
    for path in sorted(bench_dir.glob(PRED_GLOB)):
        records, _ = read_jsonl_tolerant(path)
        done.update(str(r["doc_id"]) for r in records)
    return done


def merge_rank_files(bench_dir: Path, expected_ids: Sequence[str]) -> list[dict[str, Any]]:
    """One record per expected doc_id (first occurrence wins), sorted by doc_id; raises if any is missing."""
    by_id: dict[str, dict[str, Any]] = {}
    for path in sorted(bench_dir.glob(PRED_GLOB)):
        for record in read_jsonl_tolerant(path)[0]:
            by_id.setdefault(str(record["doc_id"]), record)
    missing = [d for d in expected_ids if d not in by_id]
    if missing:
        raise RuntimeError(f"{bench_dir}: {len(missing)} doc(s) have no prediction: {missing[:20]}")
    return [by_id[d] for d in sorted(expected_ids, key=natural_key)]


# ------------------------------------------------------------------------------------------------
# Media check
# ------------------------------------------------------------------------------------------------
def find_missing_media(docs: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(doc_id, file) for every media item of ``docs`` that is not on disk (or not embedded)."""
    missing = []
    checked: dict[Path, bool] = {}
    for doc in docs:
        for item in doc["_media"]:
            if item.path is not None:
                ok = checked.setdefault(item.path, item.path.is_file())
            else:
                ok = item.exists()
            if not ok:
                missing.append((str(doc["doc_id"]), item.describe()))
    return missing


# ------------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------------
def score_records(
    benchmark: str, records: Sequence[dict[str, Any]], scorer: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(aggregate summary in percent, per-sample rows ``{doc_id, <type field>, score}``)."""
    type_field = TYPE_FIELD[benchmark]
    scored, per_sample = [], []
    for rec in records:
        s = score_sample(benchmark, rec, rec["prediction"], scorer=scorer)
        scored.append({**rec, "score": s})
        per_sample.append({"doc_id": rec["doc_id"], type_field: rec[type_field], "score": s})
    return aggregate(benchmark, scored, scorer=scorer), per_sample


def finalize_benchmark(
    cfg: EvalConfig,
    bench_dir: Path,
    benchmark: str,
    model: tuple[str, str],
    docs: Sequence[dict[str, Any]],
    skipped: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    skipped_ids = sorted({d for d, _ in skipped}, key=natural_key)
    expected = [str(d["doc_id"]) for d in docs if str(d["doc_id"]) not in set(skipped_ids)]
    merged = merge_rank_files(bench_dir, expected)
    _atomic_write_jsonl(bench_dir / "predictions.jsonl", merged)
    summary, per_sample = score_records(benchmark, merged, cfg.scorer)
    _atomic_write_jsonl(bench_dir / "per_sample_scores.jsonl", per_sample)
    result = {
        **summary,
        "model": model[0],
        "model_path": model[1],
        "n_docs": len(docs),
        "n_skipped_missing_media": len(skipped_ids),
        "skipped_doc_ids": skipped_ids,
        "prompt_kind": cfg.prompt_kind,
        "generation": cfg.generation_params(),
        "blind": cfg.blind,
        "num_frames": cfg.num_frames if benchmark == "VSI-Bench" else None,
        "min_pixels": cfg.min_pixels,
        "max_pixels": cfg.max_pixels,
        "limit": cfg.limit,
        "subset_seed": cfg.seed if cfg.limit is not None else None,
        "data_root": str(cfg.data_roots[benchmark]),
    }
    _atomic_write_text(bench_dir / "scores.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def load_model(path: str, device: Any, attn_implementation: str = "auto") -> tuple[Any, Any]:
    """(model, processor): bf16 + FlashAttention-2 on CUDA when installed (else SDPA), fp32 on CPU."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    cuda = device.type == "cuda"
    attn = attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa"
    dtype = torch.bfloat16 if cuda else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    install_original_positions(model)  # the convention run_signature records (spatialladder.positions)
    model.to(device).eval()
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"  # batched generation appends after the prompt
    return model, processor


def _generation_config(model: Any, cfg: EvalConfig) -> Any:
    from transformers import GenerationConfig

    g = model.generation_config
    params = cfg.generation_params()
    kwargs: dict[str, Any] = {
        "max_new_tokens": cfg.max_new_tokens,
        "do_sample": params["do_sample"],
        "num_beams": 1,
        # Explicit values: generate() fills only unset (None) fields from the checkpoint's own
        # generation_config, which for Qwen2.5-VL-Instruct carries repetition_penalty 1.05 and top_k 1.
        "repetition_penalty": cfg.repetition_penalty,
        "temperature": cfg.temperature if params["do_sample"] else 1.0,
        "top_p": cfg.top_p if params["do_sample"] else 1.0,
        "top_k": 0 if params["do_sample"] else 50,
        "eos_token_id": g.eos_token_id,
        "pad_token_id": g.pad_token_id if g.pad_token_id is not None else g.eos_token_id,
        "bos_token_id": g.bos_token_id,
        "num_return_sequences": cfg.num_samples,
    }
    return GenerationConfig(**kwargs)


BLIND_GREY = (128, 128, 128)


def blind_image(image: Any) -> Any:
    """A constant grey RGB image of ``image``'s size (a PIL image or a path): the --blind control."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        with Image.open(image) as img:
            size = img.size
    else:
        size = image.size
    return Image.new("RGB", size, BLIND_GREY)


def generate_batch(
    model: Any, processor: Any, batch_messages: Sequence[list[dict[str, Any]]], gen_config: Any, cfg: EvalConfig
) -> list[str]:
    """Replies for a batch of chat messages (left padding; images/videos in message order)."""
    import torch

    texts, images, videos, metas = [], [], [], []
    for messages in batch_messages:
        texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        for message in messages:
            for part in message["content"] if isinstance(message["content"], list) else []:
                # Every benchmark's media pass here, so --blind is applied once, for all of them.
                if part.get("type") == "image":
                    images.append(blind_image(part["image"]) if cfg.blind else part["image"])
                elif part.get("type") == "video":
                    videos.append([blind_image(f) for f in part["video"]] if cfg.blind else part["video"])
                    metas.append(part.get("video_metadata"))
    size = {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt",
                              "images_kwargs": {"size": size}}  # fmt: skip
    if images:
        kwargs["images"] = images
    if videos:
        kwargs["videos"] = videos
        kwargs["videos_kwargs"] = {"size": size, "do_sample_frames": False}  # frames are pre-sampled
        if all(m is not None for m in metas):
            from transformers.video_utils import VideoMetadata

            kwargs["video_metadata"] = [VideoMetadata(**m) for m in metas]
    inputs = processor(**kwargs).to(model.device)
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=gen_config)
    new_tokens = out[:, inputs["input_ids"].shape[1]:]
    return processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def _check_run_config(bench_dir: Path, signature: dict[str, Any]) -> None:
    path = bench_dir / "run_config.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != signature:
            diff = {k: (old.get(k), signature.get(k)) for k in set(old) | set(signature) if old.get(k) != signature.get(k)}
            raise SystemExit(
                f"run_eval: {bench_dir} holds predictions made with other settings {diff} (old, new); "
                "use another --output-dir or --overwrite" + resume_hint(diff)
            )
    else:
        _atomic_write_text(path, json.dumps(signature, indent=2, sort_keys=True) + "\n")


def _run_shard(
    cfg: EvalConfig,
    dist: Dist,
    bench: Any,
    docs: Sequence[dict[str, Any]],
    skip_ids: set[str],
    bench_dir: Path,
    model_name: str,
    model: Any,
    processor: Any,
    media: Any,
) -> int:
    from tqdm.auto import tqdm

    done = done_doc_ids(bench_dir)
    todo = [d for i, d in enumerate(docs) if i % dist.world == dist.rank]
    todo = [d for d in todo if str(d["doc_id"]) not in done and str(d["doc_id"]) not in skip_ids]
    # Questions of the same video back to back: the frame LRU then decodes each video once.
    if any(m.kind == "video" for d in todo for m in d["_media"]):
        order = {id(d): i for i, d in enumerate(todo)}
        todo.sort(key=lambda d: (str(d["_media"][0].path) if d["_media"] else "", order[id(d)]))
    if not todo:
        return 0
    own = bench_dir / f"predictions.rank{dist.rank}.jsonl"
    _repair_tail(own)
    gen_config = _generation_config(model, cfg)
    gen_params = cfg.generation_params()
    written = 0
    bar = tqdm(total=len(todo), desc=f"{model_name} | {bench.NAME} | rank {dist.rank}/{dist.world}",
               position=dist.rank, leave=dist.is_main, dynamic_ncols=True, file=sys.stderr)  # fmt: skip
    with open(own, "a", encoding="utf-8") as out:
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            requests = [bench.build_request(d, prompt_kind=cfg.prompt_kind, num_frames=cfg.num_frames,
                                            media=media) for d in batch]  # fmt: skip
            t0 = time.perf_counter()
            replies = generate_batch(model, processor, requests, gen_config, cfg)
            elapsed = (time.perf_counter() - t0) / len(batch)
            k = cfg.num_samples  # generate() returns the k replies of each doc consecutively
            for i, doc in enumerate(batch):
                reply = replies[i * k]
                line = {
                    **bench.record(doc),
                    "prediction": reply,
                    **({"samples": replies[i * k : (i + 1) * k]} if k > 1 else {}),
                    "model": model_name,
                    "prompt_kind": cfg.prompt_kind,
                    "prompt": bench.prompt_text(doc, cfg.prompt_kind),
                    "generation": gen_params,
                    "num_frames": cfg.num_frames if bench.NAME == "VSI-Bench" else None,
                    "max_pixels": cfg.max_pixels,
                    "blind": cfg.blind,
                    "rank": dist.rank,
                    "seconds": round(elapsed, 3),
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                out.flush()
                os.fsync(out.fileno())  # a crash loses at most the batch in flight
                written += 1
            bar.update(len(batch))
    bar.close()
    return written


def _load_all_docs(cfg: EvalConfig) -> dict[str, list[dict[str, Any]]]:
    return {
        name: BENCHMARKS[name].load_docs(cfg.data_roots[name], limit=cfg.limit, seed=cfg.seed)
        for name in cfg.benchmarks
    }


def run(cfg: EvalConfig, dist: Dist | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Evaluate every model on every benchmark; returns {model: {benchmark: scores}} on rank 0."""
    import torch

    from spatialladder.evaluation.media import FrameCache

    dist = dist or Dist()
    docs_by_bench = _load_all_docs(cfg)

    # Every missing file, with doc ids, before any model is loaded or any reply generated.
    missing = {b: find_missing_media(docs) for b, docs in docs_by_bench.items()}
    n_missing = sum(len(v) for v in missing.values())
    if n_missing:
        listing = "\n".join(f"  {b} doc {d}: {f}" for b, items in missing.items() for d, f in items)
        if not cfg.skip_missing_media:
            if dist.is_main:
                _atomic_write_text(
                    cfg.output_dir / "missing_media.json",
                    json.dumps({b: [{"doc_id": d, "file": f} for d, f in v] for b, v in missing.items() if v}, indent=2)
                    + "\n",
                )
            _log(dist, f"run_eval: {n_missing} media file(s) missing (listed in "
                       f"{cfg.output_dir / 'missing_media.json'}):\n{listing}\n"
                       "Fix the paths / --data-root, or pass --skip-missing-media to skip these docs "
                       "(they are then counted and reported as skipped).")  # fmt: skip
            raise SystemExit(EXIT_MISSING_MEDIA)
        _log(dist, f"run_eval: skipping {n_missing} missing media item(s) (--skip-missing-media):\n{listing}")

    if cfg.overwrite and dist.is_main:
        for name, _ in cfg.models:
            for bench in cfg.benchmarks:
                shutil.rmtree(cfg.output_dir / name / bench, ignore_errors=True)
    dist.barrier()

    device = torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed + dist.rank)
    media = FrameCache(cfg.frame_cache_dir, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for model_name, model_path in cfg.models:
        # Check every benchmark's settings before loading the model: a mismatch must not cost a load.
        for bench_name in cfg.benchmarks:
            bench_dir = cfg.output_dir / model_name / bench_name
            bench_dir.mkdir(parents=True, exist_ok=True)
            _check_run_config(bench_dir, cfg.run_signature(bench_name, model_path))
        model = processor = None
        for bench_name in cfg.benchmarks:
            bench = BENCHMARKS[bench_name]
            bench_dir = cfg.output_dir / model_name / bench_name
            docs = docs_by_bench[bench_name]
            skip_ids = {d for d, _ in missing[bench_name]}
            pending = done_doc_ids(bench_dir)
            needs_generation = any(
                i % dist.world == dist.rank and str(d["doc_id"]) not in pending and str(d["doc_id"]) not in skip_ids
                for i, d in enumerate(docs)
            )
            if needs_generation and model is None:
                _log(dist, f"loading {model_name} from {model_path} on {device}", all_ranks=True)
                model, processor = load_model(model_path, device, cfg.attn_implementation)
            if needs_generation:
                _run_shard(cfg, dist, bench, docs, skip_ids, bench_dir, model_name, model, processor, media)
            dist.barrier()
            if dist.is_main:
                res = finalize_benchmark(cfg, bench_dir, bench_name, (model_name, model_path), docs, missing[bench_name])
                results.setdefault(model_name, {})[bench_name] = res
                groups = ", ".join(f"{k} {v:.1f}" for k, v in res["groups"].items())
                overall = "–" if res["overall"] is None else f"{res['overall']:.2f}"
                _log(dist, f"{model_name} | {bench_name}: overall {overall} ({groups}) n={res['n']}"
                           + (f", skipped {res['n_skipped_missing_media']}" if res["n_skipped_missing_media"] else ""))  # fmt: skip
        del model, processor
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    media.close()  # frames still being written to the disk cache
    stats = asdict(media.stats)
    stats["decoded_paths"] = sorted(set(stats["decoded_paths"]))
    _atomic_write_text(cfg.output_dir / f"media_cache_stats.rank{dist.rank}.json", json.dumps(stats, indent=2) + "\n")
    if dist.is_main:
        if cfg.write_report:
            from spatialladder.evaluation.report import write_report

            md, csv = write_report(cfg.output_dir)
            _log(dist, f"report: {md} and {csv}")
    dist.barrier()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    dist = Dist()
    try:
        run(cfg, dist)
    finally:
        dist.close()
    return 0
