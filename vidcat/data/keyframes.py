"""Keyframe-snapping TSN sampling for long-GOP files (opt-in).

A sparse read of a frame deep inside a 10 s GOP decodes everything from the keyframe before it.
Snapping each TSN segment's frame to a keyframe inside that segment (when there is one) makes each
read one seek + one decoded frame, at the cost of less random frame positions during training.
"""
from __future__ import annotations

import numpy as np

from vidcat.data.sampling import tsn_indices
from vidcat.io.limits import Deadline, DecodeLimits
from vidcat.io import limits as _limits


def keyframe_indices(path, limits: DecodeLimits | None = None) -> np.ndarray:
    """Sorted frame indices (``round((t - start) * fps)``, as VideoReader.frames) of the keyframes
    of ``path``'s first video stream, found by demuxing only (no decoding)."""
    from vidcat.io.video import VideoReader, open_container

    limits = limits or _limits.DEFAULT_LIMITS
    with VideoReader(path, limits=limits) as r:
        info = r.info
    deadline = Deadline(str(path), limits.timeout_s)
    times = []
    with open_container(path, limits) as c:
        s = c.streams.video[0]
        for packet in c.demux(s):
            deadline.check()
            if packet.is_keyframe and packet.pts is not None:
                times.append(float(packet.pts * s.time_base))
    idx = np.round((np.asarray(times) - info.start_time) * info.fps).astype(np.int64)
    return np.unique(idx[(idx >= 0) & (idx < info.num_frames)])


def snap_to_keyframes(indices: np.ndarray, keyframes: np.ndarray, total: int) -> np.ndarray:
    """Move each of the TSN ``indices`` (one per equal segment of ``total`` frames) to the keyframe
    nearest it inside the same segment; segments without a keyframe keep their index."""
    indices = np.asarray(indices, dtype=np.int64)
    keyframes = np.asarray(keyframes, dtype=np.int64)
    edges = np.linspace(0, max(int(total), 1), len(indices) + 1)
    out = indices.copy()
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        inside = keyframes[(keyframes >= lo) & (keyframes < hi)]
        if inside.size:
            out[i] = inside[np.argmin(np.abs(inside - indices[i]))]
    return out


def tsn_keyframe_indices(total: int, segments: int, keyframes: np.ndarray, train: bool,
                         rng: np.random.Generator | None = None, offset: float = 0.5) -> np.ndarray:
    """TSN indices (:func:`vidcat.data.sampling.tsn_indices`) snapped to keyframes."""
    return snap_to_keyframes(tsn_indices(total, segments, train, rng, offset), keyframes, total)
