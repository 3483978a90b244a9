"""The space a ``streams`` model's heads read -- each chosen stream's features pooled as its head pools them,
streams side by side -- computed in the same pass as the fused logits, so a "none of these" rule can measure a
clip's distance to the class centroids without running the streams twice."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vidcat.models.stream_fusion import pool_frames


def is_streams_model(model) -> bool:
    """A :class:`~vidcat.models.stream_fusion.StreamFusion` (or anything shaped like one)."""
    return all(hasattr(model, a) for a in ("names", "features", "heads", "fuse"))


def head_space(model, feats: dict) -> torch.Tensor:
    """(B, D) the heads' inputs before standardisation: per-frame features (B, T, F) pooled by each head's
    own pooling and width, others as they are; streams in the model's order."""
    parts = []
    for name in model.names:
        x, head = feats[name], model.heads[name]
        parts.append((pool_frames(x, head.pool, head.dims) if head.pool is not None else x).float())
    return torch.cat(parts, 1)


def logits_and_space(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(fused logits (B, K), head space (B, D), presence (B, S))`` of a streams model in one pass (what
    ``forward`` gives, plus the features it computed on the way and which streams each clip has)."""
    feats, present = {}, {}
    for name in model.names:
        feats[name], present[name] = model.features[name](batch)
    return from_features(model, feats, present)


def from_features(model, feats: dict, present: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(fused logits, head space, presence (B, S))`` from each stream's features (B, ...) and presence (B,)
    (cached features: no encoder runs)."""
    scores = {n: (F.log_softmax(model.heads[n](feats[n]).float(), 1), present[n].float()) for n in model.names}
    presence = torch.stack([present[n].float() for n in model.names], 1)
    return model.fuse(scores), head_space(model, feats), presence
