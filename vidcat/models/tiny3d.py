"""``tiny3d``: the fast default, a 4-block 3D CNN (~0.3 M params) that trains on a CPU.

Input (B, C, T, H, W), designed for 16 x 64 x 64. Conv3d-BN-ReLU blocks 16->32->64->128 with 3x3x3
kernels; the stem is strided and pooling is spatial first and temporal only in the later blocks, so
motion over the whole clip reaches the deep layers; then global average pool, dropout, linear.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.models.registry import register_model


def _block(cin: int, cout: int, pool, stride=1) -> nn.Sequential:
    layers = [nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool3d(pool, pool))
    return nn.Sequential(*layers)


class FrameDiff(nn.Module):
    """(B, C, T, H, W) -> (B, 2C, T, H, W): the frames and their signed temporal differences x(t) - x(t-1)
    (the first repeated), so motion is in the input instead of having to be discovered from few clips."""

    def forward(self, x):
        d = x[:, :, 1:] - x[:, :, :-1]
        return torch.cat([x, torch.cat([d[:, :, :1], d], 2)], 1)


class Tiny3D(nn.Module):
    classifier_name = "fc"

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.2, widths=(16, 32, 64, 128),
                 frame_diff: bool = False):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.features = nn.Sequential(
            *([FrameDiff()] if frame_diff else []),
            _block(in_channels * (2 if frame_diff else 1), w1, (1, 2, 2), stride=(1, 2, 2)),  # 16x64x64 -> 16x16x16
            _block(w1, w2, (1, 2, 2)),                             # -> 16x8x8
            _block(w2, w3, (2, 2, 2)),                             # -> 8x4x4
            _block(w3, w4, None),
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w4, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.dropout(self.pool(self.features(x)).flatten(1)))


@register_model("tiny3d", family="3d", frames=16, size=64, temporal=True,
                description="small 4-block 3D CNN, fast on CPU (the default)")
def tiny3d(num_classes: int, pretrained: bool = False, in_channels: int = 3,
           dropout: float = 0.2, frame_diff: bool = False) -> nn.Module:
    """``frame_diff``: also feed x(t) - x(t-1), which speeds up learning motion from few clips."""
    if pretrained:
        from vidcat.errors import VidcatError
        raise VidcatError("tiny3d has no pretrained weights; train it or pass --weights FILE")
    return Tiny3D(num_classes, in_channels=in_channels, dropout=dropout, frame_diff=frame_diff)
