"""Skeleton models on keypoint sequences ``(B, T, K, C)`` from the ``pose`` modality (normalised
MediaPipe landmarks, C = 4: x, y, z, visibility; K = 33 body joints, or 75 with hands).

* ``stgcn``    -- a small ST-GCN: spatial graph convolution over the MediaPipe skeleton (normalised
  adjacency with self-loops, one learned importance weight per edge) then a temporal convolution,
  stacked with residuals (Yan et al., AAAI 2018); input positions plus frame-to-frame velocities
  (the joint + motion input of later ST-GCN variants).
* ``pose_gru`` -- per-frame MLP over the flattened joints (positions and frame-to-frame velocities),
  bidirectional GRU, mean + last pooling.

Both are ``head(features(x))`` with ``feat_dim`` features, so ``fusion`` uses them as a stream.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.registry import register_model

# size: the (unused) decode size of the clip the keypoints' frame indices come from -- kept small
_POSE = dict(family="pose", modality="pose", frames=16, stride=2, size=64)


def skeleton_adjacency(num_joints: int) -> torch.Tensor:
    """Symmetrically normalised ``D^-1/2 (A + I) D^-1/2`` over the MediaPipe skeleton (body, + hands
    when ``num_joints`` is 75; other sizes get a chain, so synthetic tests can use any K)."""
    from vidcat.io.pose import N_BODY, N_HAND, edges

    if num_joints == N_BODY:
        es = edges(False)
    elif num_joints == N_BODY + 2 * N_HAND:
        es = edges(True)
    else:
        es = [(i, i + 1) for i in range(num_joints - 1)]
    A = torch.eye(num_joints)
    for a, b in es:
        A[a, b] = A[b, a] = 1.0
    d = A.sum(1).rsqrt()
    return d[:, None] * A * d[None, :]


class GraphConv(nn.Module):
    """``A' X W`` with ``A' = A * M`` (M: learned edge importance, initialised to 1)."""

    def __init__(self, cin: int, cout: int, A: torch.Tensor):
        super().__init__()
        self.register_buffer("A", A)
        self.importance = nn.Parameter(torch.ones_like(A))
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):  # (B, C, T, K)
        return torch.einsum("bctk,kj->bctj", self.conv(x), self.A * self.importance)


class STGCNBlock(nn.Module):
    def __init__(self, cin: int, cout: int, A: torch.Tensor, stride: int = 1, kernel: int = 9, dropout: float = 0.0):
        super().__init__()
        self.gcn = GraphConv(cin, cout, A)
        self.tcn = nn.Sequential(nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, (kernel, 1), (stride, 1), (kernel // 2, 0)),
                                 nn.BatchNorm2d(cout), nn.Dropout(dropout))
        self.res = (nn.Identity() if cin == cout and stride == 1 else
                    nn.Sequential(nn.Conv2d(cin, cout, 1, (stride, 1)), nn.BatchNorm2d(cout)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.tcn(self.gcn(x)) + self.res(x))


def _check_input(x: torch.Tensor, K: int, C: int, name: str) -> torch.Tensor:
    if x.dim() != 4 or x.shape[2] != K or x.shape[3] != C:
        raise VidcatError(f"{name} wants (B, T, {K}, {C}) keypoints, got {tuple(x.shape)}")
    return x.float()


class STGCN(nn.Module):
    def __init__(self, num_classes: int, num_joints: int = 33, in_channels: int = 4,
                 widths=(32, 64, 64), kernel: int = 5, dropout: float = 0.2):
        super().__init__()
        A = skeleton_adjacency(num_joints)
        self.K, self.C = num_joints, in_channels
        self.data_bn = nn.BatchNorm1d(num_joints * in_channels * 2)
        blocks, c = [], in_channels * 2  # positions and frame-to-frame velocities (joint + motion input)
        for i, w in enumerate(widths):
            blocks.append(STGCNBlock(c, w, A, stride=2 if i > 0 and c != w else 1, kernel=kernel))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.feat_dim = c
        self.head = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.K, self.C, "stgcn")
        x = torch.cat([x, torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], 1)], 3)
        B, T, K, C = x.shape
        x = self.data_bn(x.reshape(B, T, K * C).transpose(1, 2)).reshape(B, K, C, T).permute(0, 2, 3, 1)
        x = self.blocks(x)                     # (B, C', T', K)
        return self.drop(x.mean((2, 3)))

    def forward(self, x):
        return self.head(self.features(x))


class PoseGRU(nn.Module):
    def __init__(self, num_classes: int, num_joints: int = 33, in_channels: int = 4, hidden: int = 128,
                 embed: int = 128, dropout: float = 0.2):
        super().__init__()
        self.K, self.C = num_joints, in_channels
        d = num_joints * in_channels * 2  # positions and velocities
        self.norm = nn.LayerNorm(d)
        self.embed = nn.Sequential(nn.Linear(d, embed), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.feat_dim = 4 * hidden
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.feat_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.K, self.C, "pose_gru")
        B, T = x.shape[:2]
        pos = x.reshape(B, T, -1)
        vel = torch.cat([torch.zeros_like(pos[:, :1]), pos[:, 1:] - pos[:, :-1]], 1)
        h, _ = self.gru(self.embed(self.norm(torch.cat([pos, vel], 2))))
        return self.drop(torch.cat([h.mean(1), h[:, -1]], 1))

    def forward(self, x):
        return self.head(self.features(x))


def _no_pretrained(name, pretrained):
    if pretrained:
        raise VidcatError(f"{name} has no pretrained weights (the pose estimator is pretrained; the classifier "
                          "trains from scratch)")


@register_model("stgcn", description="small ST-GCN over the MediaPipe skeleton (graph conv + temporal conv)",
                paper="Yan et al., Spatial Temporal Graph Convolutional Networks for Skeleton-Based Action "
                      "Recognition, AAAI 2018", **_POSE)
def stgcn(num_classes: int, pretrained: bool = False, hands: bool = False, **kw) -> nn.Module:
    _no_pretrained("stgcn", pretrained)
    kw.setdefault("num_joints", 75 if hands else 33)
    return STGCN(num_classes, **kw)


@register_model("pose_gru", description="bidirectional GRU over keypoint sequences (positions + velocities)",
                paper="Du et al., Hierarchical Recurrent Neural Network for Skeleton Based Action Recognition, "
                      "CVPR 2015", **_POSE)
def pose_gru(num_classes: int, pretrained: bool = False, hands: bool = False, **kw) -> nn.Module:
    _no_pretrained("pose_gru", pretrained)
    kw.setdefault("num_joints", 75 if hands else 33)
    return PoseGRU(num_classes, **kw)
