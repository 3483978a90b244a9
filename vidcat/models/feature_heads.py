"""Light heads over cached per-frame features ``(B, T, D)`` → class logits; they train in seconds.

Kinds: ``mean`` (order-free), ``meanstd`` (order-free), ``tdiff`` (mean, mean |f(t+1) - f(t)| and the
SIGNED mean of f(t+1) - f(t): the last term flips with the direction of time), ``attn`` (attention
pooling with learned position embeddings), ``gru`` (1-layer GRU over time, LRCN on features) and
``tconv`` (two 1D convolutions over T, then mean+max), ``trend`` (mean, std and the least-squares
slope of each feature over time: signed like tdiff, but using every frame rather than the two ends). :func:`fit_logreg` is the scikit-learn
baseline on pooled features; it is folded into an equivalent torch head so every head saves alike.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.errors import VidcatError

POOLS = ("mean", "meanstd", "tdiff", "trend")
KINDS = POOLS + ("attn", "gru", "tconv")


def pool(x: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, T, D) → (B, k·D) for the order-free (mean, meanstd) and temporal-difference (tdiff) pools."""
    m = x.mean(1)
    if kind == "mean":
        return m
    if kind == "meanstd":
        return torch.cat([m, x.std(1, unbiased=False)], 1)
    if kind == "tdiff":
        d = x[:, 1:] - x[:, :-1] if x.shape[1] > 1 else torch.zeros_like(x)
        return torch.cat([m, d.abs().mean(1), d.mean(1)], 1)
    if kind == "trend":                       # least-squares slope over t: signed, uses every frame
        t = torch.arange(x.shape[1], dtype=x.dtype, device=x.device)
        t = (t - t.mean()) / ((t - t.mean()).pow(2).sum().clamp_min(1e-6))
        return torch.cat([m, x.std(1, unbiased=False), (x * t.view(1, -1, 1)).sum(1)], 1)
    raise VidcatError(f"unknown pooling {kind!r} ({' | '.join(POOLS)})")


