"""``frame_head``: a frozen ImageNet frame encoder + a light temporal head -- the real-footage recipe.

Each of T frames (one per TSN segment) goes through an offline-resolved EfficientNet-Lite
(:mod:`vidcat.models.pretrained`); the per-frame features (B, T, D) go to a small head
(:mod:`vidcat.transfer.heads`: trend / temporal-difference pooling + linear, GRU, temporal conv, ...).
``vidcat train`` fits it on cached features in seconds (:mod:`vidcat.engine.transfer`), yet it is an
ordinary registry model: evaluation, prediction, export and serving run it on clips like any other.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.models.registry import register_model

LITE_NORM = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # what the EfficientNet-Lite weights expect


class FrameHead(nn.Module):
    """(B, 3, T, H, W) normalised clips -> per-frame backbone features (B, T, D) -> head logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        return self.backbone(x.transpose(1, 2).reshape(b * t, c, h, w)).reshape(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frame_features(x))


@register_model("frame_head", family="transfer", frames=8, size=160, sampler="tsn", temporal=True, **LITE_NORM,
                paper="Wang et al. 2016 (TSN sampling); Tan & Le 2019 (EfficientNet-Lite, ImageNet weights)",
                description="frozen ImageNet EfficientNet-Lite per frame + temporal head (the real-footage default)")
def frame_head(num_classes: int, pretrained: bool = False, backbone: str = "efficientnet_lite0",
               pooling: str = "avgpos", head: str = "trend", frames: int = 8, hidden: int = 128,
               dropout: float = 0.3) -> nn.Module:
    """``head``: a :data:`vidcat.transfer.heads.KINDS` kind; ``pooling``: avg | avgpos (+ activation centroids)."""
    from vidcat.models.frame_backbone import load_backbone
    from vidcat.models.feature_heads import build_head

    module, info = load_backbone(backbone, pretrained=pretrained, pooling=pooling)
    return FrameHead(module, build_head(dict(kind=head, feat_dim=info.feat_dim, num_classes=num_classes,
                                             frames=frames, hidden=hidden, dropout=dropout)))
