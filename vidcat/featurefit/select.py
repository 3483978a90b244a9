"""Choosing the default model on the user's own clips, and saying how sure we are.

For every stream a head is chosen by grouped cross-validation (:mod:`vidcat.featurefit.heads`). A stream
whose own out-of-fold accuracy is not above the majority class (one-sided binomial test, p >= 0.05) has no
signal on this data set: it is dropped, and not computed at predict time. The others are fused by stacking
(:mod:`vidcat.featurefit.fusion`): a weighted log-linear pool, or a full logistic regression where grouped CV
shows it better by more than one standard error (the 1-SE rule). The pool weighs each stream by what it
adds, so a weak stream gets a small weight instead of a vote as large as the best one's. Everything is refitted on every clip. The estimate of the
whole procedure is nested: it is repeated inside each outer grouped fold and scored on that fold's clips,
so it does not profit from the choices it makes. The per-stream table answers "which streams helped":
each stream alone, all fused, and all fused without each one, with 95 % intervals and CPU cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest
from threadpoolctl import threadpool_limits

from vidcat.data.splits import grouped_folds
from vidcat.featurefit import fusion as FU
from vidcat.featurefit import heads as H
from vidcat.metrics import wilson

SIGNAL_P = 0.05          # the p-value below which a stream alone is said to carry signal


@dataclass
class StreamInput:
    """One stream's cached features: ``x`` (N, V, D) clip views, ``present`` (N,) of the centre view,
    ``per_frame`` = (frames, dims of a frame) for per-frame streams, ``dims`` their head's candidate widths."""

    name: str
    x: np.ndarray
    present: np.ndarray
    per_frame: tuple | None = None
    dims: tuple = ()
    cpu_per_clip: float = 0.0

    def take(self, idx) -> "StreamInput":
        return StreamInput(self.name, self.x[idx], self.present[idx], self.per_frame, self.dims, self.cpu_per_clip)


@dataclass
class StreamHead:
    """A stream's chosen head: its parameters, the pipeline refitted on every present clip, its out-of-fold
    log-probabilities (N, K) (NaN rows where the stream is absent) and its candidates' scores."""

    name: str
    params: dict
    estimator: object
    oof: np.ndarray
    candidates: list = field(default_factory=list)
    correct: int = 0
    p_value: float = 1.0

    @property
    def signal(self) -> bool:
        return self.p_value < SIGNAL_P


def _present_folds(folds, present: np.ndarray) -> list:
    return [(tr[present[tr]], te[present[te]]) for tr, te in folds]


def alone_correct(oof: np.ndarray, y: np.ndarray, folds) -> np.ndarray:
    """(N,) out-of-fold correctness of one stream alone; where it is absent, the training fold's majority class."""
    ok = np.zeros(len(y), bool)
    for tr, te in folds:
        guess = np.where(np.isnan(oof[te]).any(1), np.bincount(y[tr]).argmax(), np.nan_to_num(oof[te], nan=-1e9).argmax(1))
        ok[te] = guess == y[te]
    return ok


def fit_stream(inp: StreamInput, y: np.ndarray, folds, num_classes: int) -> StreamHead | None:
    """The chosen head of one stream, or None when too few clips have it."""
    pres = inp.present.astype(bool)
    pf = [(tr, te) for tr, te in _present_folds(folds, pres) if len(te) and len(np.unique(y[tr])) >= 2]
    if len(pf) < 2 or len(np.unique(y[pres])) < 2:
        return None
    gs = H.search(inp.x, y, pf, inp.per_frame, inp.dims)
    oof = H.oof_log_proba(gs.best_estimator_, inp.x, y, pf, num_classes)
    covered = np.concatenate([te for _, te in folds])
    ok = alone_correct(oof, y, folds)
    majority = float(np.bincount(y).max() / len(y))
    cands = [{"params": {k.split("__")[-1]: v for k, v in prm.items()}, "top1": round(float(m), 4),
              "se": round(float(s) / max(1, len(pf)) ** 0.5, 4)}
             for prm, m, s in zip(gs.cv_results_["params"], gs.cv_results_["mean_test_score"],
                                  gs.cv_results_["std_test_score"])]
    params = {k.split("__")[-1]: v for k, v in gs.best_params_.items()}
    k = int(ok[covered].sum())
    return StreamHead(inp.name, params, gs.best_estimator_, oof, cands, k,
                      float(binomtest(k, len(covered), majority, alternative="greater").pvalue))


@dataclass
class StreamsFit:
    """The fitted default: each stream's head, the fused streams, the stacker, the forward-selection path."""

    heads: dict
    chosen: tuple
    stacker: object
    path: list
    num_classes: int
    stacker_kind: str = "pool"
    oof_logits: np.ndarray | None = None     # (N, K) the chosen stacker's out-of-fold fused logits

    def log_probs(self, inputs: dict) -> dict:
        """``{stream: (N, K)}`` log-probabilities of the chosen streams (NaN rows where absent)."""
        out = {}
        for n in self.chosen:
            inp, head = inputs[n], self.heads[n]
            lp = np.full((len(inp.present), self.num_classes), np.nan)
            pres = inp.present.astype(bool)
            if pres.any():
                lp[pres] = H.log_proba(head.estimator, inp.x[pres, 0], self.num_classes)
            out[n] = lp
        return out

    def predict(self, inputs: dict) -> np.ndarray:
        return self.logits(inputs).argmax(1)

    def logits(self, inputs: dict) -> np.ndarray:
        """(N, K) uncalibrated fused logits; a class the stacker never saw sits 30 below the row's lowest."""
        d = self.stacker.decision_function(FU.stack_inputs(self.log_probs(inputs), self.chosen))
        if d.ndim == 1:                                  # a binary stacker: one margin for its second class
            d = np.stack([-d / 2, d / 2], 1)
        out = np.repeat(d.min(1, keepdims=True) - 30.0, self.num_classes, 1)
        out[:, self.stacker.classes_] = d
        return out


