"""Frame models: ``tsn`` (Wang et al. 2016, Temporal Segment Networks) and ``tsm`` (Lin et al. 2019,
Temporal Shift Module), plus the 2D backbone helper shared with LRCN and two-stream.

Input (B, C, T, H, W) with T sampled segments (8 x 112 x 112 by default); frames are folded into the
batch, ``(B*T, C, H, W)``, run through an ImageNet 2D CNN, and the per-segment class scores are merged
by a consensus (avg | max | attention). TSM additionally shifts 1/8 of the channels one step forward
and 1/8 one step backward in time at the entry of every ResNet residual branch (zero extra params).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model
from vidcat.models.surgery import torchvision_pretrained, widen_first_conv

BACKBONES = ("resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
             "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def build_backbone2d(name: str = "resnet18", pretrained: bool = False, in_channels: int = 3,
                     weights=None) -> tuple[nn.Module, int]:
    """A 2D CNN mapping (N, in_channels, H, W) to pooled features (N, feat_dim); returns ``(net, feat_dim)``.

    ``name``: a torchvision classification model (``resnet18`` ... ``efficientnet_b0``; its ImageNet
    weights with ``pretrained``), ``efficientnet_lite0/1/2`` (ImageNet weights resolved offline by
    :mod:`vidcat.models.pretrained`; the net carries their spec, ``weights``, and file, ``weight_file``)
    or ``timm:<model>`` when timm is installed. ``in_channels != 3`` rebuilds the first conv
    with the cross-modality init (see :func:`widen_first_conv`). ``weights``: a local file with the
    backbone's ImageNet weights (EfficientNet-Lite only), which implies ``pretrained``.
    """
    if name.startswith("efficientnet_lite"):
        from vidcat.models.pretrained import frame_backbone
        from vidcat.weights.catalogue import LITE_BACKBONES as LITE

        if name not in LITE:
            raise VidcatError(f"unknown backbone {name!r}; EfficientNet-Lite backbones: {', '.join(LITE)}")
        net, spec = frame_backbone(name, pretrained or weights is not None, in_channels, weights)
        return net, spec.feat_dim
    if weights is not None:
        raise VidcatError(f"backbone_weights works with efficientnet_lite0/1/2, not {name!r}; use --weights for a whole model")
    if name.startswith("timm:"):
        try:
            import timm
        except ModuleNotFoundError:
            raise VidcatError(f"backbone {name!r} needs timm: pip install 'vidcat[timm]'") from None
        try:
            net = timm.create_model(name[5:], pretrained=pretrained, num_classes=0)
        except RuntimeError as e:  # timm's "Unknown model"
            raise VidcatError(f"backbone {name!r}: {e}".splitlines()[0]) from None
        except OSError as e:
            raise VidcatError(f"cannot download timm weights for {name[5:]} ({type(e).__name__}); pass --weights FILE") from None
        dim = getattr(net, "head_hidden_size", None) or net.num_features  # pre-logits width (MobileNetV3: 1024)
    else:
        import torchvision.models as tvm

        if name not in tvm.list_models(module=tvm):
            raise VidcatError(f"unknown backbone {name!r}; use one of {', '.join(BACKBONES)} (any torchvision "
                              "classification model) or timm:<name>")
        weights = tvm.get_model_weights(name).DEFAULT if pretrained else None
        net = torchvision_pretrained(tvm.get_model, weights, name=name) if weights else tvm.get_model(name)
        parent, leaf = (net, "fc") if isinstance(getattr(net, "fc", None), nn.Linear) else (net, "classifier")
        head = getattr(parent, leaf, None)
        if isinstance(head, nn.Sequential):
            parent, leaf = head, str(len(head) - 1)
            head = head[-1]
        if not isinstance(head, nn.Linear):
            raise VidcatError(f"backbone {name!r}: no final Linear layer found to remove")
        dim = head.in_features
        setattr(parent, leaf, nn.Identity())
    if in_channels != 3:
        widen_first_conv(net, in_channels)
    return net, dim


def frame_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) clip -> (B, T, D) per-frame backbone features."""
    b, c, t, h, w = x.shape
    f = backbone(x.transpose(1, 2).reshape(b * t, c, h, w))
    return f.view(b, t, -1)


