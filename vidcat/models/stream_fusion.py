"""``streams``: the default model. Every stream a video has, each with its own head, fused by stacking.

Each stream (:mod:`vidcat.models.streams`: appearance, motion, pose, audio, text) turns its batch entry
into features, a :class:`LinearHead` turns those into class log-probabilities, and a linear stacker
combines the streams' centred log-probabilities into the fused logits. A stream that is missing for a
clip (no person, no sound, no words) contributes zeros -- no evidence -- instead of an error. The heads
and the stacker are fitted on cached features by :mod:`vidcat.featurefit`; this module only runs them.

The frozen encoders (ImageNet EfficientNet-Lite, MiniLM, ...) are rebuilt from their offline weights, so a
checkpoint holds just what was fitted: heads and stacker.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.config import HALF_MEAN, HALF_STD, MULTI_STREAM
from vidcat.errors import VidcatError
from vidcat.models.registry import register_model
from vidcat.models.streams.base import pool_frames

class LinearHead(nn.Module):
    """Features -> [temporal pooling of per-frame features] -> standardised (training statistics;
    near-constant features masked) -> linear logits. Fitted by logistic regression, stored like any module."""

    def __init__(self, num_classes: int, in_dim: int, pool: str | None = None, dims: int | None = None):
        super().__init__()
        self.pool, self.dims = pool, dims
        width = in_dim if pool is None else (3 if pool == "trend" else 1) * int(dims)
        self.register_buffer("mu", torch.zeros(width))
        self.register_buffer("sigma", torch.ones(width))
        self.register_buffer("keep", torch.ones(width))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = pool_frames(x, self.pool, self.dims)
        return self.fc((x - self.mu) / self.sigma * self.keep)


def stream_module(name: str, **kwargs) -> nn.Module:
    """The feature module of stream ``name`` (its frozen weights resolved offline)."""
    from vidcat.models.streams import STREAMS

    if name not in STREAMS:
        raise VidcatError(f"unknown stream {name!r} ({' | '.join(STREAMS)})")
    return STREAMS[name](**kwargs)


class StreamFusion(nn.Module):
    """``forward(batch) -> (B, K)`` fused logits; :meth:`stream_log_probs` gives each stream's own."""

    def __init__(self, num_classes: int, streams: list[dict]):
        super().__init__()
        if not streams:
            raise VidcatError("the streams model needs at least one stream")
        self.names = [s["name"] for s in streams]
        self.features = nn.ModuleDict({s["name"]: stream_module(s["name"], **s.get("kwargs", {})) for s in streams})
        self.heads = nn.ModuleDict({s["name"]: LinearHead(num_classes, **s["head"]) for s in streams})
        self.stack = nn.Linear(len(streams) * num_classes, num_classes)
        with torch.no_grad():                      # until fitted: the plain sum of the streams' log-probabilities
            self.stack.weight.copy_(torch.eye(num_classes).repeat(1, len(streams)))
            self.stack.bias.zero_()
        for p in self.features.parameters():
            p.requires_grad_(False)

    @property
    def reads(self) -> tuple:
        """The data modalities the model's streams read."""
        return tuple(dict.fromkeys(k for f in self.features.values() for k in f.reads))

    def stream_log_probs(self, batch: dict) -> dict:
        """``{stream: (log-probabilities (B, K), present (B,))}``."""
        out = {}
        for name in self.names:
            feats, present = self.features[name](batch)
            out[name] = (F.log_softmax(self.heads[name](feats).float(), 1), present.float())
        return out

    def fuse(self, scores: dict) -> torch.Tensor:
        """The stacker on centred log-probabilities; an absent stream contributes zeros."""
        parts = [(lp - lp.mean(1, keepdim=True)) * present[:, None] for lp, present in
                 (scores[n] for n in self.names)]
        return self.stack(torch.cat(parts, 1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.fuse(self.stream_log_probs(batch))

    def feature_shapes(self) -> dict:
        """Per-sample shape of each stream's features (what :meth:`fused_head` takes)."""
        return {n: ((f.frames, f.feat_dim) if getattr(f, "per_frame", False) else (f.feat_dim,))
                for n, f in self.features.items()}

    def fused_head(self) -> nn.Module:
        """The part after the streams' feature modules, as a module of positional inputs: every stream's
        features, then every stream's presence (B,) -> fused logits (what ``vidcat export`` writes)."""
        return FusedHead(self)

    def state_dict(self, *args, **kwargs):
        """Heads and stacker only: the frozen encoders come from their offline weights."""
        sd = super().state_dict(*args, **kwargs)
        return type(sd)((k, v) for k, v in sd.items() if not k.startswith("features."))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        own = {k for k in super().state_dict() if not k.startswith("features.")}
        if strict:
            missing, extra = own - set(state_dict), {k for k in state_dict if not k.startswith("features.")} - own
            if missing or extra:
                raise RuntimeError(f"Error(s) in loading state_dict for StreamFusion: missing {sorted(missing)[:3]}, "
                                   f"unexpected {sorted(extra)[:3]}")
        sd = {k: v for k, v in state_dict.items() if not k.startswith("features.")}
        return super().load_state_dict(sd, strict=False, assign=assign)


class FusedHead(nn.Module):
    """``(features_1, ..., features_S, present_1, ..., present_S) -> fused logits`` of a :class:`StreamFusion`."""

    def __init__(self, model: StreamFusion):
        super().__init__()
        self.names, self.heads, self.stack = list(model.names), model.heads, model.stack

    def forward(self, *xs):
        s = len(self.names)
        parts = []
        for name, feats, present in zip(self.names, xs[:s], xs[s:]):
            lp = F.log_softmax(self.heads[name](feats).float(), 1)
            parts.append((lp - lp.mean(1, keepdim=True)) * present[:, None])
        return self.stack(torch.cat(parts, 1))


@register_model("streams", family="streams", modality=MULTI_STREAM, frames=8, size=160, sampler="tsn", temporal=True,
                mean=HALF_MEAN, std=HALF_STD, defaults={"modalities": ("video",)},
                paper="Wolpert 1992 (stacked generalisation); Wang et al. 2016 (TSN sampling); Tan & Le 2019 "
                      "(EfficientNet-Lite); Lugaresi et al. 2019 (MediaPipe)",
                description="every stream the video has (appearance, motion, pose, audio, text), a head each, "
                            "fused by stacking (the default)")
def streams(num_classes: int, streams: list | None = None, modalities=None, pretrained: bool = True) -> nn.Module:
    """``streams``: ``[{"name": "appearance", "kwargs": {...}, "head": {"in_dim": ..., "pool": ..., "dims": ...}},
    ...]`` as :mod:`vidcat.featurefit` writes it (default: the appearance stream alone, unfitted)."""
    if streams is None:
        streams = [{"name": "appearance", "head": {"in_dim": 3840, "pool": "trend", "dims": 1280}}]
    return StreamFusion(num_classes, list(streams))
