"""The frozen frame encoder of the appearance stream (:mod:`vidcat.models.streams.appearance`):
``(N, 3, H, W)`` normalised frames → ``(N, D)`` features.

:func:`load_backbone` asks :func:`vidcat.models.pretrained.frame_backbone` for a named, offline-resolved
ImageNet backbone. ``pretrained=False`` gives the same architecture with seeded random weights (the
control in the benchmarks). The input the weights expect (mean/std, size) is in their catalogue spec
(``info.weights``), not here.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.weights import Weights


@dataclass
class BackboneInfo:
    """What a feature cache key and a checkpoint need to know about the encoder."""

    name: str
    pretrained: bool
    feat_dim: int
    weights_sha256: str = ""         # of the weight file; "random-init:<seed>" for the control
    pooling: str = "avg"             # "avg": (N, D); "avgpos": (N, 3D) = mean, x- and y-centroid per channel
    source: str = ""
    extra: dict = field(default_factory=dict)
    weights: Weights | None = None   # the catalogue spec: the input the weights expect, licence, sha256

    def as_dict(self) -> dict:
        return asdict(self)


class PositionPool(nn.Module):
    """Feature map (N, D, h, w) → (N, 3D): per channel its mean and the x / y centroid of its positive
    activation (in [-1, 1]). Global average pooling forgets *where* things are, so the difference of
    pooled features between frames cannot tell left from right motion; the centroids keep that."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = trunk

    def forward(self, x):
        a = self.trunk.forward_features(x)
        n, d, h, w = a.shape
        wgt = a.clamp_min(0) + 1e-6
        wgt = wgt / wgt.sum((2, 3), keepdim=True)
        ys = torch.linspace(-1, 1, h, device=a.device).view(1, 1, h, 1)
        xs = torch.linspace(-1, 1, w, device=a.device).view(1, 1, 1, w)
        return torch.cat([a.mean((2, 3)), (wgt * xs).sum((2, 3)), (wgt * ys).sum((2, 3))], 1)


def state_sha(module: nn.Module) -> str:
    """sha256 over a module's parameters and buffers (names, shapes, bytes): identifies its weights."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_backbone(name: str = "efficientnet_lite0", pretrained: bool = True, seed: int = 0,
                  weights: str | None = None, pooling: str = "avg") -> tuple[nn.Module, BackboneInfo]:
    """``(module in eval mode, info)``; raises VidcatError when pretrained weights do not resolve.

    ``pooling="avgpos"`` appends per-channel activation centroids (see :class:`PositionPool`)."""
    if pooling not in ("avg", "avgpos"):
        raise VidcatError(f"unknown pooling {pooling!r} (avg | avgpos)")
    from vidcat.models.pretrained import frame_backbone

    torch.manual_seed(seed)
    module, spec = frame_backbone(name=name, pretrained=pretrained, **({"weights": weights} if weights else {}))
    found = getattr(module, "weight_file", None)
    sha = found.sha256 if found is not None else None
    info = BackboneInfo(name=name, pretrained=pretrained, feat_dim=int(spec.feat_dim), weights=spec,
                        source=found.source if found is not None else "random",
                        weights_sha256=sha or (state_sha(module) if pretrained else f"random-init:{seed}"))
    if pooling == "avgpos":
        if not hasattr(module, "forward_features"):
            raise VidcatError(f"backbone {name} exposes no feature map (forward_features) for pooling avgpos")
        module, info.feat_dim = PositionPool(module), 3 * info.feat_dim
    info.pooling = pooling
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module, info
