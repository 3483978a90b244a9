"""Clip transforms with torchvision's ``transforms.v2``: uint8 frames (T, H, W, C) → float (C, T, size, size).

Spatial augmentation only: random crop with scale jitter while training, centre or three crops at test
(the geometry, torch-free, is :mod:`vidcat.data.views`). Every spatial stream of a view (RGB, flow, motion
vectors) cuts the same box and shares its flip. Horizontal flip is off by default because it changes the
meaning of direction classes ("moving left" becomes "moving right"); turn it on only for direction-free labels.

:class:`FrameViews` is the test-time path as a module: ``vidcat export`` puts it inside the ONNX graph, so
the torch-free predictor feeds decoded uint8 frames and the graph crops, resizes and normalises them with
these same functions.
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from vidcat.data.views import crop_box, random_box, test_boxes  # noqa: F401  (the shared geometry)

hflip = TF.horizontal_flip  # the last axis, whatever the layout


def to_video(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, C) numpy → uint8 (T, C, H, W) tensor, torchvision's video layout (a view, no copy)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) → float (..., size, size): uint8 scaled to 0..1 first, then torchvision's antialiased
    bilinear resize (a float input keeps its values' scale)."""
    return TF.resize(TF.to_dtype(x, torch.float32, scale=True), [size, size], antialias=True)


def crop_resize(x: torch.Tensor, box: tuple[int, int, int], size: int) -> torch.Tensor:
    """Cut ``box`` = (top, left, side) out of every frame (the last two axes) and resize it to ``size``."""
    top, left, side = box
    return resize_to(TF.crop(x, top, left, side, side), size)


def model_input(x: torch.Tensor, mean, std) -> torch.Tensor:
    """float 0..1 (..., T, C, H, W) → normalised per channel, in the models' (..., C, T, H, W) layout."""
    return TF.normalize(x, list(mean), list(std)).transpose(-4, -3)


class FrameViews(torch.nn.Module):
    """Test views of decoded frames in a module an ONNX graph can hold: uint8 frames (B, T, H, W, C) at any
    decoded size and each row's crop position (int64 (B,): 0 start, 1 centre, 2 end, as
    :func:`vidcat.data.views.crop_box`) → the normalised views (B, C, T, size, size) the dataset gives."""

    def __init__(self, size: int, mean, std):
        super().__init__()
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)

    def forward(self, frames: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        from torch.onnx.operators import shape_as_tensor

        hw = shape_as_tensor(frames)[2:4]  # a tensor, so a traced graph takes any height and width
        side = hw.min()
        top_left = (hw - side) * crop[:, None] // 2  # crop_box, one row per view
        span = torch.arange(side)
        b, t, _, w, c = frames.shape
        x = frames.gather(2, (top_left[:, :1] + span)[:, None, :, None, None].expand(b, t, -1, w, c))
        x = x.gather(3, (top_left[:, 1:] + span)[:, None, None, :, None].expand(b, t, x.shape[2], -1, c))
        return model_input(resize_to(x.permute(0, 1, 4, 2, 3), self.size), self.mean, self.std)
