"""Sharded, resumable generation + official scoring over the six benchmarks (``eval/run_eval.py``).

One process per device (``accelerate launch`` / ``torchrun``; a plain ``python`` run is rank 0 of 1),
each with accelerate's ``PartialState`` (:mod:`spatialladder.evaluation.ranks`: ranks die with their
launcher). Rank 0 first locks the output folder: a second run into it refuses while the first lives.
Per model and benchmark:

1. every rank loads the docs (the full set, or the seeded ``--limit`` subset) and checks that all media
   exist: missing files are listed up front, with doc ids, before any generation (or, with
   ``--skip-missing-media``, counted and reported as skipped);
2. rank ``r`` takes its shard (:func:`shard_docs`: all docs of one video on one rank, so each video
   is decoded once per run) minus the docs some ``predictions.rank*.jsonl`` already holds, generates
   in left-padded batches and appends one JSON line per doc to ``predictions.rank{r}.jsonl``, flushed
   and fsynced, so a killed run loses at most the batch in flight;
3. after a barrier rank 0 merges the rank files into ``predictions.jsonl`` (sorted by doc_id, no
   duplicates, every expected doc present), scores it with :mod:`spatialladder.evaluation.scoring`
   and writes ``per_sample_scores.jsonl`` and ``scores.json``; at the end it writes the report.

Output: ``OUTPUT/<model_name>/<benchmark>/{run_config.json, predictions.rank*.jsonl, predictions.jsonl,
per_sample_scores.jsonl, scores.json}`` and ``OUTPUT/report.{md,csv}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spatialladder.evaluation import ranks
from spatialladder.evaluation.benchmarks import (
    BENCHMARKS,
    PROMPT_KINDS,
    SCORERS,
    get_benchmark,
    resolve_benchmarks,
)
from spatialladder.evaluation.benchmarks.base import natural_key
from spatialladder.evaluation.report import write_report
from spatialladder.evaluation.results import (
    done_doc_ids,
    merge_rank_files,
    read_jsonl_tolerant,
    score_records,
)
from spatialladder.positions import POSITION_CONVENTION, install_original_positions, resume_hint

if TYPE_CHECKING:  # media_inputs pulls in transformers and TRL; keep `run_eval --help` light
    from spatialladder.media_inputs import MediaConfig

__all__ = [
    "EvalConfig",
    "checkpoint_repetition_penalty",
    "find_missing_media",
    "locked_output",
    "main",
    "merge_rank_files",
    "parse_args",
    "read_jsonl_tolerant",
    "run",
    "score_records",
    "shard_docs",
    "shard_indices",
]

EXIT_MISSING_MEDIA = 2
EXIT_LOCKED = 3  # another live run holds the output folder
PRED_GLOB = "predictions.rank*.jsonl"


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class EvalConfig:
    """One evaluation run, parsed from the command line by :class:`transformers.HfArgumentParser`
    (every field is a ``--flag``; ``--model`` and ``--data-root`` repeat). The analysis commands build
    one in code for its generation settings alone, so ``model`` / ``data_root`` default to empty here and
    are required on the command line only."""

    output_dir: Path = field(metadata={"help": "results folder (resumable; one run at a time)"})
    model: list[str] = field(
        default_factory=list,
        metadata={"help": "checkpoint dir or hub id, optionally NAME=PATH; repeat for several models",
                  "metavar": "[NAME=]PATH", "action": "extend", "required": True},
    )  # fmt: skip
    benchmarks: list[str] = field(
        default_factory=lambda: ["all"],
        metadata={"help": f"'all' or names separated by spaces/commas: {' '.join(BENCHMARKS)}"},
    )
    data_root: list[str] = field(
        default_factory=list,
        metadata={"help": "one root holding each benchmark under its folder name, and/or NAME=DIR per "
                          "benchmark; repeatable", "metavar": "DIR|NAME=DIR", "action": "extend", "required": True},
    )  # fmt: skip
    prompt_kind: str = field(default="thinking", metadata={"choices": PROMPT_KINDS, "help": "prompt format"})
    num_frames: int = field(default=32, metadata={"help": "uniformly sampled frames per video"})
    min_pixels: int = field(default=16 * 28 * 28, metadata={"help": "per image or frame"})
    max_pixels: int = field(default=512 * 28 * 28, metadata={"help": "per image or frame"})
    batch_size: int = field(default=4, metadata={"help": "docs per generate() call (left-padded)"})
    max_new_tokens: int = field(default=1024, metadata={"help": "reply length limit in tokens"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "only with --temperature > 0"})
    repetition_penalty: float | None = field(
        default=None,
        metadata={"help": "unset: the checkpoint's generation_config.json value (Qwen2.5-VL-Instruct: 1.05; "
                          "none there: 1.0); the value used is recorded with every result"},
    )  # fmt: skip
    seed: int = field(default=0, metadata={"help": "seed of the --limit subset and of sampling"})
    scorer: str = field(
        default="official", metadata={"choices": SCORERS, "help": "spatialladder: the release's scoring"}
    )
    limit: int | None = field(default=None, metadata={"help": "score a seeded subset of N docs per benchmark"})
    skip_missing_media: bool = field(
        default=False,
        metadata={"help": "skip docs whose media are missing (counted and reported) instead of failing"},
    )
    frame_cache_dir: str | None = field(
        default=None, metadata={"help": "on-disk frame cache (unset: OUTPUT/.frame_cache; '' disables it)"}
    )
    overwrite: bool = field(default=False, metadata={"help": "discard earlier predictions of these runs"})
    attn_implementation: str = field(
        default="auto", metadata={"help": "auto = flash_attention_2 on CUDA when installed, else sdpa"}
    )
    blind: bool = field(
        default=False,
        metadata={"help": "text-only-prior control: every image and video frame is replaced by a constant grey "
                          "image of the same size (same vision token counts); recorded in run_config.json, "
                          "scores.json and every prediction line, so use its own --model NAME"},
    )  # fmt: skip
    report: bool = field(default=True, metadata={"help": "write OUTPUT/report.{md,csv} (--no-report: do not)"})
    num_samples: int = field(
        default=1, metadata={"help": "replies sampled per doc; > 1 adds a 'samples' list to each line"}
    )
    num_processes: int | None = field(
        default=None, metadata={"help": "read by eval/run_eval.sh (the launcher); ignored here"}
    )

    # Resolved from the fields above in __post_init__.
    models: list[tuple[str, str]] = field(init=False)  # (output folder name, path or hub id)
    data_roots: dict[str, Path] = field(init=False)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        try:
            self.benchmarks = resolve_benchmarks(list(self.benchmarks))
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        self.models = [_parse_model(m) for m in self.model]
        names = [n for n, _ in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names collide ({names}); use --model NAME=PATH")
        self.data_roots = _parse_data_roots(self.data_root, self.benchmarks) if self.data_root else {}
        for flag in ("batch_size", "num_frames", "max_new_tokens", "num_samples"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(self, flag)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 0 < --min-pixels <= --max-pixels, got {self.min_pixels}, {self.max_pixels}")

    @property
    def frame_cache(self) -> Path | None:
        """The on-disk frame cache folder, or None when disabled (``--frame-cache-dir ''``)."""
        if self.frame_cache_dir is None:
            return self.output_dir / ".frame_cache"
        return Path(self.frame_cache_dir) if self.frame_cache_dir else None

    def for_model(self, model_path: str) -> EvalConfig:
        """This config with the decoding settings of ``model_path`` filled in: an unset
        ``repetition_penalty`` becomes the checkpoint's own (read before the model loads, so the run
        signature can be checked first)."""
        if self.repetition_penalty is not None:
            return self
        return dataclasses.replace(self, repetition_penalty=checkpoint_repetition_penalty(model_path))

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
        if _uses_frames(benchmark):
            sig["num_frames"] = self.num_frames
        if self.blind:  # blind replies never resume into (or mix with) sighted ones
            sig["blind"] = True
        return sig


def _uses_frames(benchmark: str) -> bool:
    """``num_frames`` is a setting of a benchmark with videos (analysis question files are unregistered)."""
    return benchmark in BENCHMARKS and BENCHMARKS[benchmark].VIDEO


def effective_repetition_penalty(generation_config: Any) -> float:
    """The penalty ``generate()`` applies under ``generation_config`` (unset: none, i.e. 1.0)."""
    value = generation_config.repetition_penalty
    return 1.0 if value is None else float(value)


def checkpoint_repetition_penalty(model_path: str) -> float:
    """The repetition penalty of ``model_path``'s ``generation_config.json`` (1.0 when it sets none or
    has no such file): what ``generate()`` applies to that checkpoint when nothing overrides it."""
    from transformers import GenerationConfig

    try:
        generation_config = GenerationConfig.from_pretrained(model_path)
    except OSError:  # no generation_config.json: the model loads with transformers' defaults
        generation_config = GenerationConfig()
    return effective_repetition_penalty(generation_config)


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
            raise ValueError(f"--model {value!r}: expected PATH or NAME=PATH")
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
            raise ValueError("give one shared --data-root DIR; use NAME=DIR for the others")
        shared = Path(value)
    roots: dict[str, Path] = {}
    for bench in benchmarks:
        if bench in per:
            roots[bench] = per[bench]
        elif shared is not None:
            roots[bench] = shared
        else:
            raise ValueError(f"no --data-root for {bench} (give DIR or {bench}=DIR)")
    return roots


def build_parser() -> Any:
    """The command line: :class:`EvalConfig`'s fields as flags (``transformers.HfArgumentParser``)."""
    from transformers import HfArgumentParser

    return HfArgumentParser(
        EvalConfig,
        prog="run_eval",
        description="Evaluate Qwen2.5-VL checkpoints on the six spatial benchmarks (sharded, resumable).",
    )


