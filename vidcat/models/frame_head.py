"""``frame_head``: a frozen ImageNet frame encoder, a fixed motion descriptor and a pooled linear head.

Each of T frames (one per TSN segment) goes through an offline-resolved EfficientNet-Lite
(:mod:`vidcat.models.frame_encoder`), giving per frame its global average features and, per channel,
where the channel fires (x/y activation centroids: :class:`~vidcat.models.frame_encoder.PositionPool`).
:class:`MotionEnergy` adds a cheap, parameter-free motion descriptor of consecutive sampled frames
(frame-difference energy and normal-flow direction on a 4x4 grid). :class:`PooledHead` pools a chosen
slice of these per-frame features over time (mean | meanstd | absdiff | trend), standardises them and
applies one linear layer -- a logistic regression fitted in seconds on cached features
(:mod:`vidcat.transfer.recipe`), yet an ordinary registry model: evaluation, prediction, export and
serving run it on clips like any other.

Per-frame feature layout (what the feature cache stores): ``[avg (D) | x-centroid (D) | y-centroid (D) |
motion (M)]``; motion row 0 is zero (no previous frame).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.config import HALF_MEAN, HALF_STD
from vidcat.errors import VidcatError
from vidcat.models.frame_encoder import load_backbone
from vidcat.models.registry import register_model

LITE_NORM = dict(mean=HALF_MEAN, std=HALF_STD)  # what the EfficientNet-Lite weights expect
POOLS = ("mean", "meanstd", "absdiff", "trend")
POOL_WIDTH = {"mean": 1, "meanstd": 2, "absdiff": 2, "trend": 3}
GRID = 4
MOTION_DIM = 3 * GRID * GRID + 2


def pool(x: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, T, D) → (B, k·D): mean; mean ⊕ std; mean ⊕ mean |f(t+1) − f(t)|; mean ⊕ std ⊕ signed
    least-squares slope over t (the only one that tells the direction of time)."""
    m = x.mean(1)
    if kind == "mean":
        return m
    if kind == "meanstd":
        return torch.cat([m, x.std(1, unbiased=False)], 1)
    if kind == "absdiff":
        d = (x[:, 1:] - x[:, :-1]).abs().mean(1) if x.shape[1] > 1 else torch.zeros_like(m)
        return torch.cat([m, d], 1)
    if kind == "trend":
        t = torch.arange(x.shape[1], dtype=x.dtype, device=x.device)
        t = (t - t.mean()) / (t - t.mean()).pow(2).sum().clamp_min(1e-6)
        return torch.cat([m, x.std(1, unbiased=False), (x * t.view(1, -1, 1)).sum(1)], 1)
    raise VidcatError(f"unknown pooling {kind!r} ({' | '.join(POOLS)})")


