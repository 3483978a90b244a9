"""Decoded frames cached on disk for training: epochs after the first do no video decoding.

    cache = ClipCache("cache/clips")
    frames = cache.get_or_decode("a.mp4", indices, short_side=73)   # uint8 (T, H, W, 3), like VideoReader.frames
    with open_clips("a.mp4", cache) as reader:                        # a VideoReader stand-in: .info, .frames()
        frames = reader.frames(indices, short_side=73)

What is cached: the *whole* video, every ``frame_stride``-th frame, at the decode size (short side),
as one uint8 ``.npy`` array read back memory-mapped. Not the sampled clips: training draws a new
random clip position (and crop) every epoch, so caching the clips of epoch 1 would replay the
same augmentation forever, while caching every frame keeps any sampler, any position and any
crop exactly as honest as decoding -- at ``frame_stride=1`` a cached read equals a fresh decode
bit for bit. Crops, flips and normalisation still run per sample on the cached uint8 frames.
``frame_stride=s`` keeps every s-th frame (s x less disk) and snaps each requested index down to a
kept frame: use it for long videos sampled sparsely (TSN), not for dense clips of fast motion.

Key: a content fingerprint (BLAKE2b of the file size and its first and last MiB -- robust to
renames, copies and touched mtimes, and cheap for multi-GB files) + short side + frame stride.
Entries are written atomically (temp file + ``os.replace``; the info file last, so an entry counts
only once complete): a killed worker leaves no half entry, and two workers filling the same video
both write valid files. The fill decodes in chunks and streams them to disk, so memory stays flat
however long the video; reads map only the frames they touch.

Disk: frames x H x W x 3 bytes, e.g. 10 s at 30 fps, short side 73 (16:9) -> 300 x 73 x 130 x 3 = 8.5 MB.
"""
from __future__ import annotations

import contextlib

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from vidcat.errors import VideoError

FORMAT_VERSION = 1
_HASH_SPAN = 1 << 20  # bytes hashed at each end of the file
DecodeFn = Callable[[str, np.ndarray, int], np.ndarray]  # (path, indices, short_side) -> uint8 (T, H, W, 3)


def fingerprint(path) -> str:
    """A content key of ``path``: BLAKE2b over its size and its first and last MiB."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(p, "rb") as f:
        h.update(f.read(_HASH_SPAN))
        if size > _HASH_SPAN:
            f.seek(max(size - _HASH_SPAN, _HASH_SPAN))
            h.update(f.read(_HASH_SPAN))
    return h.hexdigest()


def _decode_with_reader(path: str, indices: np.ndarray, short_side: int) -> np.ndarray:
    from vidcat.io.video import read_frames

    return read_frames(path, indices, short_side=short_side, threads=1)


def _probe(path: str) -> dict:
    from vidcat.io.video import probe

    return probe(path).as_dict()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ClipCache:
    """Whole videos' decoded frames on disk under ``root`` (see the module docstring)."""

    def __init__(self, root, frame_stride: int = 1, chunk_bytes: int = 16 << 20):
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, not {frame_stride}")
        self.root = Path(root)
        self.frame_stride = frame_stride
        # decoded frames held in memory at once while filling: peak RSS grows by ~3-4x this, whatever the
        # video's length; each chunk starts with a seek (<= one GOP decoded again), so not much smaller
        self.chunk_bytes = chunk_bytes
        self._keys: dict = {}           # (path, size, mtime_ns) -> fingerprint, per process

    # -- keys and files -------------------------------------------------------------------------
    def key(self, path, short_side: int) -> str:
        st = os.stat(path)
        memo = (str(path), st.st_size, st.st_mtime_ns)
        if memo not in self._keys:
            self._keys[memo] = fingerprint(path)
        return f"{self._keys[memo]}-s{short_side}-k{self.frame_stride}-v{FORMAT_VERSION}"

    def _files(self, key: str) -> tuple[Path, Path]:
        d = self.root / key[:2]
        return d / f"{key}.npy", d / f"{key}.json"

    def __contains__(self, item) -> bool:
        path, short_side = item
        frames, meta = self._files(self.key(path, short_side))
        return meta.is_file() and frames.is_file()

    # -- reading ----------------------------------------------------------------------------------
    def entry(self, path, short_side: int, decode_fn: DecodeFn | None = None) -> tuple[np.ndarray, dict]:
        """The cached frames of ``path`` (read-only memory map, (N, H, W, 3)) and its metadata
        (``info``: the probed :class:`~vidcat.io.video.VideoInfo` as a dict); filled on a miss."""
        if not Path(path).is_file():
            raise VideoError(path, "file not found")
        frames_file, meta_file = self._files(self.key(path, short_side))
        if not (meta_file.is_file() and frames_file.is_file()):
            self.fill(path, short_side, decode_fn)
        meta = json.loads(meta_file.read_text())
        return np.load(frames_file, mmap_mode="r"), meta

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
        """Decode every ``frame_stride``-th frame of ``path`` in chunks, streaming them into the entry's
        ``.npy`` (temp name, then rename); write its ``.json`` last. Raises :class:`VideoError`."""
        decode = decode_fn or _decode_with_reader
        info = _probe(str(path))
        key = self.key(path, short_side)
        frames_file, meta_file = self._files(key)
        frames_file.parent.mkdir(parents=True, exist_ok=True)
        wanted = np.arange(0, info["num_frames"], self.frame_stride, dtype=np.int64)
        tmp = frames_file.with_name(f".{frames_file.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                first = decode(str(path), wanted[:1], short_side)
                per_frame = max(first[0].nbytes, 1)
                chunk = max(1, self.chunk_bytes // per_frame)
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                          "shape": (len(wanted), *first.shape[1:])}
                np.lib.format.write_array_header_2_0(f, header)
                f.write(np.ascontiguousarray(first))
                for start in range(1, len(wanted), chunk):
                    part = decode(str(path), wanted[start:start + chunk], short_side)
                    if part.shape[1:] != first.shape[1:] or part.dtype != np.uint8:
                        raise VideoError(path, f"frame size changed mid-stream ({first.shape[1:]} -> {part.shape[1:]})")
                    f.write(np.ascontiguousarray(part))  # the buffer itself: no bytes copy
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, frames_file)
        finally:
            tmp.unlink(missing_ok=True)
        _write_json(meta_file, {"info": info, "path": str(path), "short_side": short_side,
                                "frame_stride": self.frame_stride, "frames": int(len(wanted))})
        return frames_file

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*.npy")) if self.root.exists() else 0


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
        cache = _CACHES.setdefault(str(cache), ClipCache(cache))  # one per folder: keeps the fingerprint memo
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