def parse_args(argv: Sequence[str] | None = None) -> EvalConfig:
    """An :class:`EvalConfig` from ``argv``; a bad value exits with one line naming the flag."""
    try:
        (cfg,) = build_parser().parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except ValueError as err:
        raise SystemExit(f"run_eval: {err}") from None
    return cfg


# ------------------------------------------------------------------------------------------------
# Ranks
# ------------------------------------------------------------------------------------------------
def _log(state: Any, msg: str, *, all_ranks: bool = False) -> None:
    """Print on the main process (or on every rank, prefixed, with ``all_ranks``)."""
    if state.is_main_process or all_ranks:
        prefix = f"[rank {state.process_index}] " if state.num_processes > 1 and all_ranks else ""
        print(f"{prefix}{msg}", file=sys.stderr, flush=True)


def _video_key(doc: dict[str, Any]) -> tuple[str, ...] | None:
    videos = tuple(str(m.path) for m in doc["_media"] if m.kind == "video")
    return videos or None


def shard_indices(keys: Sequence[Hashable | None], world: int) -> list[list[int]]:
    """Doc indices per rank, each list ascending. Docs with the same key (the same video) go to one rank,
    so each video is decoded once per run; a doc without a key is a group of its own. Groups are dealt
    largest first (ties: first doc first) to the rank with the fewest docs so far (ties: lowest rank):
    without keys this is exactly ``i % world``. Every rank computes the same split from the same docs."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(("doc", i) if key is None else ("key", key), []).append(i)
    shards: list[list[int]] = [[] for _ in range(world)]
    for members in sorted(groups.values(), key=lambda g: (-len(g), g[0])):
        min(shards, key=len).extend(members)  # min() returns the first (lowest) rank among equals
    return [sorted(s) for s in shards]


def shard_docs(docs: Sequence[dict[str, Any]], rank: int, world: int) -> list[dict[str, Any]]:
    """The docs rank ``rank`` of ``world`` generates for (see :func:`shard_indices`)."""
    return [docs[i] for i in shard_indices([_video_key(d) for d in docs], world)[rank]]


@contextlib.contextmanager
def locked_output(output_dir: Path, state: Any) -> Iterator[None]:
    """Hold ``output_dir``'s :class:`~spatialladder.evaluation.ranks.OutputLock` (taken by rank 0) for the
    body. Every rank learns the outcome: a refused run exits on all ranks with the live holder's pid in
    the message (exit status ``EXIT_LOCKED``) before anything is read or written."""
    from accelerate.utils import broadcast_object_list

    lock = ranks.OutputLock(output_dir) if state.is_main_process else None
    outcome: list[str | None] = [None]
    if lock is not None:
        try:
            stale = lock.acquire()
        except ranks.OutputLocked as err:
            outcome = [str(err)]
        else:
            if stale is not None:
                _log(state, f"run_eval: taking over {lock.path} from pid {stale['pid']} (no longer running)")
    if state.num_processes > 1:
        broadcast_object_list(outcome)
    if outcome[0] is not None:
        _log(state, f"run_eval: {outcome[0]}")
        raise SystemExit(EXIT_LOCKED)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


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
        "num_frames": cfg.num_frames if _uses_frames(benchmark) else None,
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
        # generation_config, which for Qwen2.5-VL-Instruct carries do_sample, top_k 1 and
        # repetition_penalty 1.05. Decoding stays greedy; the penalty is the checkpoint's unless set
        # (run() resolves it with EvalConfig.for_model, so the value used is the one recorded).
        "repetition_penalty": cfg.repetition_penalty
        if cfg.repetition_penalty is not None
        else effective_repetition_penalty(g),
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


def _blind_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with every image and video frame replaced by :func:`blind_image`."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [
                {**part, "image": blind_image(part["image"])} if part.get("type") == "image"
                else {**part, "video": [blind_image(f) for f in part["video"]]} if part.get("type") == "video"
                else part
                for part in content
            ]  # fmt: skip
        out.append({**message, "content": content})
    return out


def eval_media_config(cfg: EvalConfig) -> MediaConfig:
    """How eval media become inputs: the run's pixel bounds, applied per processor call."""
    from spatialladder.media_inputs import MediaConfig

    return MediaConfig(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)