class FeatureHead(nn.Module):
    """Standardise features with training statistics, then one of :data:`KINDS`."""

    def __init__(self, kind: str, feat_dim: int, num_classes: int, frames: int = 8, hidden: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        if kind not in KINDS:
            raise VidcatError(f"unknown head {kind!r} ({' | '.join(KINDS)})")
        self.kind, self.config = kind, dict(kind=kind, feat_dim=feat_dim, num_classes=num_classes,
                                            frames=frames, hidden=hidden, dropout=dropout)
        self.register_buffer("mu", torch.zeros(feat_dim))
        self.register_buffer("sigma", torch.ones(feat_dim))
        self.drop = nn.Dropout(dropout)
        if kind in POOLS:
            self.fc = nn.Linear(feat_dim * {"mean": 1, "meanstd": 2, "tdiff": 3, "trend": 3}[kind], num_classes)
        elif kind == "attn":
            self.pos = nn.Parameter(torch.zeros(frames, feat_dim))
            self.score = nn.Sequential(nn.Linear(feat_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
            self.fc = nn.Linear(feat_dim, num_classes)
        elif kind == "gru":
            self.proj = nn.Linear(feat_dim, hidden)
            self.rnn = nn.GRU(hidden, hidden, batch_first=True)
            self.fc = nn.Linear(hidden, num_classes)
        else:  # tconv
            self.conv = nn.Sequential(nn.Conv1d(feat_dim, hidden, 3, padding=1), nn.GELU(),
                                      nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU())
            self.fc = nn.Linear(2 * hidden, num_classes)

    def set_stats(self, feats: torch.Tensor) -> None:
        flat = feats.reshape(-1, feats.shape[-1]).float()
        self.mu.copy_(flat.mean(0))
        std = flat.std(0)
        self.sigma.copy_(std.clamp_min(float(std.mean()) * 1e-3 + 1e-30))   # scale-free: random-init nets give ~1e-9

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mu) / self.sigma
        if self.kind in POOLS:                        # pool first: dropout on T x fewer values
            return self.fc(self.drop(pool(x, self.kind)))
        x = self.drop(x)
        if self.kind == "attn":
            x = x + self.pos[: x.shape[1]]
            w = self.score(x).softmax(1)
            return self.fc((w * x).sum(1))
        if self.kind == "gru":
            _, h = self.rnn(F.gelu(self.proj(x)))
            return self.fc(h[-1])
        y = self.conv(x.transpose(1, 2))
        return self.fc(torch.cat([y.mean(2), y.amax(2)], 1))


def build_head(config: dict) -> FeatureHead:
    return FeatureHead(**config)


@dataclass
class HeadResult:
    head: FeatureHead
    epochs: int                       # epochs of the returned head
    val_acc: float | None = None      # on the held-out clips (None without a holdout)
    history: list = field(default_factory=list)


def _as_views(feats: torch.Tensor) -> torch.Tensor:
    return feats if feats.dim() == 4 else feats.unsqueeze(1)     # (N, V, T, D)


def holdout_split(labels: torch.Tensor, frac: float, seed: int, min_per_class: int = 2):
    """Stratified (train_idx, val_idx) over clips, or None when a class would hold out < ``min_per_class``."""
    if frac <= 0:
        return None
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in labels.unique().tolist():
        idx = rng.permutation(np.flatnonzero(labels.numpy() == c))
        k = int(round(len(idx) * frac))
        if k < min_per_class or len(idx) - k < 1:
            return None
        va += idx[:k].tolist()
        tr += idx[k:].tolist()
    return np.sort(tr), np.sort(va)


def _fit(head, x, y, epochs, lr, weight_decay, batch_size, seed, val=None, patience=0):
    """AdamW on (samples, T, D); with ``val`` = (xv, yv) keeps the best epoch by held-out loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, best_epoch, history, wait = float("inf"), None, epochs, [], 0
    for epoch in range(1, epochs + 1):
        head.train()
        for b in torch.randperm(len(x), generator=gen).split(batch_size):
            loss = F.cross_entropy(head(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val is None:
            continue
        head.eval()
        with torch.no_grad():
            logits = head(val[0])
            vloss = F.cross_entropy(logits, val[1]).item()
            vacc = (logits.argmax(1) == val[1]).float().mean().item()
        history.append((epoch, vloss, vacc))
        if vloss < best - 1e-4:
            best, best_state, best_epoch, wait = vloss, copy.deepcopy(head.state_dict()), epoch, 0
        else:
            wait += 1
            if patience and wait >= patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return best_epoch, history


def train_head(feats: torch.Tensor, labels: torch.Tensor, kind: str, num_classes: int | None = None,
               epochs: int = 60, lr: float = 2e-3, weight_decay: float = 5e-2, batch_size: int = 32,
               val_frac: float = 0.2, patience: int = 15, refit: bool = True, seed: int = 0,
               hidden: int = 128, dropout: float = 0.3) -> HeadResult:
    """Train one head on ``feats`` (N, T, D) or (N, V, T, D) (all V views are training samples).

    With enough clips a stratified ``val_frac`` of clips (all their views) is held out; training
    stops when its loss has not improved for ``patience`` epochs, then (``refit``) a fresh head is
    trained on every clip for the best epoch count. With too few clips (< 2 held-out clips per
    class) it trains ``epochs`` epochs on everything. Deterministic for a given ``seed``.
    """
    feats, labels = _as_views(feats).float(), torch.as_tensor(labels, dtype=torch.long)
    n, v, t, d = feats.shape
    num_classes = num_classes or int(labels.max()) + 1

    def fresh():
        torch.manual_seed(seed)
        h = FeatureHead(kind, d, num_classes, frames=t, hidden=hidden, dropout=dropout)
        return h

    def samples(idx):
        return feats[idx].reshape(-1, t, d), labels[idx].repeat_interleave(v)

    split = holdout_split(labels, val_frac, seed)
    if split is None:
        head = fresh()
        head.set_stats(feats)
        _fit(head, *samples(np.arange(n)), epochs, lr, weight_decay, batch_size, seed)
        return HeadResult(head, epochs)
    tr, va = split
    head = fresh()
    head.set_stats(feats[tr])
    best_epoch, history = _fit(head, *samples(tr), epochs, lr, weight_decay, batch_size, seed,
                               val=(feats[va, 0], labels[va]), patience=patience)
    val_acc = max((h for h in history if h[0] == best_epoch), default=(0, 0, None))[2]
    if refit:
        head = fresh()
        head.set_stats(feats)
        _fit(head, *samples(np.arange(n)), best_epoch, lr, weight_decay, batch_size, seed)
    return HeadResult(head, best_epoch, val_acc, history)


def fit_logreg(feats: torch.Tensor, labels: torch.Tensor, pool_kind: str = "tdiff", C: float = 1.0,
               num_classes: int | None = None) -> FeatureHead:
    """scikit-learn logistic regression on standardised pooled features, as an equivalent FeatureHead."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    feats, labels = _as_views(feats).float(), torch.as_tensor(labels, dtype=torch.long)
    n, v, t, d = feats.shape
    num_classes = num_classes or int(labels.max()) + 1
    x = pool(feats.reshape(-1, t, d), pool_kind).numpy().astype(np.float64)
    y = labels.repeat_interleave(v).numpy()
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=C, max_iter=3000).fit(scaler.transform(x), y)
    coef, bias = clf.coef_ / scaler.scale_, clf.intercept_ - (clf.coef_ * scaler.mean_ / scaler.scale_).sum(1)
    if coef.shape[0] == 1:                               # binary: sklearn keeps one row
        coef, bias = np.concatenate([-coef / 2, coef / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    full_w = np.zeros((num_classes, x.shape[1]))
    full_b = np.full(num_classes, -1e4)                  # classes absent from training never win
    full_w[clf.classes_], full_b[clf.classes_] = coef, bias
    head = FeatureHead(pool_kind, d, num_classes, frames=t, dropout=0.0)
    with torch.no_grad():
        head.fc.weight.copy_(torch.from_numpy(full_w).float())
        head.fc.bias.copy_(torch.from_numpy(full_b).float())
    return head.eval()


def fit_head(feats, labels, kind: str, num_classes: int | None = None, seed: int = 0, **kw) -> FeatureHead:
    """``logreg`` / ``logreg_<pool>`` → :func:`fit_logreg`, anything else → :func:`train_head`."""
    if kind.startswith("logreg"):
        return fit_logreg(feats, labels, kind.partition("_")[2] or "trend", num_classes=num_classes)
    return train_head(feats, labels, kind, num_classes=num_classes, seed=seed, **kw).head


@torch.no_grad()
def predict_proba(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    head.eval()
    return head(feats.float()).softmax(-1)
