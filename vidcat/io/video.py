"""Probe and decode video files with PyAV, decoding as few frames as possible.

Frame *index* ``i`` means "the frame shown at time ``start + i / fps``" with ``fps`` the stream's
average rate. Decoding by time rather than by packet count keeps indices meaningful for
variable-frame-rate files, and lets us seek: to fetch a clip we seek to the keyframe before its
first frame, decode forward, and stop after its last frame.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from vidcat.errors import VideoError

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
                    ".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".gif"}
# Seek only when the next wanted frame is further ahead than this (seconds): decoding forward over
# a short gap is cheaper than a seek that lands on an earlier keyframe anyway.
SEEK_THRESHOLD_S = 1.0


@dataclass
class VideoInfo:
    """What a file holds, as read from its container and first video frame."""

    path: str
    duration: float          # seconds
    fps: float               # average frame rate (frames shown / duration)
    real_fps: float          # the stream's base ("real") rate; differs from fps for VFR files
    num_frames: int          # frames at `fps` over `duration` (header count when present)
    width: int               # display size, after rotation
    height: int
    rotation: int            # degrees the decoded picture is turned to display it upright
    codec: str
    start_time: float = 0.0
    has_audio: bool = False
    has_subtitles: bool = False
    streams: list = field(default_factory=list)

    @property
    def variable_frame_rate(self) -> bool:
        return abs(self.fps - self.real_fps) > 0.01 * max(self.fps, 1e-6)

    def as_dict(self) -> dict:
        return asdict(self)


def _as_float(x, default=0.0) -> float:
    return float(x) if x else default


def open_container(path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise VideoError(path, "file not found")
    if p.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise VideoError(path, "permission denied")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise VideoError(path, f"not a readable media file ({e.strerror or type(e).__name__})") from None


def _rotate(img: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded picture upright: FFmpeg's display rotation is counter-clockwise degrees."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k=k)) if k else img


class VideoReader:
    """An open video file: ``info`` plus ``frames(indices)``; use as a context manager.

    ``short_side`` resizes while converting to RGB (one libswscale pass, no full-size copy).
    ``threads`` = 0 lets FFmpeg choose; data-loader workers pass 1 to avoid oversubscription.
    """

    def __init__(self, path, threads: int = 0):
        self.path = str(path)
        self.container = open_container(path)
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(path, "no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream.thread_count = threads
        self.info = self._probe()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.container.close()

    # -- probing ---------------------------------------------------------------------------
    def _probe(self) -> VideoInfo:
        s, c = self.stream, self.container
        tb = s.time_base
        start = float(s.start_time * tb) if s.start_time is not None else 0.0
        if s.duration:
            duration = float(s.duration * tb)
        elif c.duration:
            duration = c.duration / av.time_base - start
        else:
            duration = 0.0
        real_fps = _as_float(s.base_rate or s.guessed_rate, 0.0)
        fps = _as_float(s.average_rate, real_fps) or 25.0
        real_fps = real_fps or fps
        num = s.frames or int(round(duration * fps))
        first = self._first_frame()
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        if duration <= 0:
            duration = num / fps if num else 1.0 / fps
        return VideoInfo(
            path=self.path, duration=duration, fps=fps, real_fps=real_fps, num_frames=max(num, 1),
            width=w, height=h, rotation=rotation, codec=s.codec_context.name, start_time=start,
            has_audio=bool(c.streams.audio), has_subtitles=bool(c.streams.subtitles),
            streams=[f"{st.type}:{st.codec_context.name if st.codec_context else '?'}" for st in c.streams],
        )

    def _first_frame(self):
        try:
            for frame in self.container.decode(self.stream):
                return frame
        except av.error.FFmpegError as e:
            raise VideoError(self.path, f"cannot decode video ({e.strerror or type(e).__name__})") from None
        raise VideoError(self.path, "no decodable video frames (truncated or corrupt)")

    # -- decoding --------------------------------------------------------------------------
    def _seek(self, t: float) -> None:
        ts = int(max(t, 0.0) / self.stream.time_base)
        self.container.seek(ts, stream=self.stream, backward=True, any_frame=False)

    def _to_rgb(self, frame, short_side):
        w, h = frame.width, frame.height
        if short_side:
            scale = short_side / min(w, h)
            w, h = max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
        img = frame.to_ndarray(format="rgb24", width=w, height=h)
        return _rotate(img, int(frame.rotation or 0))

    def frames(self, indices=None, short_side: int | None = None) -> np.ndarray:
        """Decode frames at ``indices`` (any order, repeats allowed) → uint8 (T, H, W, 3).

        Indices past the real end of a file (headers often overstate the count, truncated files
        end early) return the last decodable frame, so a clip always has the length asked for.
        """
        info = self.info
        if indices is None:
            indices = range(info.num_frames)
        indices = np.asarray(list(indices), dtype=np.int64)
        return self.frames_at(info.start_time + indices / info.fps, short_side=short_side, _relative=False)

    def frames_at(self, times, short_side: int | None = None, _relative: bool = True) -> np.ndarray:
        """Decode the frames on screen at ``times`` (seconds from the start) → uint8 (T, H, W, 3).

        The frame on screen at ``t`` is the last one whose timestamp is ≤ ``t`` (+ a tiny
        tolerance for rounding), which is exact for variable-frame-rate files too.
        """
        times = np.asarray(times, dtype=np.float64)
        if times.size == 0:
            raise ValueError("no frame times requested")
        if _relative:
            times = times + self.info.start_time
        targets = np.unique(times)
        eps = 0.01 / self.info.fps
        got: dict[float, np.ndarray] = {}
        cache: list = [None, None]  # (frame, its RGB array): convert each decoded frame at most once

        def rgb(frame) -> np.ndarray:
            if cache[0] is not frame:
                cache[0], cache[1] = frame, self._to_rgb(frame, short_side)
            return cache[1]

        k, n = 0, len(targets)
        prev = None  # the last decoded frame at or before the current target
        pos = None   # its time
        try:
            while k < n:
                if pos is None or targets[k] < pos - eps or targets[k] - pos > SEEK_THRESHOLD_S:
                    self._seek(targets[k] if targets[k] - self.info.start_time > SEEK_THRESHOLD_S else 0.0)
                    prev = None
                for frame in self.container.decode(self.stream):
                    pos = frame.time if frame.time is not None else (pos or 0.0) + 1 / self.info.fps
                    assigned = False
                    while k < n and pos > targets[k] + eps:
                        # this frame starts after target k, so the one on screen then is `prev`
                        got[float(targets[k])] = rgb(prev if prev is not None else frame)
                        k += 1
                        assigned = True
                    prev = frame
                    # stop to seek only when a target was just served and the next one is far
                    # ahead (after a seek we always decode forward to the target)
                    if k >= n or (assigned and targets[k] - pos > SEEK_THRESHOLD_S):
                        break
                else:
                    break  # end of stream: the rest get the last frame
        except av.error.FFmpegError as e:
            if prev is None:
                raise VideoError(self.path, f"decoding failed ({e.strerror or type(e).__name__})") from None
        if k < n:
            if prev is None:
                raise VideoError(self.path, "no decodable video frames (truncated or corrupt)")
            for t in targets[k:]:
                got[float(t)] = rgb(prev)
        return np.stack([got[float(t)] for t in times])


def probe(path) -> VideoInfo:
    """Read duration, frame rates, frame count, display size, rotation and streams of ``path``."""
    with VideoReader(path) as r:
        return r.info


def read_frames(path, indices=None, short_side: int | None = None, threads: int = 0) -> np.ndarray:
    """Decode ``indices`` of ``path`` as uint8 (T, H, W, 3) RGB; all frames when ``indices`` is None."""
    with VideoReader(path, threads=threads) as r:
        return r.frames(indices, short_side=short_side)


def read_frames_at(path, times, short_side: int | None = None, threads: int = 0) -> np.ndarray:
    """Decode the frames shown at ``times`` (seconds from the start of the video)."""
    with VideoReader(path, threads=threads) as r:
        return r.frames_at(times, short_side=short_side)


def is_video_file(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_videos(root) -> list[Path]:
    """Video files under ``root`` (recursively, sorted), or ``[root]`` for a file."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and is_video_file(p))

