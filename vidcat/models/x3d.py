"""``x3d_xs``, ``x3d_s``, ``x3d_m`` (Feichtenhofer 2020, X3D: Expanding Architectures for Efficient
Video Recognition).

One network (width x2.0, depth x2.2, bottleneck x2.25: stages of 3/5/11/7 blocks, widths 24/48/96/192,
~3.8 M params) used at three input sizes: XS 4x160, S 13x160, M 16x224 (B, C, T, H, W). Stem: 1x3x3 conv
then a depthwise 5x1x1 conv; blocks: 1x1x1 -> depthwise 3x3x3 (+ SE on every other block) -> Swish ->
1x1x1, residual; head: 1x1x1 conv, global pool, 2048-d 1x1x1 conv, dropout, linear.
Module names follow PyTorchVideo so its Kinetics checkpoints (``X3D_M.pyth``) load with ``--weights``.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch.nn as nn

from vidcat.config import PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD
from vidcat.errors import VidcatError
from vidcat.models.registry import register_model


def _round_width(width: float, mult: float, divisor: int = 8) -> int:
    """Scale a width and round it to a multiple of ``divisor`` (never under 8, never 10% below)."""
    w = width * mult
    out = max(8, int(w + divisor / 2) // divisor * divisor)
    return int(out + divisor if out < 0.9 * w else out)


class _SE(nn.Module):
    """Squeeze-and-excitation on a 5D tensor."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.block = nn.Sequential(nn.Conv3d(channels, reduced, 1), nn.ReLU(), nn.Conv3d(reduced, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.block(x.mean((2, 3, 4), keepdim=True))


def _bn(c: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(c)


class _ResBlock(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int, se: bool):
        super().__init__()
        s = (1, stride, stride)
        if dim_in != dim_out or stride > 1:
            self.branch1_conv = nn.Conv3d(dim_in, dim_out, 1, stride=s, bias=False)
        if dim_in != dim_out:  # as in PyTorchVideo: a strided shortcut of equal width has no norm
            self.branch1_norm = _bn(dim_out)
        self.branch2 = nn.Sequential(OrderedDict(
            conv_a=nn.Conv3d(dim_in, dim_inner, 1, bias=False), norm_a=_bn(dim_inner), act_a=nn.ReLU(),
            conv_b=nn.Conv3d(dim_inner, dim_inner, 3, stride=s, padding=1, groups=dim_inner, bias=False),
            norm_b=nn.Sequential(_bn(dim_inner), _SE(dim_inner, _round_width(dim_inner, 0.0625)) if se else nn.Identity()),
            act_b=nn.SiLU(),  # Swish
            conv_c=nn.Conv3d(dim_inner, dim_out, 1, bias=False), norm_c=_bn(dim_out)))
        self.activation = nn.ReLU()

    def forward(self, x):
        short = x
        if hasattr(self, "branch1_conv"):
            short = self.branch1_conv(x)
        if hasattr(self, "branch1_norm"):
            short = self.branch1_norm(short)
        return self.activation(short + self.branch2(x))


class _Head(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, num_classes: int, dropout: float):
        super().__init__()
        self.pool = nn.Sequential(OrderedDict(
            pre_conv=nn.Conv3d(dim_in, dim_inner, 1, bias=False), pre_norm=_bn(dim_inner), pre_act=nn.ReLU(),
            pool=nn.AdaptiveAvgPool3d(1),
            post_conv=nn.Conv3d(dim_inner, dim_out, 1, bias=False), post_act=nn.ReLU()))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(dim_out, num_classes)

    def forward(self, x):
        return self.proj(self.dropout(self.pool(x).flatten(1)))


class X3D(nn.Module):
    classifier_name = "blocks.5.proj"

    def __init__(self, num_classes: int, width_factor: float = 2.0, depth_factor: float = 2.2,
                 bottleneck_factor: float = 2.25, stem_width: int = 12, head_width: int = 2048,
                 dropout: float = 0.5, in_channels: int = 3):
        super().__init__()
        dim = _round_width(stem_width, width_factor)
        stem = nn.Sequential(OrderedDict(
            # PyTorchVideo's names: conv_t is the spatial 1x3x3 conv, conv_xy the depthwise temporal 5x1x1 one
            conv=nn.Sequential(OrderedDict(
                conv_t=nn.Conv3d(in_channels, dim, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
                conv_xy=nn.Conv3d(dim, dim, (5, 1, 1), padding=(2, 0, 0), groups=dim, bias=False))),
            norm=_bn(dim), activation=nn.ReLU()))
        blocks, base = [stem], stem_width
        for depth in (1, 2, 5, 3):
            out = _round_width(base, width_factor)
            inner = int(bottleneck_factor * out)
            res = [_ResBlock(dim if i == 0 else out, inner, out, 2 if i == 0 else 1, se=i % 2 == 0)
                   for i in range(math.ceil(depth * depth_factor))]
            blocks.append(nn.Sequential(OrderedDict(res_blocks=nn.Sequential(*res))))
            dim, base = out, _round_width(base, 2.0)
        blocks.append(_Head(dim, inner, head_width, num_classes, dropout))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def _x3d(num_classes: int, pretrained: bool, name: str) -> nn.Module:
    if pretrained:
        raise VidcatError(f"{name} has no bundled pretrained weights; pass --weights FILE "
                          f"(PyTorchVideo's Kinetics checkpoint {name.upper()}.pyth loads as is)")
    return X3D(num_classes)


_PAPER = "Feichtenhofer 2020, X3D: Expanding Architectures for Efficient Video Recognition"
_NORM = dict(mean=PYTORCHVIDEO_MEAN, std=PYTORCHVIDEO_STD, paper=_PAPER)


@register_model("x3d_xs", family="3d", frames=4, size=160, description="X3D-XS, 4x160 clips", **_NORM)
def x3d_xs(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _x3d(num_classes, pretrained, "x3d_xs")


@register_model("x3d_s", family="3d", frames=13, size=160, description="X3D-S, 13x160 clips", **_NORM)
def x3d_s(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _x3d(num_classes, pretrained, "x3d_s")


@register_model("x3d_m", family="3d", frames=16, size=224, description="X3D-M, 16x224 clips", **_NORM)
def x3d_m(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _x3d(num_classes, pretrained, "x3d_m")
