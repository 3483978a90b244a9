"""Decoded frames cached on disk for training: epochs after the first do no video decoding.

    cache = ClipCache("cache/clips")
    frames = cache.get_or_decode("a.mp4", indices, short_side=73)   # uint8 (T, H, W, 3), like VideoReader.frames
    with open_clips("a.mp4", cache) as reader:                        # a VideoReader stand-in: .info, .frames()
        frames = reader.frames(indices, short_side=73)

What is cached: the *whole* video, every ``frame_stride``-th frame, at the decode size (short side),
as one uint8 array (a store entry) read back memory-mapped. Not the sampled clips: training draws a new
random clip position (and crop) every epoch, so caching the clips of epoch 1 would replay the
same augmentation forever, while caching every frame keeps any sampler, any position and any
crop exactly as honest as decoding -- at ``frame_stride=1`` a cached read equals a fresh decode
bit for bit. Crops, flips and normalisation still run per sample on the cached uint8 frames.
``frame_stride=s`` keeps every s-th frame (s x less disk) and snaps each requested index down to a
kept frame: use it for long videos sampled sparsely (TSN), not for dense clips of fast motion.

Entries live in the artefact store (:class:`vidcat.io.store.Store`, namespace ``clips``) under the
cache folder: one verified file per (content key, short side, frame stride) -- the key is
:func:`~vidcat.io.store.content_key` (size + sha256 of the first and last MiB: robust to renames,
copies and touched mtimes, cheap for multi-GB files); the probed video info is the entry's ``meta``.
Writes are atomic (temp file + rename), so a killed worker leaves no half entry (its temp file is
swept later) and two workers filling the same video both write valid files. A truncated, garbled or
foreign entry, or one from an older vidcat, is rejected with one line and decoded again. The fill
decodes in chunks and streams them to disk, so memory stays flat however long the video; reads map
only the frames they touch (the entry's checksum is verified once per process).

Disk: frames x H x W x 3 bytes, e.g. 10 s at 30 fps, short side 73 (16:9) -> 300 x 73 x 130 x 3 = 8.5 MB.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np

from vidcat.errors import VideoError
from vidcat.io.store import Store, content_key

FORMAT_VERSION = 2  # 2: entries in the artefact store (1: .npy + .json pairs, now ignored)
DecodeFn = Callable[[str, np.ndarray, int], np.ndarray]  # (path, indices, short_side) -> uint8 (T, H, W, 3)


def _decode_with_reader(path: str, indices: np.ndarray, short_side: int) -> np.ndarray:
    from vidcat.io.video import read_frames

    return read_frames(path, indices, short_side=short_side, threads=1)


def _probe(path: str) -> dict:
    from vidcat.io.video import probe

    return probe(path).as_dict()


class ClipCache:
    """Whole videos' decoded frames on disk under ``root`` (see the module docstring)."""

    def __init__(self, root, frame_stride: int = 1, chunk_bytes: int = 16 << 20, log=None):
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, not {frame_stride}")
        self.store = Store("clips", FORMAT_VERSION, root=root, log=log)
        self.root = self.store.root
        self.frame_stride = frame_stride
        # decoded frames held in memory at once while filling: peak RSS grows by ~3-4x this, whatever the
        # video's length; each chunk starts with a seek (<= one GOP decoded again), so not much smaller
        self.chunk_bytes = chunk_bytes
        self.store.sweep()              # temp files of writers killed long ago

    # -- keys -------------------------------------------------------------------------------------
    def key(self, path, short_side: int) -> str:
        return self.store.key({"file": content_key(path), "short_side": int(short_side),
                               "frame_stride": self.frame_stride})

    def __contains__(self, item) -> bool:
        path, short_side = item
        return self.store.path(self.key(path, short_side)).is_file()

    # -- reading ----------------------------------------------------------------------------------
    def entry(self, path, short_side: int, decode_fn: DecodeFn | None = None) -> tuple[np.ndarray, dict]:
        """The cached frames of ``path`` (read-only memory map, (N, H, W, 3)) and its metadata
        (``info``: the probed :class:`~vidcat.io.video.VideoInfo` as a dict); filled on a miss or a bad
        entry."""
        if not Path(path).is_file():
            raise VideoError(path, "file not found")
        key = self.key(path, short_side)
        got = self.store.get(key, mmap=True, with_meta=True)
        if got is None:
            self.fill(path, short_side, decode_fn)
            got = self.store.get(key, mmap=True, with_meta=True)
            if got is None:
                raise VideoError(path, f"clip cache entry {self.store.path(key)} unreadable right after writing it")
        return got

    def info(self, path, short_side: int, decode_fn: DecodeFn | None = None):
        """The probed :class:`~vidcat.io.video.VideoInfo` of ``path`` (from the cache: no file opened)."""
        from vidcat.io.video import VideoInfo

        return VideoInfo(**self.entry(path, short_side, decode_fn)[1]["info"])

    def get_or_decode(self, path, indices, short_side: int, decode_fn: DecodeFn | None = None) -> np.ndarray:
        """Frames ``indices`` of ``path`` at ``short_side`` → uint8 (T, H, W, 3), like
        ``VideoReader.frames``; the whole video is decoded into the cache on the first call."""
        frames, _ = self.entry(path, short_side, decode_fn)
        idx = np.asarray(indices, dtype=np.int64) // self.frame_stride
        return np.ascontiguousarray(frames[np.clip(idx, 0, len(frames) - 1)])

    # -- writing ----------------------------------------------------------------------------------
    def fill(self, path, short_side: int, decode_fn: DecodeFn | None = None) -> Path:
        """Decode every ``frame_stride``-th frame of ``path`` in chunks, streaming them into the store
        entry (temp name, then rename). Raises :class:`VideoError`."""
        decode = decode_fn or _decode_with_reader
        info = _probe(str(path))
        wanted = np.arange(0, info["num_frames"], self.frame_stride, dtype=np.int64)
        first = decode(str(path), wanted[:1], short_side)
        chunk = max(1, self.chunk_bytes // max(first[0].nbytes, 1))

        def chunks():
            yield first
            for start in range(1, len(wanted), chunk):
                part = decode(str(path), wanted[start:start + chunk], short_side)
                if part.shape[1:] != first.shape[1:] or part.dtype != np.uint8:
                    raise VideoError(path, f"frame size changed mid-stream ({first.shape[1:]} -> {part.shape[1:]})")
                yield part

        meta = {"info": info, "path": str(path), "short_side": short_side, "frame_stride": self.frame_stride,
                "frames": int(len(wanted))}
        return self.store.put_stream(self.key(path, short_side), np.uint8, (len(wanted), *first.shape[1:]),
                                     chunks(), meta)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*.vca")) if self.root.exists() else 0


class CachedReader:
    """A :class:`~vidcat.io.video.VideoReader` stand-in over a :class:`ClipCache` entry: ``info`` and
    ``frames(indices, short_side)``; a context manager like the reader."""

    def __init__(self, path, cache: ClipCache, short_side: int, decode_fn: DecodeFn | None = None):
        self.path, self.cache, self.short_side, self.decode_fn = str(path), cache, short_side, decode_fn
        self.info = cache.info(path, short_side, decode_fn)

    def frames(self, indices=None, short_side: int | None = None) -> np.ndarray:
        side = short_side or self.short_side
        if indices is None:
            indices = range(self.info.num_frames)
        return self.cache.get_or_decode(self.path, np.asarray(list(indices)), side, self.decode_fn)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_clips(path, cache: "ClipCache | str | None", short_side: int | None = None, threads: int = 1):
    """``VideoReader(path, threads)`` without a cache; a :class:`CachedReader` with one (``cache`` may
    be a folder). ``short_side``: the decode size the cache stores (the data config's)."""
    from vidcat.io.video import VideoReader

    if not cache:
        return VideoReader(path, threads=threads)
    if short_side is None:
        raise ValueError("open_clips: a cached reader needs the decode short side")
    if not isinstance(cache, ClipCache):
        cache = _CACHES.setdefault(str(cache), ClipCache(cache))  # one per folder: keeps the verified-entry memo
    return CachedReader(path, cache, short_side)


_CACHES: dict[str, ClipCache] = {}


@contextlib.contextmanager
def cached_clips(data_cfg, cache_dir):
    """``VideoClips`` of ``data_cfg`` read through the clip cache in ``cache_dir`` while in this context."""
    old, data_cfg.clip_cache = data_cfg.clip_cache, str(cache_dir)
    try:
        yield
    finally:
        data_cfg.clip_cache = old