def fit_streams(inputs: dict, y: np.ndarray, folds, num_classes: int) -> StreamsFit | None:
    """Heads, stream choice and stacker on the clips of ``inputs`` (every stream the same N clips).

    BLAS runs single-threaded here: these are thousands of small fits, and idle BLAS threads spinning
    beside them made them an order of magnitude slower on a busy 2-core machine."""
    with threadpool_limits(1):
        return _fit_streams(inputs, y, folds, num_classes)


def _fit_streams(inputs: dict, y: np.ndarray, folds, num_classes: int) -> StreamsFit | None:
    heads = {n: h for n, h in ((n, fit_stream(inp, y, folds, num_classes)) for n, inp in inputs.items()) if h}
    if not heads:
        return None
    names = [n for n in inputs if n in heads and heads[n].signal] or [max(heads, key=lambda n: heads[n].correct)]
    step = FU.scored_step({n: heads[n].oof for n in names}, names, y, folds)
    oof = {n: heads[n].oof for n in step.names}
    stacker = FU.fit_stacker(FU.stack_inputs(oof, step.names), y, step.kind, num_classes)
    return StreamsFit(heads, tuple(step.names), stacker, [step], num_classes, step.kind,
                      FU.stacker_oof_logits(oof, step.names, y, folds, step.kind))


def nested_logits(inputs: dict, y: np.ndarray, groups: np.ndarray, folds, num_classes: int,
                  seed: int = 0, inner_k: int = 4) -> np.ndarray:
    """(N, K) fused logits of the whole procedure, re-run inside each outer fold on its training clips with
    ``inner_k`` grouped folds of its own. NaN rows: clips no fold tests, and those of a fold whose training
    part has too few groups to cross-validate (:func:`answers` gives them its majority class)."""
    z = np.full((len(y), num_classes), np.nan)
    for tr, te in folds:
        inner = grouped_folds(y[tr], groups[tr], inner_k, seed + 1)
        fit = fit_streams({n: inp.take(tr) for n, inp in inputs.items()}, y[tr], inner, num_classes) if inner else None
        if fit is not None:
            z[te] = fit.logits({n: inp.take(te) for n, inp in inputs.items()})
    return z


def answers(z: np.ndarray, y: np.ndarray, folds) -> np.ndarray:
    """(N,) the class each clip's logits pick; where its fold gave none, the majority class of that fold's
    training clips; -1 for clips no fold tests."""
    pred = np.full(len(y), -1)
    for tr, te in folds:
        pred[te] = np.bincount(y[tr]).argmax()
    scored = np.isfinite(z).all(1)
    pred[scored] = z[scored].argmax(1)
    return pred


def nested_correct(inputs: dict, y: np.ndarray, groups: np.ndarray, folds, num_classes: int,
                   seed: int = 0, inner_k: int = 4) -> np.ndarray:
    """(N,) correctness of the whole procedure (:func:`nested_logits`, :func:`answers`)."""
    return answers(nested_logits(inputs, y, groups, folds, num_classes, seed, inner_k), y, folds) == y


def _row(what: str, names, correct: np.ndarray, covered: np.ndarray, cpu: dict) -> dict:
    k, n = int(correct[covered].sum()), int(covered.sum())
    lo, hi = wilson(k, n)
    return {"row": what, "streams": list(names), "top1": round(k / n, 4) if n else None, "lo": round(lo, 4),
            "hi": round(hi, 4), "n": n, "cpu_s_per_clip": round(sum(cpu.get(s, 0.0) for s in names), 3)}


def stream_table(fit: StreamsFit, inputs: dict, y: np.ndarray, folds) -> list[dict]:
    """Each stream alone, all fused, and all fused without each one (grouped-CV top-1, Wilson 95 % CI,
    CPU seconds per clip of the streams involved)."""
    covered = np.zeros(len(y), bool)
    for _, te in folds:
        covered[te] = True
    cpu = {n: inp.cpu_per_clip for n, inp in inputs.items()}
    oof = {n: h.oof for n, h in fit.heads.items()}
    rows = [_row(f"{n} alone", [n], alone_correct(h.oof, y, folds), covered, cpu) | {"signal": h.signal}
            for n, h in fit.heads.items()]
    names = list(fit.heads)
    rows.append(_row("all fused", names, FU.stacker_correct(oof, names, y, folds)[1], covered, cpu))
    for n in names if len(names) > 1 else ():
        rest = [m for m in names if m != n]
        rows.append(_row(f"all fused without {n}", rest, FU.stacker_correct(oof, rest, y, folds)[1], covered, cpu))
    chosen = FU.stacker_correct(oof, list(fit.chosen), y, folds, fit.stacker_kind)[1]
    rows.append(_row(f"chosen ({fit.stacker_kind})", fit.chosen, chosen, covered, cpu))
    return rows
