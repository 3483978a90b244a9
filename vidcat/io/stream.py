"""Decode a whole video once, front to back, one frame at a time (memory independent of its length).

    with FrameStream("long.mp4", short_side=73) as s:
        for index, time, rgb in s:      # uint8 (H, W, 3), resized while converting to RGB
            ...

Indices count decoded frames from 0 (constant-frame-rate files: index i is shown at
``start + i / fps``, as in :class:`vidcat.io.video.VideoReader`). Probing, rotation and the
decode-time resize are :class:`VideoReader`'s own; a stream that breaks off (truncated file) ends
the iteration after the last good frame instead of raising.
"""
from __future__ import annotations

from typing import Iterator

import av
import numpy as np

from vidcat.errors import VideoError
from vidcat.io.video import VideoReader


class FrameStream:
    """Sequential RGB frames of ``path`` with ``info`` (a :class:`VideoInfo`); a context manager."""

    def __init__(self, path, short_side: int | None = None, threads: int = 0):
        self.reader = VideoReader(path, threads=threads)
        self.info, self.short_side = self.reader.info, short_side

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.reader.close()

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        r = self.reader
        r.container.seek(0, stream=r.stream, backward=True, any_frame=False)  # probing read the first frame
        index = 0
        try:
            for frame in r.container.decode(r.stream):
                t = frame.time if frame.time is not None else index / self.info.fps
                yield index, float(t), r._to_rgb(frame, self.short_side)
                index += 1
        except av.error.FFmpegError as e:
            if index == 0:
                raise VideoError(r.path, f"decoding failed ({e.strerror or type(e).__name__})") from None