class TemporalShift(nn.Module):
    """Wraps a conv: shift ``1/fold_div`` channels back and ``1/fold_div`` forward in time, then convolve.
    ``n_segment`` (frames per clip) is set by the owning model on every forward."""

    def __init__(self, net: nn.Module, fold_div: int = 8):
        super().__init__()
        self.net, self.fold_div, self.n_segment = net, fold_div, 1

    def forward(self, x):
        nt, c, h, w = x.shape
        t, fold = self.n_segment, c // self.fold_div
        x = x.view(nt // t, t, c, h, w)
        out = torch.zeros_like(x)
        out[:, :-1, :fold] = x[:, 1:, :fold]                   # frame t sees t+1
        out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]   # frame t sees t-1
        out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
        return self.net(out.view(nt, c, h, w))


def add_temporal_shift(net: nn.Module, fold_div: int = 8) -> list[TemporalShift]:
    """Insert residual shifts before the first conv of every residual branch: ``conv1`` of ResNet
    BasicBlock/Bottleneck (torchvision or timm), ``_expand_conv`` of EfficientNet-Lite's residual MBConvs."""
    shifts = []
    for m in list(net.modules()):
        if type(m).__name__ in ("BasicBlock", "Bottleneck"):
            attr = "conv1"
        elif getattr(m, "residual", False) is True:
            attr = "_expand_conv"
        else:
            continue
        if isinstance(getattr(m, attr, None), nn.Conv2d):
            setattr(m, attr, TemporalShift(getattr(m, attr), fold_div))
            shifts.append(getattr(m, attr))
    if not shifts:
        raise VidcatError("tsm needs a ResNet backbone (residual BasicBlock/Bottleneck blocks), e.g. resnet18 or "
                          "resnet50, or efficientnet_lite0/1/2 (residual MBConv blocks)")
    return shifts


class TSN(nn.Module):
    """Per-frame 2D CNN, per-segment class scores, segmental consensus."""

    classifier_name = "fc"

    def __init__(self, num_classes: int, backbone: str = "resnet18", pretrained: bool = False,
                 consensus: str = "avg", dropout: float = 0.5, in_channels: int = 3, shift: bool = False,
                 backbone_weights=None):
        super().__init__()
        if consensus not in ("avg", "max", "attention"):
            raise VidcatError(f"consensus must be avg, max or attention, not {consensus!r}")
        self.backbone, dim = build_backbone2d(backbone, pretrained, in_channels, backbone_weights)
        self.weight_file = getattr(self.backbone, "weight_file", None)  # where an offline backbone's weights came from
        self._shifts = add_temporal_shift(self.backbone) if shift else []
        self.consensus = consensus
        self.attention = nn.Linear(dim, 1) if consensus == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        for s in self._shifts:
            s.n_segment = x.shape[2]
        f = frame_features(self.backbone, x)                  # (B, T, D)
        scores = self.fc(self.dropout(f))                     # (B, T, K)
        if self.consensus == "avg":
            return scores.mean(1)
        if self.consensus == "max":
            return scores.amax(1)
        a = torch.softmax(self.attention(f), dim=1)           # (B, T, 1)
        return (a * scores).sum(1)


_IMAGENET = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD)


@register_model("tsn", family="2d", frames=8, size=112, temporal=False, sampler="tsn", paper="Wang et al. 2016, Temporal Segment Networks",
                description="2D CNN per segment + consensus (avg/max/attention)", **_IMAGENET)
def tsn(num_classes: int, pretrained: bool = False, backbone: str = "resnet18", consensus: str = "avg",
        dropout: float = 0.5, in_channels: int = 3, backbone_weights=None) -> nn.Module:
    return TSN(num_classes, backbone, pretrained, consensus, dropout, in_channels, backbone_weights=backbone_weights)


@register_model("tsm", family="2d", frames=8, size=112, temporal=True, sampler="tsn", paper="Lin et al. 2019, TSM: Temporal Shift Module",
                description="ResNet with residual temporal shift (1/8 channels each way)", **_IMAGENET)
def tsm(num_classes: int, pretrained: bool = False, backbone: str = "resnet18", consensus: str = "avg",
        dropout: float = 0.5, in_channels: int = 3, backbone_weights=None) -> nn.Module:
    return TSN(num_classes, backbone, pretrained, consensus, dropout, in_channels, shift=True, backbone_weights=backbone_weights)