class MotionEnergy(nn.Module):
    """(B, 3, T, H, W) normalised frames → (B, T, MOTION_DIM): for each pair of consecutive sampled
    frames, on a GRID x GRID grid, the mean |Δ brightness| and the normal-flow estimate
    (u, v) = −Σ Δ·∇I / Σ |∇I|² of the cell, plus the frame's mean and std of |Δ|. No parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        g = x.mean(1)                                                       # (B, T, H, W)
        side = max(GRID * 8, min(64, h, w) // GRID * GRID)
        g = F.adaptive_avg_pool2d(g, (side, side))
        if t < 2:
            return x.new_zeros(b, t, MOTION_DIM)
        d = g[:, 1:] - g[:, :-1]
        mid = 0.5 * (g[:, 1:] + g[:, :-1])
        ix = F.pad(mid[..., :, 2:] - mid[..., :, :-2], (1, 1)) * 0.5
        iy = F.pad(mid[..., 2:, :] - mid[..., :-2, :], (0, 0, 1, 1)) * 0.5

        def cells(v):                                                       # (B, T-1, GRID*GRID)
            return F.adaptive_avg_pool2d(v, (GRID, GRID)).flatten(2)

        eps = 1e-3
        u = -cells(d * ix) / (cells(ix * ix) + eps)
        v = -cells(d * iy) / (cells(iy * iy) + eps)
        ad = d.abs()
        rows = torch.cat([cells(ad), u.clamp(-4, 4), v.clamp(-4, 4), ad.mean((2, 3))[..., None],
                          ad.flatten(2).std(2)[..., None]], 2)
        return torch.cat([rows.new_zeros(b, 1, MOTION_DIM), rows], 1)


class PooledHead(nn.Module):
    """Per-frame features (B, T, F) → the appearance slice ``[:app_dims]`` pooled by ``pool`` (⊕ the
    motion slice, rows 1.., pooled by meanstd) → standardised (training statistics; near-constant
    features masked out) → linear logits. Fitted by logistic regression, stored like any module."""

    def __init__(self, num_classes: int, pool: str = "absdiff", app_dims: int = 1280, motion: bool = False,
                 feat_dim: int = 3 * 1280 + MOTION_DIM):
        super().__init__()
        if pool not in POOLS:
            raise VidcatError(f"unknown pooling {pool!r} ({' | '.join(POOLS)})")
        self.pool, self.app_dims, self.motion, self.feat_dim = pool, int(app_dims), bool(motion), int(feat_dim)
        width = POOL_WIDTH[pool] * self.app_dims + (2 * MOTION_DIM if motion else 0)
        self.register_buffer("mu", torch.zeros(width))
        self.register_buffer("sigma", torch.ones(width))
        self.register_buffer("keep", torch.ones(width))
        self.fc = nn.Linear(width, num_classes)

    @property
    def config(self) -> dict:
        return dict(pool=self.pool, app_dims=self.app_dims, motion=self.motion, feat_dim=self.feat_dim)

    def pooled(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) → (B, width) unstandardised pooled features (what the logistic regression sees)."""
        parts = [pool(feats[..., : self.app_dims], self.pool)]
        if self.motion:
            parts.append(pool(feats[:, 1:, self.feat_dim - MOTION_DIM:], "meanstd"))
        return torch.cat(parts, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        z = (self.pooled(feats) - self.mu) / self.sigma * self.keep
        return self.fc(z)


class FrameHead(nn.Module):
    """(B, 3, T, H, W) normalised clips → per-frame features (B, T, F) → head logits."""

    def __init__(self, backbone: nn.Module, head: PooledHead):
        super().__init__()
        self.backbone, self.head, self.motion = backbone, head, MotionEnergy()

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """The per-frame layout the feature cache stores (see the module docstring)."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w).contiguous(memory_format=torch.channels_last)
        app = self.backbone(frames).reshape(b, t, -1).float()
        return torch.cat([app, self.motion(x.float())], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frame_features(x))


@register_model("frame_head", family="transfer", frames=8, size=160, sampler="tsn", temporal=True, **LITE_NORM,
                paper="Wang et al. 2016 (TSN sampling); Tan & Le 2019 (EfficientNet-Lite, ImageNet weights)",
                description="frozen ImageNet EfficientNet-Lite per frame + motion energy + pooled linear head "
                            "(the real-footage default)")
def frame_head(num_classes: int, pretrained: bool = False, backbone: str = "efficientnet_lite0",
               pool: str = "absdiff", app: str = "global", motion: bool = False) -> nn.Module:
    """``pool``: mean | meanstd | absdiff | trend; ``app``: global (average features) or positional
    (+ activation centroids); ``motion``: add the motion descriptor."""
    if app not in ("global", "positional"):
        raise VidcatError(f"app must be global or positional, not {app!r}")
    module, info = load_backbone(backbone, pretrained=pretrained, pooling="avgpos")
    d = info.feat_dim // 3
    head = PooledHead(num_classes, pool, d if app == "global" else 3 * d, motion, info.feat_dim + MOTION_DIM)
    net = FrameHead(module.to(memory_format=torch.channels_last), head)
    net.backbone_info = info
    return net
