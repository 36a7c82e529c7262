"""Benchmark media: uniformly sampled video frames decoded once per video, and images.

VSI-Bench asks ~18 questions per video; decoding a 2-minute ScanNet video for every question would
dominate evaluation time. :class:`FrameCache` decodes each (video, num_frames, pixel budget) once and
reuses the sampled frames: an in-memory LRU serves the questions of the video being processed, and an
on-disk cache (one lossless ``.npz`` per key) serves later runs, other ranks and other models. The key
is (resolved path, mtime, size, num_frames, resize grid, min_pixels, max_pixels), so a replaced video
or a different sampling never reuses stale frames.

Frames are stored already resized by the processor's ``smart_resize`` rule for the pixel budget
(:class:`~spatialladder.geometry.ResizeRule`: the grid comes from the processor's patch size); the
processor's own resize to the same budget is then the identity. Storage is lossless so the first run
(frames straight from the decoder) and a resumed run (frames from disk) feed the model identical pixels.
Images are loaded with :func:`spatialladder.media_inputs.load_rgb`, the loader of training too.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from transformers.video_utils import VideoMetadata

from spatialladder.geometry import ResizeRule
from spatialladder.media_inputs import load_rgb, video_metadata

__all__ = ["CacheStats", "FrameCache", "SampledVideo", "decode_video_frames", "resize_to_budget", "sample_indices"]

CACHE_FORMAT_VERSION = 1  # bump when the stored layout or the resize rule changes


def sample_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """``num_frames`` uniformly spaced frame indices over ``[0, total_frames - 1]``.

    ``np.linspace(0, total - 1, n, dtype=int)``, the rule of the VSI-Bench / lmms-eval video loaders
    (first and last frame always included; short videos repeat frames rather than return fewer)."""
    if total_frames < 1:
        raise ValueError(f"video has no frames (total_frames={total_frames})")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return np.linspace(0, total_frames - 1, num_frames, dtype=int)


def resize_to_budget(frame: np.ndarray, rule: ResizeRule) -> np.ndarray:
    """Resize an (H, W, 3) uint8 frame to its smart_resize size (bicubic, like the Qwen processors)."""
    h, w = frame.shape[:2]
    nw, nh = rule.resized_size(w, h)
    if (nh, nw) == (h, w):
        return frame
    return np.asarray(Image.fromarray(frame).resize((nw, nh), Image.Resampling.BICUBIC))


def decode_video_frames(path: str | Path, num_frames: int) -> tuple[list[np.ndarray], np.ndarray, float, int]:
    """Decode the ``num_frames`` uniformly sampled frames of ``path`` with PyAV.

    Returns (RGB uint8 frames, sampled indices, fps, total frame count). The container's frame count
    is trusted first; when it is missing or larger than what actually decodes, the video is decoded a
    second time against the real count, so sampling always spans the whole video."""
    import av

    path = str(path)
    with av.open(path) as container:
        stream = container.streams.video[0]
        total = int(stream.frames or 0)
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
    for _attempt in range(2):
        if total <= 0:
            total = _count_frames(path)
        indices = sample_indices(total, num_frames)
        wanted = set(indices.tolist())
        last = int(indices[-1])
        got: dict[int, np.ndarray] = {}
        seen = 0
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-threaded decoding; frame order is unchanged
            for i, frame in enumerate(container.decode(stream)):
                seen = i + 1
                if i in wanted:
                    got[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
        if len(got) == len(wanted):
            return [got[int(i)] for i in indices], indices, fps or 24.0, total
        total = seen  # the header over-counted: resample against the frames that really exist
    raise RuntimeError(f"{path}: could not decode the sampled frames (decoded {seen} frames)")


def _count_frames(path: str) -> int:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


@dataclass
class SampledVideo:
    """Sampled frames of one video (PIL, already at the pixel budget) and where they came from."""

    frames: list[Image.Image]
    indices: list[int]
    fps: float
    total_frames: int

    def metadata(self) -> VideoMetadata:
        """Where the frames came from: its ``sampled_fps`` (= len(indices) / total * fps) sets
        Qwen2.5-VL's seconds-per-temporal-patch, as qwen-vl-utils does."""
        return video_metadata(self.frames, self.fps, self.indices, self.total_frames)


@dataclass
class CacheStats:
    decodes: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    decoded_paths: list[str] = field(default_factory=list)


