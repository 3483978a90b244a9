"""What every stream of the ``streams`` model is: a frozen or parameter-free module that turns one kind of
batch entry (frames, motion fields, keypoints, sound, words) into a fixed-length feature vector per clip,
and says which clips it could not read.

A stream never raises for missing input: a clip with no person, no audio track, silence or no text gets
``present`` 0 and all-zero features, so training and prediction treat it as "no evidence from this stream".
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.errors import VidcatError


class StreamFeatures(nn.Module):
    """Base class: ``forward(batch) -> (features (B, feat_dim) float32, present (B,) float32 in {0, 1})``."""

    name: str = ""
    reads: tuple = ()        # batch keys (data modalities) the stream needs
    version: int = 1         # part of the feature cache key: bump when the features change
    feat_dim: int = 0

    def spec(self) -> dict:
        """JSON-able settings that identify the features (the cache key adds the file's content)."""
        return {"name": self.name, "version": self.version, "feat_dim": self.feat_dim}

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def batch_size(batch: dict, key: str) -> int:
    """Number of samples of ``batch`` judged by entry ``key`` (a tensor or a list)."""
    v = batch[key]
    return int(v.shape[0]) if isinstance(v, torch.Tensor) else len(v)


def present_of(batch: dict, key: str, n: int) -> torch.Tensor:
    """``batch[key + "_mask"]`` as a (n,) float tensor (1 where the modality was read), ones when absent."""
    m = batch.get(f"{key}_mask")
    if m is None:
        return torch.ones(n)
    return torch.as_tensor(m, dtype=torch.float32).reshape(n)


POOLS = ("mean", "trend")


def pool_frames(x: torch.Tensor, pool: str = "trend", dims: int | None = None) -> torch.Tensor:
    """(B, T, F) per-frame features -> (B, k x dims) over the first ``dims`` features: ``mean``, or
    ``trend`` = mean, spread and signed least-squares slope over time (the slope tells the direction of
    time, which an order-free mean cannot)."""
    x = x[..., :dims] if dims else x
    m = x.mean(1)
    if pool == "mean":
        return m
    if pool != "trend":
        raise VidcatError(f"unknown pooling {pool!r} ({' | '.join(POOLS)})")
    t = torch.arange(x.shape[1], dtype=x.dtype, device=x.device)
    t = (t - t.mean()) / (t - t.mean()).pow(2).sum().clamp_min(1e-6)
    return torch.cat([m, x.std(1, unbiased=False), (x * t.view(1, -1, 1)).sum(1)], 1)
