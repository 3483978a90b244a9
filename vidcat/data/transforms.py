"""Clip transforms on uint8 frames (T, H, W, C) → float tensors (C, T, H, W) the models take.

Spatial augmentation only: random crop with scale jitter while training, centre or three crops
at test. Horizontal flip is off by default because it changes the meaning of direction classes
("moving left" becomes "moving right"); turn it on only for direction-free labels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, C) numpy → uint8 (C, T, H, W) tensor (no copy of pixel values to float yet)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


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


def crop_resize(x: torch.Tensor, box: tuple[int, int, int], size: int) -> torch.Tensor:
    """Cut ``box`` = (top, left, side) out of every frame and resize it to ``size``."""
    top, left, side = box
    return _resize(x[..., top:top + side, left:left + side], size)


def random_crop(x: torch.Tensor, size: int, rng: np.random.Generator,
                scale: tuple[float, float] = (0.7, 1.0)) -> torch.Tensor:
    """A random square of side ``scale`` × short side, resized to ``size`` (same for all frames)."""
    return crop_resize(x, random_box(*x.shape[-2:], rng, scale), size)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    return crop_resize(x, center_box(*x.shape[-2:]), size)


def three_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Start, centre and end squares along the long side (the usual 3-crop test protocol)."""
    h, w = x.shape[-2:]
    side = min(h, w)
    if w >= h:
        offs = [(0, 0), (0, (w - side) // 2), (0, w - side)]
    else:
        offs = [(0, 0), ((h - side) // 2, 0), (h - side, 0)]
    return [_resize(x[..., t:t + side, l:l + side], size) for t, l in offs]


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8/float 0..255 (C, T, H, W) → float, (x/255 - mean) / std per channel."""
    mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
    return (x.float() / 255.0 - mean) / std


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)