def batch_inputs(processor: Any, batch_messages: Sequence[list[dict[str, Any]]], cfg: EvalConfig) -> dict[str, Any]:
    """Model inputs of a batch of chat messages: each encoded like a training sample
    (:func:`spatialladder.media_inputs.encode_messages`), left-padded for generation."""
    from spatialladder.media_inputs import collate_encoded, encode_messages, pad_token_id

    if cfg.blind:  # every benchmark's media pass here, so --blind is applied once, for all of them
        batch_messages = [_blind_messages(m) for m in batch_messages]
    config = eval_media_config(cfg)
    encoded = [encode_messages(processor, m, config=config, add_generation_prompt=True) for m in batch_messages]
    return collate_encoded(encoded, pad_token_id=pad_token_id(processor), padding_side="left")


def generate_batch(
    model: Any, processor: Any, batch_messages: Sequence[list[dict[str, Any]]], gen_config: Any, cfg: EvalConfig
) -> list[str]:
    """Replies for a batch of chat messages (left padding; images/videos in message order)."""
    import torch

    inputs = {k: v.to(model.device) for k, v in batch_inputs(processor, batch_messages, cfg).items()}
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
    state: Any,
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

    rank, world = state.process_index, state.num_processes
    done = done_doc_ids(bench_dir) | skip_ids
    todo = [d for d in shard_docs(docs, rank, world) if str(d["doc_id"]) not in done]
    # Questions of the same video back to back: the frame LRU then decodes each video once.
    if any(m.kind == "video" for d in todo for m in d["_media"]):
        order = {id(d): i for i, d in enumerate(todo)}
        todo.sort(key=lambda d: (str(d["_media"][0].path) if d["_media"] else "", order[id(d)]))
    if not todo:
        return 0
    own = bench_dir / f"predictions.rank{rank}.jsonl"
    _repair_tail(own)
    gen_config = _generation_config(model, cfg)
    gen_params = cfg.generation_params()
    written = 0
    bar = tqdm(total=len(todo), desc=f"{model_name} | {bench.NAME} | rank {rank}/{world}",
               position=rank, leave=state.is_main_process, dynamic_ncols=True, file=sys.stderr)  # fmt: skip
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
                    "num_frames": cfg.num_frames if _uses_frames(bench.NAME) else None,
                    "max_pixels": cfg.max_pixels,
                    "blind": cfg.blind,
                    "rank": rank,
                    "seconds": round(elapsed, 3),
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                out.flush()
                os.fsync(out.fileno())  # a crash loses at most the batch in flight
                written += 1
            bar.update(len(batch))
    bar.close()
    return written


