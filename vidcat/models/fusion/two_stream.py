"""``two_stream``: a spatial stream on RGB plus a temporal stream on optical flow or codec motion vectors.

Simonyan & Zisserman (2014) classify appearance and motion with two networks and fuse their scores;
Feichtenhofer et al. (2016) fuse them earlier, on the last conv feature maps. Here each stream is any
registered model (default ``tsn`` ResNet-18 for both, the temporal one with ``in_channels = 2L``; or
``tiny3d`` with ``in_channels=2`` on a ``clip``-sampled field sequence) and ``fusion`` picks how:

* ``late``     average of the two streams' class scores with fixed weights (0.5/0.5, or tuned on a
               validation set by ``vidcat fuse``);
* ``weighted`` the same with weights learned jointly (softmax of two parameters), then tuned on the
               validation set at the end of ``vidcat train`` (the best checkpoint is rewritten);
* ``concat``   a learned head (MLP) over the concatenated stream features;
* ``gated``    per-sample attention over the streams;
* ``conv``     mid-level conv fusion: both streams' last conv maps are stacked along channels,
               a 1x1x1 (``conv_kernel=1``) or 3x3x3 conv + BN + ReLU fuses them, then global pooling
               and a linear head. For 2D streams the maps of the T segments form the time axis, so
               ``conv_kernel=3`` also fuses across segments. Works for ``tsn``/``tsm`` (torchvision
               backbones) and ``tiny3d`` streams.

All but ``conv`` are :class:`vidcat.models.fusion.FusionModel` (so masks, modality dropout and
per-stream logits behave as for any fused model). Every mode returns ``stream_logits`` for both
streams, so ``vidcat eval`` reports each stream's top-1 and the trainer's auxiliary loss keeps each
stream predictive on its own.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.errors import VidcatError
from vidcat.models.build import accepts
from vidcat.models.fusion.core import FUSIONS, FusionModel, batch_key, mask_key
from vidcat.models.registry import IMAGENET_MEAN, IMAGENET_STD, create_model, get_spec, register_model
from vidcat.config import MULTI_STREAM

MOTIONS = ("flow", "mv")
FUSION_MODES = (*FUSIONS, "conv")
RGB = "rgb"  # the spatial stream's name (its input is the batch's "video" entry)


def resolve_motion(motion: str | None, modalities) -> str:
    """The temporal stream's modality: ``motion`` if given, else the one in ``modalities``."""
    mods = [("video" if m == "rgb" else m) for m in (modalities or [])]
    found = [m for m in mods if m in MOTIONS]
    if motion is None:
        if modalities is not None and not found:
            raise VidcatError("two_stream needs a motion modality: --modalities rgb,flow (optical flow) "
                              "or rgb,mv (codec motion vectors)")
        motion = found[0] if found else "flow"
    if motion not in MOTIONS:
        raise VidcatError(f"two_stream: motion must be one of {', '.join(MOTIONS)}, not {motion!r}")
    if modalities is not None and (motion not in mods or "video" not in mods):
        raise VidcatError(f"two_stream with motion={motion} needs --modalities rgb,{motion}")
    return motion


def build_streams(num_classes: int, rgb: str = "tsn", temporal: str = "tsn", rgb_kw: dict | None = None,
                  motion_kw: dict | None = None, flow_length: int = 1, pretrained: bool = False):
    """The two single-stream models; the temporal one gets ``in_channels = 2 * flow_length`` unless set."""
    rgb_kw, motion_kw = dict(rgb_kw or {}), dict(motion_kw or {})
    for kw in (rgb_kw, motion_kw):
        kw.pop("input_key", None)
        if pretrained:
            kw.setdefault("pretrained", True)
    if "in_channels" not in motion_kw:
        if not accepts(get_spec(temporal).builder, "in_channels"):
            raise VidcatError(f"temporal stream {temporal!r} takes no in_channels; pick a video model such as "
                              "tsn, tsm or tiny3d")
        motion_kw["in_channels"] = 2 * int(flow_length)
    return create_model(rgb, num_classes, **rgb_kw), create_model(temporal, num_classes, **motion_kw)


