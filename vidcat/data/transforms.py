"""Clip transforms on uint8 frames (T, H, W, C) → float tensors (C, T, H, W) the models take.

Spatial augmentation only: random crop with scale jitter while training, centre or three crops
at test. Horizontal flip is off by default because it changes the meaning of direction classes
("moving left" becomes "moving right"); turn it on only for direction-free labels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidcat.data.views import center_box, random_box, three_boxes  # noqa: F401  (shared geometry)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, C) numpy → uint8 (C, T, H, W) tensor (no copy of pixel values to float yet)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def crop_resize(x: torch.Tensor, box: tuple[int, int, int], size: int) -> torch.Tensor:
    """Cut ``box`` = (top, left, side) out of every frame and resize it to ``size``."""
    top, left, side = box
    return _resize(x[..., top:top + side, left:left + side], size)


def test_boxes(h: int, w: int, crops: int) -> list[tuple[int, int, int]]:
    """Test-view squares: the centre one (``crops=1``), or start, centre and end along the long side
    (``crops=3``, the usual 3-crop protocol). Every spatial stream of a view uses the same box."""
    return [center_box(h, w)] if crops == 1 else three_boxes(h, w)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8/float 0..255 (C, T, H, W) → float, (x/255 - mean) / std per channel."""
    mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
    return (x.float() / 255.0 - mean) / std


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)
