"""I3D inflation (Carreira & Zisserman 2017): turn a trained 2D CNN into a 3D one that starts where the 2D
net left off -- each k x k kernel repeated over ``kt`` frames and divided by ``kt``, BatchNorm copied -- so
a static clip (one frame repeated) gives exactly the 2D network's output.

:func:`inflate_2d` works on any 2D CNN whose forward does not care about the number of spatial dims
(torchvision ResNets via :func:`vidcat.models.video_resnet.inflate_resnet`, :mod:`efficientnet_lite`);
``i3d_efficientnet_lite0/1/2`` are registered here, ImageNet-initialised from the offline weights.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.config import HALF_MEAN, HALF_STD
from vidcat.errors import VidcatError
from vidcat.models.registry import register_model


class InflatedConv3d(nn.Conv3d):
    """Conv3d whose temporal padding repeats the edge frames (spatial padding stays zero), so a
    temporally constant clip stays constant through the network at every frame, not just inside.
    ``tf_same`` pads the spatial dims like TensorFlow's "SAME" (as :class:`SameConv2d` does)."""

    def __init__(self, *args, time_pad: int = 0, tf_same: bool = False, **kw):
        super().__init__(*args, **kw)
        self.time_pad, self.tf_same = time_pad, tf_same

    def forward(self, x):
        if self.tf_same:
            from vidcat.models.efficientnet_lite import same_padding

            x = F.pad(x, same_padding(x.shape[-2:], self.kernel_size[1:], self.stride[1:], self.dilation[1:]))
        if self.time_pad:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, self.time_pad), mode="replicate")
        return super().forward(x)


def inflate_conv2d(conv2d: nn.Conv2d, time_kernel: int = 1, time_stride: int = 1, center: bool = False) -> nn.Conv3d:
    """A 3D conv with ``conv2d``'s filters repeated ``time_kernel`` times and divided by it (or, with
    ``center``, placed on the middle frame only), so it answers a constant clip exactly like the 2D conv."""
    if isinstance(conv2d.padding, str):
        raise VidcatError(f"cannot inflate a conv with padding={conv2d.padding!r}")
    conv = InflatedConv3d(conv2d.in_channels, conv2d.out_channels, (time_kernel, *conv2d.kernel_size),
                          stride=(time_stride, *conv2d.stride), padding=(0, *conv2d.padding),
                          dilation=(1, *conv2d.dilation), groups=conv2d.groups, bias=conv2d.bias is not None,
                          time_pad=time_kernel // 2, tf_same=getattr(conv2d, "tf_same", False))
    w = conv2d.weight.detach().unsqueeze(2)
    with torch.no_grad():
        if center:
            conv.weight.zero_()
            conv.weight[:, :, time_kernel // 2] = w[:, :, 0]
        else:
            conv.weight.copy_(w.repeat(1, 1, time_kernel, 1, 1) / time_kernel)
        if conv2d.bias is not None:
            conv.bias.copy_(conv2d.bias)
    return conv


def inflate_2d(net2d: nn.Module, time_kernel: Callable[[str, nn.Conv2d], int], pool_time_stride: int = 1,
               center: bool = False) -> nn.Module:
    """A copy of ``net2d`` with every Conv2d, BatchNorm2d, MaxPool2d and AdaptiveAvgPool2d made 3D.
    ``time_kernel(name, conv)`` gives each conv's temporal taps; max-pools also pool time by
    ``pool_time_stride``. BatchNorm statistics, biases and linear layers carry over unchanged."""
    net = copy.deepcopy(net2d)
    for name, m in list(net.named_modules()):
        if isinstance(m, nn.Conv2d):
            new = inflate_conv2d(m, time_kernel(name, m), 1, center)
        elif isinstance(m, nn.BatchNorm2d):
            new = nn.BatchNorm3d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            new.load_state_dict(m.state_dict())
        elif isinstance(m, nn.MaxPool2d):
            ts, (k, s, p) = pool_time_stride, (nn.modules.utils._pair(v) for v in (m.kernel_size, m.stride, m.padding))
            new = nn.MaxPool3d((2 * (ts // 2) + 1, *k), (ts, *s), (ts // 2, *p))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            new = nn.AdaptiveAvgPool3d(1)
        else:
            continue
        parent, _, leaf = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, new)
    return net


def _lite_time_kernel(stem: int, depthwise: int):
    """Temporal taps for EfficientNet-Lite: ``stem`` on the stem conv, ``depthwise`` on every depthwise conv
    (cheap: one filter per channel), 1 on the pointwise convs."""
    return lambda name, conv: stem if name == "_conv_stem" else depthwise if conv.groups > 1 else 1


def i3d_efficientnet_lite(variant: int, num_classes: int, pretrained: bool = False, stem_time_kernel: int = 3,
                          dw_time_kernel: int = 3, dropout: float | None = None, backbone_weights=None) -> nn.Module:
    """EfficientNet-Lite<variant> inflated to 3D; input (B, 3, T, H, W) normalised with mean = std = 0.5.
    ``pretrained`` (or a ``backbone_weights`` file) starts it from the 2D ImageNet weights."""
    from vidcat.models.efficientnet_lite import EfficientNetLite
    from vidcat.models.pretrained import imagenet_model

    name = f"efficientnet_lite{variant}"
    if pretrained or backbone_weights is not None:
        net2d, found = imagenet_model(name, backbone_weights)
    else:
        net2d, found = EfficientNetLite(variant), None
    model = inflate_2d(net2d, _lite_time_kernel(stem_time_kernel, dw_time_kernel))
    if dropout is not None:
        model._dropout.p = dropout
    if model._fc.out_features != num_classes:
        model._fc = nn.Linear(model.num_features, num_classes)
    model.weight_file = found  # where the 2D weights came from (None: random init)
    return model


_I3D = "Carreira & Zisserman 2017, Quo Vadis, Action Recognition?"
_HALF = dict(mean=HALF_MEAN, std=HALF_STD)


def _register(variant: int) -> None:
    @register_model(f"i3d_efficientnet_lite{variant}", family="3d", frames=8, size=112, paper=_I3D, **_HALF,
                    description=f"EfficientNet-Lite{variant} inflated to 3D (ImageNet-initialised offline with pretrained)")
    def build(num_classes: int, pretrained: bool = False, stem_time_kernel: int = 3, dw_time_kernel: int = 3,
              dropout: float | None = None, backbone_weights=None) -> nn.Module:
        return i3d_efficientnet_lite(variant, num_classes, pretrained, stem_time_kernel, dw_time_kernel, dropout,
                                     backbone_weights)


for _v in (0, 1, 2):
    _register(_v)