def _needs_generation(docs: Sequence[dict[str, Any]], skip_ids: set[str], bench_dir: Path, state: Any) -> bool:
    """Whether this rank's shard still has docs without a prediction."""
    done = done_doc_ids(bench_dir) | skip_ids
    return any(str(d["doc_id"]) not in done for d in shard_docs(docs, state.process_index, state.num_processes))


def _load_all_docs(cfg: EvalConfig) -> dict[str, list[dict[str, Any]]]:
    return {
        name: BENCHMARKS[name].load_docs(cfg.data_roots[name], limit=cfg.limit, seed=cfg.seed)
        for name in cfg.benchmarks
    }


def run(cfg: EvalConfig, state: Any | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Evaluate every model on every benchmark; returns {model: {benchmark: scores}} on rank 0.
    ``state``: this rank's :func:`~spatialladder.evaluation.ranks.rank_state` (made here when None)."""
    state = state or ranks.rank_state()
    if not cfg.models or set(cfg.data_roots) != set(cfg.benchmarks):
        raise ValueError("run_eval: give at least one --model and a --data-root for every benchmark")
    with locked_output(cfg.output_dir, state):
        return _run_locked(cfg, state)


def _run_locked(cfg: EvalConfig, state: Any) -> dict[str, dict[str, dict[str, Any]]]:
    import torch

    from spatialladder.evaluation.media import FrameCache

    docs_by_bench = _load_all_docs(cfg)

    # Every missing file, with doc ids, before any model is loaded or any reply generated.
    missing = {b: find_missing_media(docs) for b, docs in docs_by_bench.items()}
    n_missing = sum(len(v) for v in missing.values())
    if n_missing:
        listing = "\n".join(f"  {b} doc {d}: {f}" for b, items in missing.items() for d, f in items)
        if not cfg.skip_missing_media:
            if state.is_main_process:
                _atomic_write_text(
                    cfg.output_dir / "missing_media.json",
                    json.dumps({b: [{"doc_id": d, "file": f} for d, f in v] for b, v in missing.items() if v}, indent=2)
                    + "\n",
                )
            _log(state, f"run_eval: {n_missing} media file(s) missing (listed in "
                        f"{cfg.output_dir / 'missing_media.json'}):\n{listing}\n"
                        "Fix the paths / --data-root, or pass --skip-missing-media to skip these docs "
                        "(they are then counted and reported as skipped).")  # fmt: skip
            raise SystemExit(EXIT_MISSING_MEDIA)
        _log(state, f"run_eval: skipping {n_missing} missing media item(s) (--skip-missing-media):\n{listing}")

    if cfg.overwrite and state.is_main_process:
        for name, _ in cfg.models:
            for bench in cfg.benchmarks:
                shutil.rmtree(cfg.output_dir / name / bench, ignore_errors=True)
    state.wait_for_everyone()

    device = state.device
    torch.manual_seed(cfg.seed + state.process_index)
    media = FrameCache(cfg.frame_cache)  # its resize rule comes with each model's processor
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for model_name, model_path in cfg.models:
        mcfg = cfg.for_model(model_path)  # this checkpoint's decoding defaults, recorded in the signature
        # Check every benchmark's settings before loading the model: a mismatch must not cost a load.
        for bench_name in cfg.benchmarks:
            bench_dir = cfg.output_dir / model_name / bench_name
            bench_dir.mkdir(parents=True, exist_ok=True)
            _check_run_config(bench_dir, mcfg.run_signature(bench_name, model_path))
        model = processor = None
        for bench_name in cfg.benchmarks:
            bench = BENCHMARKS[bench_name]
            bench_dir = cfg.output_dir / model_name / bench_name
            docs = docs_by_bench[bench_name]
            skip_ids = {d for d, _ in missing[bench_name]}
            needs_generation = _needs_generation(docs, skip_ids, bench_dir, state)
            if needs_generation and model is None:
                _log(state, f"loading {model_name} from {model_path} on {device}", all_ranks=True)
                model, processor = load_model(model_path, device, cfg.attn_implementation)
                media.resize = eval_media_config(cfg).resize_rule(processor)
            if needs_generation:
                _run_shard(mcfg, state, bench, docs, skip_ids, bench_dir, model_name, model, processor, media)
            state.wait_for_everyone()
            if state.is_main_process:
                res = finalize_benchmark(mcfg, bench_dir, bench_name, (model_name, model_path), docs, missing[bench_name])
                results.setdefault(model_name, {})[bench_name] = res
                groups = ", ".join(f"{k} {v:.1f}" for k, v in res["groups"].items())
                overall = "–" if res["overall"] is None else f"{res['overall']:.2f}"
                _log(state, f"{model_name} | {bench_name}: overall {overall} ({groups}) n={res['n']}"
                            + (f", skipped {res['n_skipped_missing_media']}" if res["n_skipped_missing_media"] else ""))  # fmt: skip
        del model, processor
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    media.close()  # frames still being written to the disk cache
    stats = asdict(media.stats)
    stats["decoded_paths"] = sorted(set(stats["decoded_paths"]))
    _atomic_write_text(cfg.output_dir / f"media_cache_stats.rank{state.process_index}.json",
                       json.dumps(stats, indent=2) + "\n")  # fmt: skip
    if state.is_main_process:
        if cfg.report:
            md, csv = write_report(cfg.output_dir)
            _log(state, f"report: {md} and {csv}")
    state.wait_for_everyone()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``eval/run_eval.py``: one rank of an evaluation run."""
    cfg = parse_args(argv)
    state = ranks.rank_state()  # a rank whose launcher is already gone stops here
    try:
        run(cfg, state)
    finally:
        state.destroy_process_group()
    return 0
