"""One head per stream: scikit-learn pipelines on cached stream features, chosen by grouped CV.

Each stream's head is ``[a slice of the pooled per-frame features] -> standardise (near-constant features
zeroed) -> row space -> logistic regression``. The row space step is a linear-kernel :class:`~sklearn.decomposition.KernelPCA`
keeping every component: with far more features than clips an L2-penalised linear model's weights lie
in the span of the training rows, so fitting on the row-space coordinates gives exactly the model fitted
on all features, in a fraction of the time. :func:`linear_form` folds the fitted pipeline back into one
standardisation and one linear layer over the pooled features, which is what the ``streams`` model runs.

Candidates (regularisation strength; for the per-frame appearance stream also global vs positional
features) are scored by :class:`~sklearn.model_selection.GridSearchCV` on grouped folds whose training
side holds every view of its clips and whose test side holds each clip's centre view only; the refit is
:func:`one_se_refit`: the simplest candidate within one standard error of the best (Breiman's rule).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import KernelPCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from vidcat.models.streams.base import pool_frames

C_GRID = (0.01, 0.1, 1.0)
APPEARANCE_C = (0.01, 0.1)       # the appearance family chosen on the corpus (C >= 1 hurt there)


class GuardedScaler(StandardScaler):
    """Standardisation that zeroes features whose spread is below ``rel`` x the median spread: a near-constant
    feature (an exact-zero channel recomputed as ~1e-8) would otherwise be divided by ~1e-8 and get a huge
    weight. ``keep_`` marks the features used."""

    def __init__(self, rel: float = 1e-4):
        super().__init__()
        self.rel = rel

    def fit(self, x, y=None, sample_weight=None):
        super().fit(x, y, sample_weight)
        sd = np.sqrt(self.var_)
        floor = self.rel * float(np.median(sd[sd > 0])) if (sd > 0).any() else 1.0
        self.keep_ = sd > floor
        self.scale_ = np.where(self.keep_, self.scale_, np.inf)
        return self


class PooledSlice(TransformerMixin, BaseEstimator):
    """Rows of trend-pooled per-frame features ``[mean (F) | spread (F) | slope (F)]`` -> the same pooling of
    the first ``dims`` features of a frame only (global average features vs all positional ones): what
    :func:`vidcat.models.streams.base.pool_frames` gives for ``dims``, without pooling again."""

    def __init__(self, width: int = 0, dims: int = 0):
        self.width, self.dims = width, dims

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        w, d = self.width, self.dims or self.width
        return np.asarray(x)[:, np.concatenate([np.arange(k * w, k * w + d) for k in range(3)])]


def pool_views(x: np.ndarray, frames: int) -> np.ndarray:
    """(N, V, T x F) flattened per-frame features -> (N, V, 3F) trend-pooled, once for every candidate."""
    import torch

    n, v, d = x.shape
    per = torch.from_numpy(np.ascontiguousarray(x.reshape(n * v, frames, d // frames), dtype=np.float32))
    with torch.no_grad():
        return pool_frames(per, "trend").numpy().reshape(n, v, -1)


def head_pipeline(n_rows: int, n_features: int, per_frame: tuple | None = None) -> Pipeline:
    """The head of one stream. ``per_frame``: ``(frames, width of a frame)`` when rows are trend-pooled
    per-frame features (:func:`pool_views`) whose slice the candidates choose (the appearance stream)."""
    steps = [("pool", PooledSlice(per_frame[1], per_frame[1]) if per_frame else FunctionTransformer()),
             ("scale", GuardedScaler())]
    if n_features > n_rows:
        steps.append(("rows", KernelPCA(kernel="linear", eigen_solver="dense")))
    steps.append(("clf", LogisticRegression(C=0.1, max_iter=300, tol=1e-3)))
    return Pipeline(steps)


def one_se_refit(cv_results: dict) -> int:
    """GridSearchCV ``refit``: the first candidate (candidates are listed simplest first) whose mean score
    is within one standard error of the best mean."""
    means = np.asarray(cv_results["mean_test_score"], float)
    splits = [k for k in cv_results if k.startswith("split") and k.endswith("_test_score")]
    best = int(np.nanargmax(means))
    scores = np.array([cv_results[k][best] for k in splits], float)
    se = float(np.std(scores, ddof=1) / math.sqrt(len(scores))) if len(scores) > 1 else 0.0
    return int(np.flatnonzero(means >= means[best] - se - 1e-12)[0])


def candidate_grid(per_frame: tuple | None, appearance_dims: tuple = ()) -> list[dict]:
    """GridSearchCV candidates, simplest first (fewer features, then stronger regularisation)."""
    if per_frame:
        return [{"pool__dims": [d], "clf__C": [c]} for d in appearance_dims for c in APPEARANCE_C]
    return [{"clf__C": [c]} for c in C_GRID]


def row_folds(folds, views: int) -> list:
    """Clip folds -> row folds: training rows are every view of the training clips, test rows the centre
    view (view 0) of each test clip. Rows are clip-major: row = clip * views + view."""
    out = []
    for tr, te in folds:
        rows = (np.asarray(tr)[:, None] * views + np.arange(views)[None]).ravel()
        out.append((rows, np.asarray(te) * views))
    return out


def search(x: np.ndarray, y: np.ndarray, folds, per_frame: tuple | None = None, appearance_dims: tuple = ()):
    """A fitted GridSearchCV over this stream's candidates. ``x`` (N, V, D) clip views, ``y`` (N,)."""
    n, v, d = x.shape
    gs = GridSearchCV(head_pipeline(n * v, d, per_frame), candidate_grid(per_frame, appearance_dims),
                      cv=row_folds(folds, v), refit=one_se_refit, scoring="accuracy", n_jobs=1, error_score=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # lbfgs convergence, single-class folds: the 1-SE choice is what counts
        gs.fit(x.reshape(n * v, d), np.repeat(y, v))
    return gs


def fit_rows(est, x: np.ndarray, y: np.ndarray):
    """``est`` (unfitted) fitted on every view of every clip of ``x`` (N, V, D)."""
    n, v, d = x.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clone(est).fit(x.reshape(n * v, d), np.repeat(y, v))


def log_proba(est, x: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, K) log-probabilities of a fitted head on rows ``x`` (N, D); classes it never saw get -inf
    turned into a very low but finite value."""
    out = np.full((len(x), num_classes), -30.0)
    if len(x):
        with np.errstate(divide="ignore"):           # a probability of exactly 0 is log 0: clipped below
            lp = est.predict_log_proba(x)
        out[:, est.classes_] = np.maximum(lp, -30.0)
    return out


def oof_log_proba(est, x: np.ndarray, y: np.ndarray, folds, num_classes: int) -> np.ndarray:
    """Out-of-fold (N, K) log-probabilities of the centre views; clips in no test fold keep NaN rows."""
    out = np.full((len(y), num_classes), np.nan)
    for tr, te in folds:
        fitted = fit_rows(est, x[tr], y[tr])
        out[te] = log_proba(fitted, x[te, 0], num_classes)
    return out


def linear_form(est, in_dim: int, num_classes: int) -> dict:
    """The fitted pipeline as one standardisation and one linear layer over the pooled features:
    ``{"mu", "sigma", "keep" (in_dim,), "weight" (K, in_dim), "bias" (K,)}``, so that
    ``logits = weight @ ((x - mu) / sigma * keep) + bias`` equals the pipeline's decision function."""
    scale = est.named_steps["scale"]
    keep_mask = scale.keep_
    coef, icpt = est.named_steps["clf"].coef_, est.named_steps["clf"].intercept_
    if coef.shape[0] == 1:                                   # binary: sklearn keeps one row
        coef, icpt = np.concatenate([-coef / 2, coef / 2]), np.array([-icpt[0] / 2, icpt[0] / 2])
    rows = est.named_steps.get("rows")
    if rows is not None:           # coordinates = centred linear kernel against the training rows @ scaled alphas
        a = np.zeros_like(rows.eigenvectors_)
        nz = np.flatnonzero(rows.eigenvalues_)
        a[:, nz] = rows.eigenvectors_[:, nz] / np.sqrt(rows.eigenvalues_[nz])
        xfit, kc = rows.X_fit_, rows._centerer
        proj = coef @ a.T                                    # (K, n_train)
        w_z = proj @ (xfit - xfit.mean(0))
        icpt = icpt + proj @ (kc.K_fit_all_ - kc.K_fit_rows_)
    else:
        w_z = coef
    k = len(est.classes_)
    w_full, b_full = np.zeros((num_classes, in_dim)), np.full(num_classes, -30.0)
    w_full[est.classes_] = w_z[:k]
    b_full[est.classes_] = icpt[:k]
    mu, sigma = scale.mean_.astype(np.float64), np.where(keep_mask, scale.scale_, 1.0)
    return {"mu": mu, "sigma": sigma, "keep": keep_mask.astype(np.float64), "weight": w_full, "bias": b_full}
