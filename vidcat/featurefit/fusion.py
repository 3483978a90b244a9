"""Fusing streams without drowning any: stacking on out-of-fold log-probabilities.

Every stream has its own head, so a small stream (a few hundred pose or sound numbers) is never outweighed
by thousands of appearance features under one penalty. The stacker is a logistic regression on the
streams' centred out-of-fold log-probabilities (Wolpert's stacked generalisation); a stream that is
missing for a clip contributes zeros, i.e. no evidence. Which streams to fuse is decided by forward
selection scored by the same grouped folds, keeping the smallest set within one standard error of the best
(the 1-SE rule), so a stream with no signal on this data set is left out -- and not computed at predict time.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

STACK_C = 1.0


def centred(logp: np.ndarray) -> np.ndarray:
    """(N, K) log-probabilities minus their per-clip mean; NaN rows (stream absent) become zeros."""
    out = logp - logp.mean(1, keepdims=True)
    return np.where(np.isfinite(out), out, 0.0)


def stack_inputs(oof: dict, names) -> np.ndarray:
    """(N, S x K) stacker input of streams ``names`` from ``{stream: (N, K) log-probabilities}``."""
    return np.concatenate([centred(oof[n]) for n in names], 1)


def fit_stacker(z: np.ndarray, y: np.ndarray, C: float = STACK_C) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=C, max_iter=1000).fit(z, y)


def stacker_correct(oof: dict, names, y: np.ndarray, folds) -> tuple[list[float], np.ndarray]:
    """Grouped-CV accuracy of the stacker over streams ``names``: per-fold accuracies and the (N,)
    out-of-fold correctness (False for clips in no test fold)."""
    z, ok, accs = stack_inputs(oof, names), np.zeros(len(y), bool), []
    for tr, te in folds:
        if len(np.unique(y[tr])) < 2:
            continue
        ok[te] = fit_stacker(z[tr], y[tr]).predict(z[te]) == y[te]
        accs.append(float(ok[te].mean()))
    return accs, ok


def mean_se(accs: list[float]) -> tuple[float, float]:
    if not accs:
        return 0.0, 0.0
    se = float(np.std(accs, ddof=1) / math.sqrt(len(accs))) if len(accs) > 1 else 0.0
    return float(np.mean(accs)), se


@dataclass
class FusionStep:
    """One set of streams on the forward-selection path and its grouped-CV score."""

    names: tuple
    accs: list
    correct: np.ndarray

    @property
    def mean(self) -> float:
        return mean_se(self.accs)[0]

    @property
    def se(self) -> float:
        return mean_se(self.accs)[1]


def forward_path(oof: dict, candidates, y: np.ndarray, folds) -> list[FusionStep]:
    """Forward selection: start from the best single stream, add the stream that helps most, until every
    candidate is in. Ties go to the stream listed first (the cheaper one)."""
    chosen, left, path = [], list(candidates), []
    while left:
        steps = [FusionStep(tuple(chosen + [n]), *stacker_correct(oof, chosen + [n], y, folds)) for n in left]
        best = max(steps, key=lambda s: s.mean)
        path.append(best)
        chosen.append(best.names[-1])
        left.remove(best.names[-1])
    return path


def one_se_step(path: list[FusionStep]) -> FusionStep:
    """The smallest set on the path whose score is within one standard error of the best's."""
    best = max(path, key=lambda s: s.mean)
    return next(s for s in path if s.mean >= best.mean - best.se - 1e-12)


def stacker_weights(clf: LogisticRegression, num_classes: int, n_streams: int) -> tuple[np.ndarray, np.ndarray]:
    """The fitted stacker as ``(weight (K, S x K), bias (K,))`` of the model's linear stacker; classes the
    stacker never saw get a very low bias."""
    coef, icpt = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:
        coef, icpt = np.concatenate([-coef / 2, coef / 2]), np.array([-icpt[0] / 2, icpt[0] / 2])
    w, b = np.zeros((num_classes, n_streams * num_classes)), np.full(num_classes, -30.0)
    w[clf.classes_], b[clf.classes_] = coef, icpt
    return w, b
