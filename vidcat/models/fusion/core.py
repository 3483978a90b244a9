"""Multi-modal fusion of stream models (video, flow, audio, text, ...) with per-sample missing modalities.

A *stream* is any module with ``features(x) -> (B, feat_dim)``, an int ``feat_dim`` and a ``head``
(``forward = head(features(x))``); :func:`as_stream` makes one out of a plain classifier. The modes
(``late``, ``weighted``, ``concat``, ``gated``) are described in :mod:`vidcat.models.fusion`.

A mask of 0 removes a stream from a sample and the weights are renormalised over the rest; a sample
with no stream at all gets zero logits. ``modality_dropout`` drops present streams at random while
training (never all of a sample's streams) so the model learns to cope with missing ones.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.errors import VidcatError

FUSIONS = ("late", "weighted", "concat", "gated")
# Stream name -> batch key of its input; its presence mask is ``<key>_mask`` (B,) float, all 1 if absent.
STREAM_INPUTS = {"video": "video", "rgb": "video", "frames": "video", "flow": "flow", "mv": "mv",
                 "audio": "audio", "text": "text"}


def batch_key(stream: str) -> str:
    """Batch-dict key that holds a stream's input (unknown stream names are their own key)."""
    return STREAM_INPUTS.get(stream, stream)


def mask_key(stream: str) -> str:
    return f"{batch_key(stream)}_mask"


