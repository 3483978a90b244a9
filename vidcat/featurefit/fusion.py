"""Fusing streams without drowning any: stacking on out-of-fold log-probabilities.

Every stream has its own head, so a small stream (a few hundred pose or sound numbers) is never outweighed
by thousands of appearance features under one penalty. The stacker works on the streams' centred
out-of-fold log-probabilities (Wolpert's stacked generalisation): a weighted log-linear pool -- one weight
per stream and a bias per class, :class:`LogPool` -- which few labels can fit, or, where grouped CV shows it
is better by more than one standard error, a full logistic regression that can trust a stream for some
classes only. A stream that is missing for a clip contributes zeros, i.e. no evidence.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

STACK_C = 1.0
POOL_PENALTY = 1e-2     # L2 pull of the pool's weights towards 1 and its biases towards 0, per clip


class LogPool(ClassifierMixin, BaseEstimator):
    """A weighted log-linear pool: ``logits = sum_s w_s z_s + b`` over S blocks of K centred log-probabilities
    (``X`` is (N, S x K)), fitted by minimising cross-entropy with an L2 pull of ``w`` towards 1 (the plain
    product of the streams' probabilities) and of ``b`` towards 0."""

    def __init__(self, n_classes: int, penalty: float = POOL_PENALTY):
        self.n_classes, self.penalty = n_classes, penalty

    def _logits(self, x, w, b):
        z = x.reshape(len(x), -1, self.n_classes)
        return np.einsum("nsk,s->nk", z, w) + b

    def fit(self, x, y):
        x, y = np.asarray(x, float), np.asarray(y)
        s, k, n = x.shape[1] // self.n_classes, self.n_classes, len(y)
        onehot = np.eye(k)[y]
        z = x.reshape(n, s, k)

        def loss(theta):
            w, b = theta[:s], theta[s:]
            logits = self._logits(x, w, b)
            logits = logits - logits.max(1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(1, keepdims=True)
            nll = -np.log(np.maximum((p * onehot).sum(1), 1e-300)).mean()
            reg = self.penalty * (np.sum((w - 1) ** 2) + np.sum(b ** 2))
            g = (p - onehot) / n
            return nll + reg, np.concatenate([np.einsum("nk,nsk->s", g, z) + 2 * self.penalty * (w - 1),
                                              g.sum(0) + 2 * self.penalty * b])

        res = minimize(loss, np.concatenate([np.ones(s), np.zeros(k)]), jac=True, method="L-BFGS-B")
        self.weights_, self.bias_ = res.x[:s], res.x[s:]
        self.classes_ = np.arange(k)
        return self

    def decision_function(self, x):
        return self._logits(np.asarray(x, float), self.weights_, self.bias_)

    def predict(self, x):
        return self.decision_function(x).argmax(1)


def centred(logp: np.ndarray) -> np.ndarray:
    """(N, K) log-probabilities minus their per-clip mean; NaN rows (stream absent) become zeros."""
    out = logp - logp.mean(1, keepdims=True)
    return np.where(np.isfinite(out), out, 0.0)


def stack_inputs(oof: dict, names) -> np.ndarray:
    """(N, S x K) stacker input of streams ``names`` from ``{stream: (N, K) log-probabilities}``."""
    return np.concatenate([centred(oof[n]) for n in names], 1)


STACKERS = ("pool", "logreg")


def fit_stacker(z: np.ndarray, y: np.ndarray, kind: str = "pool", num_classes: int | None = None):
    """A fitted stacker on (N, S x K) inputs: ``pool`` (:class:`LogPool`) or ``logreg`` (full multinomial)."""
    if kind == "pool":
        return LogPool(num_classes or int(y.max()) + 1).fit(z, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=STACK_C, max_iter=1000).fit(z, y)


def stacker_correct(oof: dict, names, y: np.ndarray, folds, kind: str = "pool") -> tuple[list[float], np.ndarray]:
    """Grouped-CV accuracy of a stacker over streams ``names``: per-fold accuracies and the (N,)
    out-of-fold correctness (False for clips in no test fold)."""
    z, ok, accs = stack_inputs(oof, names), np.zeros(len(y), bool), []
    k = next(iter(oof.values())).shape[1]
    for tr, te in folds:
        if len(np.unique(y[tr])) < 2:
            continue
        ok[te] = fit_stacker(z[tr], y[tr], kind, k).predict(z[te]) == y[te]
        accs.append(float(ok[te].mean()))
    return accs, ok


def stacker_oof_logits(oof: dict, names, y: np.ndarray, folds, kind: str = "pool") -> np.ndarray:
    """(N, K) out-of-fold fused logits of a stacker over streams ``names`` (NaN rows for clips in no test fold):
    what calibration and the "none of these" threshold are fitted on."""
    z, k = stack_inputs(oof, names), next(iter(oof.values())).shape[1]
    out = np.full((len(y), k), np.nan)
    for tr, te in folds:
        if len(np.unique(y[tr])) < 2:
            continue
        clf = fit_stacker(z[tr], y[tr], kind, k)
        d = clf.decision_function(z[te])
        if d.ndim == 1:                                    # a binary logistic regression's one column
            d = np.stack([-d / 2, d / 2], 1)
        full = np.full((len(te), k), -30.0)
        full[:, clf.classes_] = d if d.shape[1] == len(clf.classes_) else d[:, clf.classes_]
        out[te] = full
    return out


def mean_se(accs: list[float]) -> tuple[float, float]:
    if not accs:
        return 0.0, 0.0
    se = float(np.std(accs, ddof=1) / math.sqrt(len(accs))) if len(accs) > 1 else 0.0
    return float(np.mean(accs)), se


@dataclass
class FusionStep:
    """One set of streams on the forward-selection path, its stacker and their grouped-CV score."""

    names: tuple
    accs: list
    correct: np.ndarray
    kind: str = "pool"

    @property
    def mean(self) -> float:
        return mean_se(self.accs)[0]

    @property
    def se(self) -> float:
        return mean_se(self.accs)[1]


def scored_step(oof: dict, names, y: np.ndarray, folds) -> FusionStep:
    """Streams ``names`` with the stacker grouped CV prefers: the pool unless the full logistic
    regression beats it by more than one standard error."""
    pool = FusionStep(tuple(names), *stacker_correct(oof, names, y, folds, "pool"), "pool")
    full = FusionStep(tuple(names), *stacker_correct(oof, names, y, folds, "logreg"), "logreg")
    return full if full.mean > pool.mean + pool.se else pool


def stacker_weights(clf, num_classes: int, n_streams: int) -> tuple[np.ndarray, np.ndarray]:
    """The fitted stacker as ``(weight (K, S x K), bias (K,))`` of the model's linear stacker; classes the
    stacker never saw get a very low bias."""
    if isinstance(clf, LogPool):
        return np.kron(clf.weights_[None, :], np.eye(num_classes)), clf.bias_.copy()
    coef, icpt = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:
        coef, icpt = np.concatenate([-coef / 2, coef / 2]), np.array([-icpt[0] / 2, icpt[0] / 2])
    w, b = np.zeros((num_classes, n_streams * num_classes)), np.full(num_classes, -30.0)
    w[clf.classes_], b[clf.classes_] = coef, icpt
    return w, b
