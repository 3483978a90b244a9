"""Test views in numpy: crop boxes, antialiased resize, normalisation and decode, with no torch.

The torch transforms (:mod:`vidcat.data.transforms`) take their crop geometry from here, and
:func:`resize_matrix` reproduces ``F.interpolate(mode="bilinear", antialias=True,
align_corners=False)`` (PIL's triangle filter, support scaled by the down-sampling factor), so
:func:`clip_views` gives ONNX Runtime the same input as the dataset pipeline gives torch
(to float rounding) while importing only PyAV and numpy.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from vidcat.config import check_crops
from vidcat.data.sampling import sample_indices, view_positions


def random_box(h: int, w: int, rng: np.random.Generator,
               scale: tuple[float, float] = (0.7, 1.0)) -> tuple[int, int, int]:
    """``(top, left, side)`` of a random square of side ``scale`` x the short side."""
    side = int(round(min(h, w) * rng.uniform(*scale)))
    side = max(min(side, h, w), 1)
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return top, left, side


def center_box(h: int, w: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of the centred square of side the short side."""
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side


def three_boxes(h: int, w: int) -> list[tuple[int, int, int]]:
    """Start, centre and end squares along the long side (the usual 3-crop test protocol)."""
    side = min(h, w)
    if w >= h:
        return [(0, 0, side), (0, (w - side) // 2, side), (0, w - side, side)]
    return [(0, 0, side), ((h - side) // 2, 0, side), (h - side, 0, side)]


@lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of torch's antialiased bilinear resize along one axis."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    m = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        centre = scale * (i + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        j = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((j - centre + 0.5) * inv), 0.0, None)
        m[i, lo:hi] = w / w.sum() if w.sum() > 0 else 0.0
    return m.astype(np.float32)


def crop_resize(frames: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """uint8 (T, H, W, C) → float32 (C, T, size, size), 0..255: ``box`` cut out and resized."""
    top, left, side = box
    x = np.ascontiguousarray(frames[:, top:top + side, left:left + side].transpose(3, 0, 1, 2), np.float32)
    if side == size:
        return x
    return resize_matrix(side, size) @ x @ resize_matrix(side, size).T


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """float 0..255 (C, T, H, W) → (x/255 - mean) / std per channel, float32."""
    mean = np.asarray(mean, np.float32).reshape(-1, 1, 1, 1)
    std = np.asarray(std, np.float32).reshape(-1, 1, 1, 1)
    return ((x / np.float32(255.0) - mean) / std).astype(np.float32, copy=False)


def frame_views(frames: np.ndarray, cfg, crops: int = 1) -> list[np.ndarray]:
    """The test crops (1 centre or 3) of decoded frames, normalised: [(C, T, size, size)]."""
    cfg = cfg.filled()
    h, w = frames.shape[1:3]
    boxes = three_boxes(h, w) if crops == 3 else [center_box(h, w)]
    return [normalize(crop_resize(frames, b, cfg.size), cfg.mean, cfg.std) for b in boxes]


def clip_views(path, cfg, clips: int = 1, crops: int = 1, threads: int = 1) -> np.ndarray:
    """All ``clips`` × ``crops`` test views of one video → float32 (V, C, T, size, size).

    Same frames and order as :class:`vidcat.data.dataset.VideoClips` at test time. Raises VideoError.
    """
    cfg = cfg.filled()
    from vidcat.io.video import VideoReader

    check_crops(crops)
    views = []
    with VideoReader(path, threads=threads) as reader:
        for pos in view_positions(clips):
            idx = sample_indices(reader.info.num_frames, cfg.sampler_config, False, None, view=pos)
            views += frame_views(reader.frames(idx, short_side=cfg.decode_short_side), cfg, crops)
    return np.stack(views)
