"""Frame sampling and the frame cache: each video decoded once, identical pixels from every path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spatialladder.evaluation import media as media_mod
from spatialladder.evaluation.media import FrameCache, decode_video_frames, sample_indices
from spatialladder.geometry import ResizeRule
from spatialladder.synthetic import write_mp4

MIN_PX, MAX_PX = 4 * 28 * 28, 64 * 28 * 28
RULE = ResizeRule(factor=28, min_pixels=MIN_PX, max_pixels=MAX_PX)  # Qwen2.5-VL's grid: 14 px x 2 merge


def _video(path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        arr = np.full((96, 128, 3), (i * 9) % 256, dtype=np.uint8)
        arr[: 8 + i % 80, :, 1] = rng.integers(0, 255)
        frames.append(Image.fromarray(arr))
    return write_mp4(frames, path, fps=8)


def test_sample_indices_uniform() -> None:
    assert sample_indices(100, 5).tolist() == [0, 24, 49, 74, 99]
    assert sample_indices(3, 5).tolist() == [0, 0, 1, 1, 2]  # short video: frames repeat
    assert len(sample_indices(1000, 32)) == 32
    with pytest.raises(ValueError):
        sample_indices(0, 4)


def test_decode_samples_whole_video(tmp_path: Path) -> None:
    path = _video(tmp_path / "v.mp4", 40)
    frames, idx, fps, total = decode_video_frames(path, 8)
    assert total == 40 and fps == pytest.approx(8.0) and idx[0] == 0 and idx[-1] == 39
    assert len(frames) == 8 and frames[0].shape == (96, 128, 3)
    # the brightness ramp shows the right frames were picked (lossy codec: approximate)
    assert abs(int(frames[-1][50:, :, 0].mean()) - (39 * 9) % 256) < 12


def test_cache_decodes_each_video_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    videos = [_video(tmp_path / f"v{i}.mp4", 30, seed=i) for i in range(3)]
    calls: list[str] = []
    real = media_mod.decode_video_frames

    def counting(path: str | Path, n: int):  # type: ignore[no-untyped-def]
        calls.append(str(path))
        return real(path, n)

    monkeypatch.setattr(media_mod, "decode_video_frames", counting)
    cache = FrameCache(tmp_path / "cache", resize=RULE, memory_items=8)
    questions = [videos[q % 3] for q in range(18)]  # interleaved, 6 questions per video
    first = [cache.video(p, 6) for p in questions]
    cache.flush()
    assert sorted(calls) == sorted(str(v) for v in videos)  # one decode per video
    assert cache.stats.decodes == 3 and cache.stats.memory_hits == 15
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3

    # a fresh cache (resumed run / another rank) reads the disk cache: no decode, identical pixels
    calls.clear()
    warm = FrameCache(tmp_path / "cache", resize=RULE)
    again = [warm.video(p, 6) for p in questions]
    assert calls == [] and warm.stats.disk_hits == 3
    for a, b in zip(first, again):
        assert a.indices == b.indices and a.total_frames == b.total_frames
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.frames, b.frames))
        assert a.frames[0].size[0] % 28 == 0 and a.frames[0].size[1] % 28 == 0  # smart_resize grid
        assert a.frames[0].size[0] * a.frames[0].size[1] <= MAX_PX

    # the key covers num_frames, the pixel budget and the file itself
    assert warm.key(videos[0], 6) != warm.key(videos[0], 8)
    other = FrameCache(tmp_path / "cache", resize=ResizeRule(28, MIN_PX, 32 * 28 * 28))
    assert other.key(videos[0], 6) != warm.key(videos[0], 6)
    other_grid = FrameCache(tmp_path / "cache", resize=ResizeRule(32, MIN_PX, MAX_PX))
    assert other_grid.key(videos[0], 6) != warm.key(videos[0], 6)
    before = warm.key(videos[0], 6)
    st = os.stat(videos[0])
    os.utime(videos[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert warm.key(videos[0], 6) != before


def test_lru_evicts_and_memory_only_mode(tmp_path: Path) -> None:
    videos = [_video(tmp_path / f"v{i}.mp4", 12, seed=i) for i in range(3)]
    cache = FrameCache(None, resize=RULE, memory_items=2)
    for p in [*videos, videos[0]]:
        cache.video(p, 4)
    assert cache.stats.decodes == 4  # v0 was evicted by v2
    cache.close()
    assert not list(tmp_path.rglob("*.npz"))
