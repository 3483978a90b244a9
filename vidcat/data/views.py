"""Test views without torch: the crop squares every spatial stream shares, and a video's test clips decoded
as the exported ONNX graph takes them (uint8 frames at the decode size plus a crop position per view; the
graph crops, resizes and normalises them with :class:`vidcat.data.transforms.FrameViews`).
"""
from __future__ import annotations

import numpy as np

from vidcat.config import check_crops
from vidcat.data.sampling import sample_indices, view_positions

CENTRE = 1  # crop position of the centre square (0 start, 2 end of the long side)


def random_box(h: int, w: int, rng: np.random.Generator,
               scale: tuple[float, float] = (0.7, 1.0)) -> tuple[int, int, int]:
    """``(top, left, side)`` of a random square of side ``scale`` x the short side."""
    side = int(round(min(h, w) * rng.uniform(*scale)))
    side = max(min(side, h, w), 1)
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return top, left, side


def crop_box(h: int, w: int, position: int = CENTRE) -> tuple[int, int, int]:
    """``(top, left, side)`` of the short-side square at ``position`` along the long side: 0 start,
    1 centre, 2 end (the usual 3-crop test protocol)."""
    side = min(h, w)
    return (h - side) * position // 2, (w - side) * position // 2, side


def crop_positions(crops: int) -> tuple[int, ...]:
    """The crop positions of ``crops`` test crops: the centre one, or start, centre and end."""
    check_crops(crops)
    return (CENTRE,) if crops == 1 else (0, 1, 2)


def test_boxes(h: int, w: int, crops: int) -> list[tuple[int, int, int]]:
    """Test-view squares (``crops`` 1 or 3); every spatial stream of a view uses the same box."""
    return [crop_box(h, w, k) for k in crop_positions(crops)]


def graph_views(path, cfg, clips: int = 1, crops: int = 1, threads: int = 1) -> dict:
    """The exported graph's inputs for all ``clips`` x ``crops`` test views of one video: ``frames`` uint8
    (V, T, H, W, 3) at the decode size and ``crop`` int64 (V,) positions, in the dataset's view order.

    Same frames as :class:`vidcat.data.dataset.VideoClips` at test time. Raises VideoError.
    """
    from vidcat.io.video import VideoReader

    cfg = cfg.filled()
    positions = crop_positions(crops)
    frames = []
    with VideoReader(path, threads=threads) as reader:
        for pos in view_positions(clips):
            idx = sample_indices(reader.info.num_frames, cfg.sampler_config, False, None, view=pos)
            frames += [reader.frames(idx, short_side=cfg.decode_short_side)] * len(positions)
    return {"frames": np.stack(frames), "crop": np.array(positions * clips, np.int64)}
