"""Which frames to decode: TSN segments, dense clips with a stride, and multi-view test clips.

All samplers map a video's frame count to integer frame indices; they never decode. Training
draws random positions, testing uses deterministic centred ones, so evaluation is repeatable.
"""
from __future__ import annotations

import numpy as np

from vidcat.config import SamplerConfig

__all__ = ["SamplerConfig", "clip_indices", "sample_indices", "tsn_indices", "view_positions"]


def tsn_indices(total: int, segments: int, train: bool, rng: np.random.Generator | None = None,
                offset: float = 0.5) -> np.ndarray:
    """One frame per segment: random inside each segment when training, at ``offset`` otherwise."""
    total = max(int(total), 1)
    edges = np.linspace(0, total, segments + 1)
    lo, width = edges[:-1], np.diff(edges)
    frac = rng.random(segments) if train else np.full(segments, offset)
    return np.minimum((lo + frac * width).astype(np.int64), total - 1)


def clip_indices(total: int, frames: int, stride: int, train: bool,
                 rng: np.random.Generator | None = None, start_frac: float = 0.5) -> np.ndarray:
    """``frames`` frames ``stride`` apart; a random start in training, ``start_frac`` of the free
    span otherwise (0.5 = centred). Short videos repeat their last frame."""
    total = max(int(total), 1)
    span = (frames - 1) * stride + 1
    free = max(total - span, 0)
    start = int(rng.integers(0, free + 1)) if train else int(round(free * start_frac))
    return np.minimum(start + np.arange(frames) * stride, total - 1)


def sample_indices(total: int, cfg: SamplerConfig, train: bool, rng=None, view: float = 0.5) -> np.ndarray:
    """Indices for one clip; ``view`` in [0, 1] picks the position of a test view."""
    if cfg.mode == "tsn":
        return tsn_indices(total, cfg.frames, train, rng, offset=view)
    if cfg.mode == "clip":
        return clip_indices(total, cfg.frames, cfg.stride, train, rng, start_frac=view)
    raise ValueError(f"unknown sampler mode {cfg.mode!r} (clip | tsn)")


def view_positions(num_clips: int) -> list[float]:
    """Evenly spread positions in [0, 1] for ``num_clips`` test views (one → centre)."""
    if num_clips <= 1:
        return [0.5]
    return [(i + 0.5) / num_clips for i in range(num_clips)]