class _Adapter(nn.Module):
    """A classifier split at its last Linear: ``features`` is the rest of the network."""

    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body, self.head, self.feat_dim = body, head, head.in_features

    def features(self, x):
        return self.body(x).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def as_stream(model: nn.Module) -> nn.Module:
    """Return ``model`` if it already has ``features``/``feat_dim``, else wrap it: its last ``nn.Linear``
    (in module order) becomes ``head`` and is replaced in place by ``Identity``, so the rest gives features.
    """
    if callable(getattr(model, "features", None)) and isinstance(getattr(model, "feat_dim", None), int):
        return model
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not named:
        raise TypeError(f"{type(model).__name__} has neither features()/feat_dim nor a final nn.Linear")
    name, head = named[-1]
    parent = model.get_submodule(name.rpartition(".")[0])
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return _Adapter(model, head)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 restricted to ``mask`` 1 entries; rows with no 1 give all zeros."""
    e = torch.exp(scores - scores.max(dim=1, keepdim=True).values) * mask
    return e / e.sum(dim=1, keepdim=True).clamp_min(1e-12)


def _batch_size(batch: dict, names) -> int:
    for n in names:
        x = batch.get(batch_key(n))
        if x is not None:
            return len(x)
    raise ValueError(f"batch holds none of the streams' inputs {[batch_key(n) for n in names]}")


class FusionModel(nn.Module):
    """Fuse named streams; ``forward(batch) -> {"logits", "stream_logits", "weights", "mask"}``."""

    def __init__(self, streams: dict[str, nn.Module], num_classes: int, fusion: str = "late",
                 modality_dropout: float = 0.0, hidden: int = 256, proj_dim: int = 128, dropout: float = 0.2):
        super().__init__()
        if fusion not in FUSIONS:
            raise VidcatError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        self.names = list(streams)
        self.streams = nn.ModuleDict({n: as_stream(m) for n, m in streams.items()})
        self.fusion, self.modality_dropout, self.num_classes = fusion, modality_dropout, num_classes
        # Each stream keeps its own head when it already predicts num_classes (e.g. a pretrained model).
        self.heads = nn.ModuleDict({n: s.head if _is_head(s, num_classes) else nn.Linear(s.feat_dim, num_classes)
                                    for n, s in self.streams.items()})
        dims, S = [self.streams[n].feat_dim for n in self.names], len(self.names)
        if fusion == "weighted":  # learned jointly
            self.stream_weight = nn.Parameter(torch.zeros(S))
        elif fusion == "late":    # fixed (equal until tuned on a validation set)
            self.register_buffer("stream_weight", torch.zeros(S))
        elif fusion == "concat":
            self.mlp = nn.Sequential(nn.Linear(sum(dims) + S, hidden), nn.ReLU(inplace=True),
                                     nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        elif fusion == "gated":
            self.proj = nn.ModuleDict({n: nn.Sequential(nn.Linear(d, proj_dim), nn.LayerNorm(proj_dim))
                                       for n, d in zip(self.names, dims)})
            self.gate = nn.Sequential(nn.Linear(S * proj_dim + S, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, S))
            self.fused_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(proj_dim, num_classes))

    def _mask(self, batch: dict, B: int, drop) -> torch.Tensor:
        dev = next(self.parameters()).device
        cols = []
        for n in self.names:
            if n in drop or batch.get(batch_key(n)) is None:
                cols.append(torch.zeros(B, device=dev))
            else:
                m = batch.get(mask_key(n))
                cols.append(torch.ones(B, device=dev) if m is None else torch.as_tensor(m, device=dev).float().view(B))
        return torch.stack(cols, 1)

    def _drop_modalities(self, mask: torch.Tensor) -> torch.Tensor:
        """Zero each present stream with prob ``modality_dropout``; a sample that lost all keeps one."""
        kept = mask * (torch.rand_like(mask) >= self.modality_dropout).float()
        lost = (kept.sum(1) == 0) & (mask.sum(1) > 0)
        if lost.any():
            pick = torch.multinomial(mask[lost], 1).squeeze(1)
            kept[lost.nonzero().squeeze(1), pick] = 1.0
        return kept

    def forward_streams(self, batch: dict, drop=frozenset()) -> dict:
        """Fused prediction with the streams named in ``drop`` removed (e.g. ``{"audio"}`` for an ablation)."""
        B = _batch_size(batch, [n for n in self.names if n not in drop] or self.names)
        mask = self._mask(batch, B, set(drop))
        if self.training and self.modality_dropout > 0:
            mask = self._drop_modalities(mask)
        feats = {}
        for i, n in enumerate(self.names):
            if mask[:, i].any():  # a stream absent from the whole batch is not run at all
                feats[n] = self.streams[n].features(batch[batch_key(n)])
            else:
                feats[n] = torch.zeros(B, self.streams[n].feat_dim, device=mask.device)
        stream_logits = {n: self.heads[n](f) for n, f in feats.items()}
        present = (mask.sum(1, keepdim=True) > 0).float()
        weights = None
        if self.fusion in ("late", "weighted"):
            weights = _masked_softmax(self.stream_weight.float().expand(B, -1), mask)
            logits = sum(weights[:, i:i + 1] * stream_logits[n] for i, n in enumerate(self.names))
        elif self.fusion == "concat":
            x = torch.cat([feats[n] * mask[:, i:i + 1] for i, n in enumerate(self.names)] + [mask], 1)
            logits = self.mlp(x) * present
        else:  # gated
            proj = torch.stack([self.proj[n](feats[n]) for n in self.names], 1) * mask.unsqueeze(2)  # (B, S, P)
            weights = _masked_softmax(self.gate(torch.cat([proj.flatten(1), mask], 1)), mask)
            logits = self.fused_head((weights.unsqueeze(2) * proj).sum(1)) * present
        return {"logits": logits, "stream_logits": stream_logits, "weights": weights, "mask": mask}

    def forward(self, batch: dict) -> dict:
        return self.forward_streams(batch)

    @property
    def tunable(self) -> bool:
        """Late and weighted fusion have per-stream weights that ``vidcat fuse`` can tune."""
        return self.fusion in ("late", "weighted")

    def fusion_weights(self) -> list[float]:
        """Current per-stream weights (sum 1) in ``self.names`` order."""
        if not self.tunable:
            raise VidcatError(f"{self.fusion} fusion has no stream weights")
        return torch.softmax(self.stream_weight.detach().float(), 0).tolist()

    def set_fusion_weights(self, weights) -> None:
        w = torch.as_tensor(weights, dtype=torch.float32).clamp_min(1e-6)
        with torch.no_grad():
            self.stream_weight.copy_(torch.log(w / w.sum()))


def _is_head(stream: nn.Module, num_classes: int) -> bool:
    h = getattr(stream, "head", None)
    return isinstance(h, nn.Linear) and h.out_features == num_classes and h.in_features == stream.feat_dim


def stream_loss_terms(out: dict, target: torch.Tensor, loss_fn) -> list[torch.Tensor]:
    """Each stream's own loss on the samples where that stream is present (mask 1), for the trainer's
    auxiliary loss that keeps every stream predictive alone. ``loss_fn(logits, target)`` must return
    per-sample losses (``reduction="none"``); streams absent from the whole batch give no term."""
    terms = []
    mask = out.get("mask")
    for i, logits in enumerate(out["stream_logits"].values()):
        per_sample = loss_fn(logits, target)
        if per_sample.dim() > 1:
            per_sample = per_sample.mean(1)  # multi-label: mean over classes
        m = torch.ones_like(per_sample) if mask is None else mask[:, i].to(per_sample.dtype)
        if m.sum() > 0:
            terms.append((per_sample * m).sum() / m.sum())
    return terms


def build_fusion(streams: dict[str, str], num_classes: int, fusion: str = "late", stream_kw: dict | None = None,
                 **kw) -> FusionModel:
    """``build_fusion({"video": "tiny3d", "audio": "audio_cnn", "text": "text_hash"}, 10, "gated")``:
    each stream from the model registry (``stream_kw[name]``: its builder keywords)."""
    from vidcat.models.registry import create_model

    stream_kw = stream_kw or {}
    return FusionModel({n: create_model(m, num_classes, **stream_kw.get(n, {})) for n, m in streams.items()},
                       num_classes, fusion=fusion, **kw)