# -- mid-level conv fusion ------------------------------------------------------------------
class _Apply(nn.Module):
    """A module calling ``net.<method>(x, **kw)`` (timm's ``forward_features`` / ``forward_head``)."""

    def __init__(self, net: nn.Module, method: str, **kw):
        super().__init__()
        self.net, self.method, self.kw = net, method, kw

    def forward(self, x):
        return getattr(self.net, self.method)(x, **self.kw)


def _split2d(backbone: nn.Module) -> tuple[nn.Module, nn.Module]:
    """A 2D backbone from ``build_backbone2d`` as (conv trunk -> maps, neck: maps -> pooled features)."""
    import torchvision.models as tvm

    if isinstance(backbone, tvm.ResNet):
        kids = list(backbone.children())
        return nn.Sequential(*kids[:-2]), nn.Sequential(backbone.avgpool, nn.Flatten(1), backbone.fc)
    if isinstance(getattr(backbone, "features", None), nn.Module) and hasattr(backbone, "classifier"):
        # MobileNet, EfficientNet, ...: features -> avgpool -> flatten -> classifier (last Linear removed)
        return backbone.features, nn.Sequential(backbone.avgpool, nn.Flatten(1), backbone.classifier)
    if callable(getattr(backbone, "forward_features", None)) and callable(getattr(backbone, "forward_head", None)):
        return _Apply(backbone, "forward_features"), _Apply(backbone, "forward_head", pre_logits=True)  # timm
    raise VidcatError(f"conv fusion: cannot find the conv trunk of {type(backbone).__name__}")


def _channels(trunk: nn.Module) -> int:
    """Output channels of a conv trunk: its last normalisation layer's width (or conv's)."""
    last = None
    for m in trunk.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)) or \
                isinstance(m, (nn.Conv2d, nn.Conv3d)):
            last = m
    if last is None:
        raise VidcatError(f"conv fusion: {type(trunk).__name__} has no conv layer")
    return int(getattr(last, "num_features", None) or getattr(last, "num_channels", None)
               or getattr(last, "out_channels", None) or last.normalized_shape[0])