class FrameCache:
    """Sampled video frames decoded once per (video, num_frames, resize rule); images loaded as RGB.

    ``resize`` is the processor's rule for the run's pixel budget
    (:meth:`spatialladder.media_inputs.MediaConfig.resize_rule`); it may be set after construction
    (the eval runner learns it when it loads a model) but before the first video.
    ``cache_dir=None`` keeps only the in-memory LRU of ``memory_items`` videos. Safe for several
    processes sharing ``cache_dir``: files are written to a temporary name and atomically renamed.
    """

    def __init__(
        self, cache_dir: str | Path | None = None, *, resize: ResizeRule | None = None, memory_items: int = 8
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.resize = resize
        self.memory_items = int(memory_items)
        self.stats = CacheStats()
        self._lru: OrderedDict[str, SampledVideo] = OrderedDict()
        self._lock = threading.Lock()
        # Disk writes (zlib-compressing ~30 MB of frames) run on one background thread: the model
        # never waits for them, and zlib releases the GIL. flush() waits for the pending ones.
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    # -- keys -------------------------------------------------------------------------------------
    def _rule(self) -> ResizeRule:
        if self.resize is None:
            raise RuntimeError(
                "FrameCache.resize is not set: give it the processor's ResizeRule before decoding a video"
            )
        return self.resize

    def key(self, path: str | Path, num_frames: int) -> str:
        p = Path(path).resolve()
        st = p.stat()
        rule = self._rule()
        raw = "|".join(
            map(str, (CACHE_FORMAT_VERSION, p, st.st_mtime_ns, st.st_size, num_frames,
                      rule.factor, rule.min_pixels, rule.max_pixels))
        )  # fmt: skip
        return hashlib.sha1(raw.encode()).hexdigest()

    def _disk_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.npz"

    # -- videos -----------------------------------------------------------------------------------
    def video(self, path: str | Path, num_frames: int) -> SampledVideo:
        key = self.key(path, num_frames)
        with self._lock:
            hit = self._lru.get(key)
            if hit is not None:
                self._lru.move_to_end(key)
                self.stats.memory_hits += 1
                return hit
        video = self._load_disk(key)
        if video is not None:
            self.stats.disk_hits += 1
        else:
            video = self._decode(path, num_frames)
            if self.cache_dir is not None:
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-cache-writer")
                self._pending = [f for f in self._pending if not f.done()]
                self._pending.append(self._writer.submit(self._store_disk, key, video))
        with self._lock:
            self._lru[key] = video
            self._lru.move_to_end(key)
            while len(self._lru) > self.memory_items:
                self._lru.popitem(last=False)
        return video

    def _decode(self, path: str | Path, num_frames: int) -> SampledVideo:
        frames, indices, fps, total = decode_video_frames(path, num_frames)
        self.stats.decodes += 1
        self.stats.decoded_paths.append(str(path))
        rule = self._rule()
        resized = [resize_to_budget(f, rule) for f in frames]
        return SampledVideo([Image.fromarray(f) for f in resized], [int(i) for i in indices], fps, total)

    def _load_disk(self, key: str) -> SampledVideo | None:
        target = self._disk_path(key)
        if target is None or not target.is_file():
            return None
        try:
            with np.load(target) as z:
                frames = z["frames"]
                return SampledVideo(
                    [Image.fromarray(f) for f in frames],
                    [int(i) for i in z["indices"]],
                    float(z["fps"].reshape(-1)[0]),
                    int(z["total"].reshape(-1)[0]),
                )
        except (OSError, ValueError, KeyError):
            return None  # a corrupt or foreign file: decode again and overwrite it

    def _store_disk(self, key: str, video: SampledVideo) -> None:
        target = self._disk_path(key)
        if target is None:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        frames = np.stack([np.asarray(f) for f in video.frames])
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=target.parent)
        arrays = {"frames": frames, "indices": np.asarray(video.indices), "fps": np.asarray(video.fps),
                  "total": np.asarray(video.total_frames)}  # fmt: skip
        try:
            # An .npz (zip of .npy) written with deflate level 1: ~4x faster than np.savez_compressed's
            # default level for about the same size on video frames, and still read by np.load.
            with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for name, arr in arrays.items():
                    buf = io.BytesIO()
                    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
                    zf.writestr(f"{name}.npy", buf.getvalue())
            os.replace(tmp, target)  # atomic: concurrent ranks never see a half-written file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def flush(self) -> None:
        """Wait until every decoded video is on disk (re-raises a failed write)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    # -- images (read as they come, not cached) --------------------------------------------------
    image = staticmethod(load_rgb)  # from a path
    image_bytes = staticmethod(load_rgb)  # from bytes embedded in a parquet
