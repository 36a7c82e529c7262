#!/usr/bin/env python
"""Media preparation for a VSI-Bench-style set: the evaluator's frame cache vs decoding per question.

    python bench/eval_media.py [--videos 6] [--questions 10] [--seconds 30] [--fps 24] [--size 640x480]
                               [--num-frames 32] [--max-pixels 401408] [--work-dir DIR]

Builds (once, kept in --work-dir) ``videos`` synthetic indoor walk-through videos of realistic length
and resolution (ScanNet-like: 640x480 at 24 fps), then times, in the same run, preparing the
``num_frames`` sampled frames for ``videos x questions`` questions (interleaved, as VSI-Bench's parquet
is ordered by question type, not by video):

* per question: decode + sample + resize for every question (what a loop without a cache does);
* cached, cold: :class:`FrameCache` with an empty disk cache (one decode per video, the rest LRU hits);
* cached, warm: a fresh FrameCache on the filled disk cache (a resumed run, another rank or model).

Prints the three times and the speed-ups; checks that all three paths give identical pixels.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spatialladder.evaluation.media import FrameCache, decode_video_frames, resize_to_budget
from spatialladder.synthetic import make_scene, render_frame, write_mp4


def make_video(path: Path, seed: int, seconds: float, fps: int, size: tuple[int, int]) -> None:
    """A synthetic walk-through: 24 rendered keyframes of a procedural room, panned and cross-faded
    into ``seconds * fps`` distinct frames with mild sensor noise (so the codec has real work)."""
    w, h = size
    big = (int(w * 1.25) // 2 * 2, int(h * 1.25) // 2 * 2)
    scene = make_scene(random.Random(seed), f"bench{seed}", image_size=big, video_frames=24, num_views=1,
                       vary_size=False)  # fmt: skip
    keys = [np.asarray(render_frame(scene, cam).image, dtype=np.float32) for cam in scene.video_cameras]
    n = int(seconds * fps)
    rng = np.random.default_rng(seed)
    noise = [rng.normal(0, 3, (h, w, 3)).astype(np.float32) for _ in range(8)]
    frames = []
    for i in range(n):
        t = i / max(1, n - 1) * (len(keys) - 1)
        k, a = int(t), t - int(t)
        img = keys[k] if k + 1 >= len(keys) else (1 - a) * keys[k] + a * keys[k + 1]
        dx = int((big[0] - w) * (0.5 + 0.5 * math.sin(i / 17)))
        dy = int((big[1] - h) * (0.5 + 0.5 * math.cos(i / 23)))
        crop = img[dy : dy + h, dx : dx + w] + noise[i % len(noise)]
        frames.append(Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)))
    write_mp4(frames, path, fps=fps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--questions", type=int, default=18, help="questions per video (VSI-Bench: ~5.1k questions over ~290 videos, ~18 each)")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--size", default="640x480")
    p.add_argument("--num-frames", type=int, default=32)
    p.add_argument("--min-pixels", type=int, default=16 * 28 * 28)
    p.add_argument("--max-pixels", type=int, default=512 * 28 * 28)
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "spatialladder-bench-eval-media")
    args = p.parse_args(argv)
    w, h = (int(x) for x in args.size.lower().split("x"))

    video_dir = args.work_dir / f"videos_{args.seconds:g}s_{args.fps}fps_{w}x{h}"
    videos = [video_dir / f"scene{v:04d}_00.mp4" for v in range(args.videos)]
    for v, path in enumerate(videos):
        if not path.exists():
            print(f"rendering {path.name} ({int(args.seconds * args.fps)} frames at {w}x{h}) ...", flush=True)
            make_video(path, v, args.seconds, args.fps, (w, h))
    for path in videos:
        path.read_bytes()  # warm the OS page cache so no path pays for the first disk read
    questions = [videos[q % args.videos] for q in range(args.videos * args.questions)]  # interleaved
    n = args.num_frames

    t0 = time.perf_counter()
    per_question = []
    for path in questions:
        frames, _, _, _ = decode_video_frames(path, n)
        per_question.append([resize_to_budget(f, args.min_pixels, args.max_pixels) for f in frames])
    t_naive = time.perf_counter() - t0

    cache_dir = args.work_dir / "frame_cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    cold = FrameCache(cache_dir, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
    t0 = time.perf_counter()
    cold_out = [cold.video(path, n) for path in questions]
    t_cold = time.perf_counter() - t0  # disk writes overlap with this (background thread) ...
    t0 = time.perf_counter()
    cold.close()
    t_flush = time.perf_counter() - t0  # ... and this is what was still pending at the end

    warm = FrameCache(cache_dir, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
    t0 = time.perf_counter()
    warm_out = [warm.video(path, n) for path in questions]
    t_warm = time.perf_counter() - t0

    for ref, c, wv in zip(per_question, cold_out, warm_out):
        assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(ref, c.frames)), "cold cache pixels differ"
        assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(ref, wv.frames)), "warm cache pixels differ"

    total = int(args.seconds * args.fps)
    print(f"{args.videos} videos x {args.questions} questions = {len(questions)} questions; "
          f"{total} frames/video at {w}x{h}, {n} sampled frames, max_pixels {args.max_pixels}")  # fmt: skip
    print(f"decode per question : {t_naive:8.2f} s  ({len(questions)} decodes)")
    print(f"frame cache (cold)  : {t_cold:8.2f} s  ({cold.stats.decodes} decodes, {cold.stats.memory_hits} memory hits)"
          f"  -> {t_naive / t_cold:5.1f}x less (+{t_flush:.2f} s finishing background disk writes: "
          f"{t_naive / (t_cold + t_flush):.1f}x)")  # fmt: skip
    print(f"frame cache (warm)  : {t_warm:8.2f} s  ({warm.stats.decodes} decodes, {warm.stats.disk_hits} disk hits, "
          f"{warm.stats.memory_hits} memory hits)  -> {t_naive / t_warm:5.1f}x less")  # fmt: skip
    print("identical pixels on all three paths: yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