class StreamTrunk(nn.Module):
    """A stream model cut before its global pooling: (B, C, T, H, W) -> maps (B, C', t, h, w); ``logits``
    finishes the stream on those maps (pooling + its own head), giving the single-stream prediction."""

    def __init__(self, model: nn.Module):
        super().__init__()
        from vidcat.models.tiny3d import Tiny3D
        from vidcat.models.tsn import TSN

        if isinstance(model, TSN):
            self.is3d = False
            self.trunk, self.neck = _split2d(model.backbone)
            self._shifts = list(model._shifts)  # TSM: frames per clip set on every forward
        elif isinstance(model, Tiny3D):
            self.is3d, self._shifts = True, []
            self.trunk, self.neck = model.features, nn.Sequential(model.pool, nn.Flatten(1))
        else:
            raise VidcatError(f"conv fusion supports tsn, tsm and tiny3d streams, not {type(model).__name__}")
        self.dropout, self.head = model.dropout, model.fc
        self.channels = _channels(self.trunk)

    def forward(self, x):
        if self.is3d:
            return self.trunk(x)
        b, c, t, h, w = x.shape
        for s in self._shifts:
            s.n_segment = t
        y = self.trunk(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.view(b, t, *y.shape[1:]).transpose(1, 2)            # (B, C', T, h, w)

    def logits(self, maps):
        if self.is3d:
            return self.head(self.dropout(self.neck(maps)))
        b, c, t = maps.shape[:3]
        f = self.neck(maps.transpose(1, 2).reshape(b * t, c, *maps.shape[3:])).view(b, t, -1)
        return self.head(self.dropout(f)).mean(1)                     # TSN's average consensus


class ConvFusionTwoStream(nn.Module):
    """Feichtenhofer et al. 2016 conv fusion of the RGB and motion streams' last conv maps."""

    def __init__(self, rgb: nn.Module, motion_model: nn.Module, motion: str, num_classes: int,
                 kernel: int = 1, dim: int | None = None, dropout: float = 0.5):
        super().__init__()
        if kernel not in (1, 3):
            raise VidcatError("conv_kernel must be 1 or 3")
        self.names = [RGB, motion]
        self.fusion = "conv"
        self.trunks = nn.ModuleDict({RGB: StreamTrunk(rgb), motion: StreamTrunk(motion_model)})
        cin = sum(t.channels for t in self.trunks.values())
        dim = dim or max(t.channels for t in self.trunks.values())
        self.fuse = nn.Sequential(nn.Conv3d(cin, dim, kernel, padding=kernel // 2, bias=False),
                                  nn.BatchNorm3d(dim), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, batch: dict) -> dict:
        maps = {n: self.trunks[n](batch[batch_key(n)]) for n in self.names}
        a, b = maps[self.names[0]], maps[self.names[1]]
        B = a.shape[0]
        masks = []
        for n in self.names:
            m = batch.get(mask_key(n))
            masks.append(torch.ones(B, device=a.device) if m is None else torch.as_tensor(m, device=a.device).float().view(B))
        mask = torch.stack(masks, 1)
        if b.shape[2:] != a.shape[2:]:
            b = F.interpolate(b, size=a.shape[2:], mode="trilinear", align_corners=False)
        x = torch.cat([a * mask[:, 0].view(B, 1, 1, 1, 1), b * mask[:, 1].view(B, 1, 1, 1, 1)], 1)
        logits = self.fc(self.dropout(self.pool(self.fuse(x)).flatten(1)))
        stream_logits = {n: self.trunks[n].logits(maps[n]) for n in self.names}
        return {"logits": logits, "stream_logits": stream_logits, "weights": None, "mask": mask}


def rgb_stream(kw: dict) -> tuple[str, dict]:
    """The spatial stream (model, keywords): its weights set the RGB input of the two-stream model."""
    return kw.get("rgb") or "tsn", dict(kw.get("rgb_kw") or {})


@register_model("two_stream", family="fusion", modality=MULTI_STREAM, frames=8, size=112, temporal=True, sampler="tsn",
                mean=IMAGENET_MEAN, std=IMAGENET_STD, rgb_stream=rgb_stream,
                paper="Simonyan & Zisserman 2014; Feichtenhofer et al. 2016 (conv fusion)",
                description="RGB stream + flow/motion-vector stream, late/weighted/learned/conv fusion")
def two_stream(num_classes: int, pretrained: bool = False, motion: str | None = None, fusion: str = "late",
               rgb: str = "tsn", temporal: str = "tsn", rgb_kw: dict | None = None, motion_kw: dict | None = None,
               flow_length: int = 1, modalities=None, conv_kernel: int = 1, fusion_dim: int | None = None,
               modality_dropout: float = 0.0, dropout: float = 0.5) -> nn.Module:
    """``motion``: flow | mv (default: from ``modalities``); ``rgb``/``temporal``: registry names of the
    streams with ``rgb_kw``/``motion_kw`` their builder keywords; ``flow_length``: L (temporal stream
    ``in_channels = 2L`` unless ``motion_kw`` sets it)."""
    if fusion not in FUSION_MODES:
        raise VidcatError(f"two_stream: fusion must be one of {', '.join(FUSION_MODES)}, not {fusion!r}")
    motion = resolve_motion(motion, modalities)
    rgb_model, motion_model = build_streams(num_classes, rgb, temporal, rgb_kw, motion_kw, flow_length, pretrained)
    if fusion == "conv":
        return ConvFusionTwoStream(rgb_model, motion_model, motion, num_classes, conv_kernel, fusion_dim, dropout)
    return FusionModel({RGB: rgb_model, motion: motion_model}, num_classes, fusion=fusion,
                       modality_dropout=modality_dropout)
