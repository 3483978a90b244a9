""""None of these": scores that say a clip belongs to no known class, a threshold on them, and metrics.

Every unknown-score is larger for a clip that looks less like the known classes:

* ``msp``: 1 - the calibrated maximum softmax probability;
* ``energy``: -T logsumexp(logits / T) with the calibrated temperature T;
* ``mahalanobis``: distance to the nearest class centroid of standardised features under one shared
  covariance with Ledoit-Wolf shrinkage (stable when features outnumber clips);
* ``cosine``: 1 - cosine similarity to the nearest class centroid of standardised features.

:func:`choose_unknown_score` picks the family by evidence: each known class in turn plays the unknown, a
head and centroids are fitted by (grouped) folds on the other classes, and every family's AUROC of
held-out-class clips against the out-of-fold known clips is averaged over the classes. :func:`fit_threshold`
turns out-of-fold scores into the threshold (accept a prediction when its score <= threshold).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import logsumexp, softmax

from vidcat.errors import VidcatError
from vidcat.featurefit._common import (as_labels, as_logits, as_matrix, fraction, grouped_folds, one_of,
                                       positive_int)
from vidcat.featurefit.calibration import Calibrator, fit_temperature

FAMILIES = ("msp", "energy", "mahalanobis", "cosine")   # ties go to the earlier (simpler) family
LOGIT_FAMILIES = ("msp", "energy")


def msp_score(probs) -> np.ndarray:
    """1 - max probability (calibrated probabilities in, larger = less like a known class), summed
    over the other classes so that it does not round to 0 for confident clips."""
    p = as_matrix(probs, "probs")
    others = np.ones(p.shape, bool)
    others[np.arange(len(p)), p.argmax(axis=1)] = False
    return np.where(others, p, 0.0).sum(axis=1)


def energy_score(logits, temperature: float = 1.0) -> np.ndarray:
    """The energy -T logsumexp(logits / T): high where no class has a large logit."""
    z = as_logits(logits)
    return -temperature * logsumexp(z / temperature, axis=1)


@dataclass
class Centroids:
    """Class centroids of standardised features, and the distance of a clip to the nearest one."""

    metric: str
    mean: np.ndarray          # (D,) feature mean
    scale: np.ndarray         # (D,) feature std (1 where constant)
    centroids: np.ndarray     # (K, D) in standardised (cosine: unit-norm) coordinates
    # mahalanobis: the shrunk within-class covariance as its eigenvectors with variance > floor
    # (components (r, D), variances (r,)) and floor, the variance of every other direction
    components: np.ndarray | None = None
    variances: np.ndarray | None = None
    floor: float = 0.0

    def _standardise(self, features) -> np.ndarray:
        z = (as_matrix(features, "features") - self.mean) / self.scale
        if z.shape[1] != self.centroids.shape[1]:
            raise VidcatError(f"features have {z.shape[1]} dimensions, the centroids {self.centroids.shape[1]}")
        return z

    def score(self, features) -> np.ndarray:
        """Distance of each clip to its nearest class centroid (N,)."""
        z = self._standardise(features)
        if self.metric == "cosine":
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
            return 1.0 - (z @ self.centroids.T).max(axis=1)
        v, c = z @ self.components.T, self.centroids @ self.components.T       # in the components' span
        d2 = cdist(v / np.sqrt(self.variances), c / np.sqrt(self.variances), "sqeuclidean")
        if self.floor > 0:   # the rest of the space, variance ``floor`` in every direction
            rest = cdist(z, self.centroids, "sqeuclidean") - cdist(v, c, "sqeuclidean")
            d2 = d2 + np.maximum(rest, 0.0) / self.floor
        return np.sqrt(d2.min(axis=1))

    def to_state(self) -> dict:
        """Arrays and names to save (e.g. ``np.savez``); :meth:`from_state` rebuilds the centroids."""
        out = {"metric": self.metric, "mean": self.mean, "scale": self.scale, "centroids": self.centroids}
        if self.components is not None:
            out.update(components=self.components, variances=self.variances, floor=self.floor)
        return out

    @classmethod
    def from_state(cls, d: dict) -> "Centroids":
        arr = {k: np.asarray(d[k], np.float64) for k in ("mean", "scale", "centroids", "components", "variances")
               if d.get(k) is not None}
        return cls(str(d["metric"]), floor=float(d.get("floor", 0.0)), **arr)


def fit_centroids(features, labels, metric: str = "mahalanobis") -> Centroids:
    """Centroids of each class of ``features`` (N, D) after standardising; Mahalanobis uses one
    within-class covariance shrunk by Ledoit-Wolf."""

    one_of(metric, ("mahalanobis", "cosine"), "centroid metric")
    x = as_matrix(features, "features")
    y = as_labels(labels, len(x))
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    classes = np.unique(y)
    if metric == "cosine":
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    cents = np.stack([z[y == c].mean(0) for c in classes])
    if metric == "cosine":
        cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
        return Centroids(metric, mean, scale, cents)
    return Centroids(metric, mean, scale, cents, *_shrunk_covariance(z - cents[np.searchsorted(classes, y)]))


def _small_gram(x: np.ndarray) -> np.ndarray:
    """The smaller of ``x @ x.T`` (N x N) and ``x.T @ x`` (D x D)."""
    return x @ x.T if len(x) < x.shape[1] else x.T @ x


def ledoit_wolf_shrinkage(x: np.ndarray, gram: np.ndarray | None = None) -> float:
    """scikit-learn's ``ledoit_wolf_shrinkage(x, assume_centered=True)`` from the smaller Gram matrix
    (:func:`_small_gram`, computed when not given): its two sums over D x D products are sums over either
    (<X2.T, X2> = sum_i |x_i|^4, |X.T X|_F = |X X.T|_F), so the cost is N^2 D instead of N D^2 when N < D --
    with thousands of pooled features, most of ``vidcat train``'s time went there."""
    n, d = x.shape
    gram = _small_gram(x) if gram is None else gram
    sq = np.einsum("ij,ij->i", x, x)               # |x_i|^2
    mu = sq.sum() / (n * d)
    delta_ = float((gram ** 2).sum()) / n ** 2
    beta = (float((sq ** 2).sum()) / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * sq.sum() / n + d * mu ** 2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def _shrunk_covariance(resid: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Ledoit-Wolf shrinkage of the covariance S of ``resid`` (N, D) toward mu * I, kept low-rank: the
    eigenvectors of S with non-zero variance s (from the smaller of the N x N and D x D Gram matrices),
    variances (1 - a) s + a mu, and ``floor`` a mu in every other direction (0 when they span the space)."""
    n, d = resid.shape
    gram = _small_gram(resid)
    a = ledoit_wolf_shrinkage(resid, gram)
    mu = float((resid ** 2).sum() / (n * d))
    tiny = 1e-10 * max(mu, 1e-12)
    s, vecs = np.linalg.eigh(gram / n)
    keep = s > tiny
    if n < d:
        vt = (vecs[:, keep].T @ resid) / np.sqrt(n * s[keep])[:, None]
    else:
        vt = vecs[:, keep].T
    floor = a * mu if keep.sum() < d and a * mu > tiny else 0.0
    return vt, (1 - a) * s[keep] + a * mu, floor


def default_head():
    """The stand-in head of the held-out-class simulation: standardise + logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))


def _head_logits(head, x: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, num_classes) logits of a fitted head; a class its fold never saw gets a logit far below the rest."""
    z = as_logits(head.decision_function(x), "head decision values")
    seen = np.asarray(head.classes_, dtype=np.int64)
    if len(seen) == num_classes:
        return z
    out = np.repeat(z.min(axis=1, keepdims=True) - 30.0, num_classes, axis=1)
    out[:, seen] = z
    return out


def family_scores(family: str, logits=None, features=None, temperature: float = 1.0,
                  centroids: Centroids | None = None) -> np.ndarray:
    """One family's unknown-scores from (uncalibrated) ``logits`` with ``temperature``, or from
    ``features`` with fitted ``centroids``."""
    one_of(family, FAMILIES, "unknown-score family")
    if family == "msp":
        return msp_score(softmax(as_logits(logits) / temperature, axis=1))
    if family == "energy":
        return energy_score(logits, temperature)
    return centroids.score(features)


def _simulate_one(x, y, groups, held: int, families, folds: int, make_head, seed: int) -> dict:
    """AUROC per family with class ``held`` playing the unknown ({} when no fold can be fitted)."""
    from sklearn.metrics import roc_auc_score

    known, unknown = np.flatnonzero(y != held), np.flatnonzero(y == held)
    yk = np.searchsorted(np.unique(y[known]), y[known])
    splits = grouped_folds(yk, None if groups is None else np.asarray(groups)[known], folds, seed)
    splits = [(tr, te) for tr, te in splits if len(np.unique(yk[tr])) >= 2]   # a head needs two classes
    if not splits:
        return {}
    k = int(yk.max()) + 1
    parts = {f: ([], []) for f in families}
    logits_k, logits_u = [], []
    for tr, te in splits:
        head = make_head().fit(x[known[tr]], yk[tr])
        logits_k.append(_head_logits(head, x[known[te]], k))
        logits_u.append(_head_logits(head, x[unknown], k))
        for f in set(families) - set(LOGIT_FAMILIES):
            c = fit_centroids(x[known[tr]], yk[tr], f)
            parts[f][0].append(c.score(x[known[te]]))
            parts[f][1].append(c.score(x[unknown]))
    t = fit_temperature(np.concatenate(logits_k), np.concatenate([yk[te] for _, te in splits]))
    for f in set(families) & set(LOGIT_FAMILIES):
        parts[f] = ([family_scores(f, z, temperature=t) for z in logits_k],
                    [family_scores(f, z, temperature=t) for z in logits_u])
    out = {}
    for f, (ks, us) in parts.items():
        ks, us = np.concatenate(ks), np.concatenate(us)
        out[f] = float(roc_auc_score(np.r_[np.zeros(len(ks)), np.ones(len(us))], np.r_[ks, us]))
    return out


@dataclass
class OpenSetChoice:
    """The chosen family and the evidence: mean AUROC per family, and per held-out class."""

    family: str
    auroc: dict[str, float]
    per_class: dict[int, dict[str, float]] = field(default_factory=dict)


def choose_unknown_score(features, labels, groups=None, families=FAMILIES, folds: int = 3, make_head=None,
                         seed: int = 0) -> OpenSetChoice:
    """Pick the unknown-score family with the best mean AUROC of held-out-class simulation.

    Each class with clips in turn is removed from training; ``make_head()`` (default :func:`default_head`,
    any scikit-learn classifier with ``decision_function``) and the centroids are fitted by (grouped)
    folds on the other classes; the held-out class's clips must score above the known clips' out-of-fold
    scores. Needs at least three classes; ties go to the earlier family in ``families``.
    """
    x = as_matrix(features, "features")
    y = as_labels(labels, len(x))
    for f in families:
        one_of(f, FAMILIES, "unknown-score family")
    positive_int(folds, "folds", 2)
    present = np.unique(y)
    if len(present) < 3:
        raise VidcatError(f"choosing an unknown-score needs at least 3 classes, the data has {len(present)}")
    per_class = {}
    for c in present:
        res = _simulate_one(x, y, groups, int(c), tuple(families), folds, make_head or default_head, seed)
        if res:
            per_class[int(c)] = res
    if not per_class:
        raise VidcatError("choosing an unknown-score needs at least 2 groups (or clips) per class to fold on")
    mean = {f: float(np.mean([r[f] for r in per_class.values()])) for f in families}
    best = max(families, key=lambda f: (round(mean[f], 6), -families.index(f)))
    return OpenSetChoice(best, mean, per_class)


def oof_centroid_scores(features, labels, groups=None, metric: str = "mahalanobis", folds: int = 5,
                        seed: int = 0) -> np.ndarray:
    """Out-of-fold centroid distances of the training clips (in-sample distances are optimistic and
    would set too tight a threshold); in-sample only where no folds are possible."""
    x = as_matrix(features, "features")
    y = as_labels(labels, len(x))
    out = np.zeros(len(x))
    splits = grouped_folds(y, groups, folds, seed)
    for tr, te in splits:
        out[te] = fit_centroids(x[tr], y[tr], metric).score(x[te])
    if not splits:
        out = fit_centroids(x, y, metric).score(x)
    return out


@dataclass
class Threshold:
    """Accept a prediction when its unknown-score <= ``value``; what that gives on the fitting data."""

    value: float
    precision: float          # correct accepted known clips / all accepted clips (negatives included)
    coverage: float           # accepted known clips / known clips
    met: bool                 # the target was reachable (else: the most precise threshold)
    target: str               # e.g. "min_precision 0.95", "coverage 0.9"
    negatives_accepted: float | None = None   # share of the negatives accepted (None: no negatives)


def _cuts(scores, correct, negatives):
    """Cumulative counts at every distinct score, ascending: (values, known accepted, correct, negatives accepted)."""
    s = np.r_[scores, negatives]
    is_known = np.r_[np.ones(len(scores)), np.zeros(len(negatives))]
    good = np.r_[np.asarray(correct, np.float64), np.zeros(len(negatives))]
    order = np.argsort(s, kind="stable")
    s, is_known, good = s[order], is_known[order], good[order]
    last = np.r_[s[1:] != s[:-1], True]               # the last position of each distinct value
    return s[last], np.cumsum(is_known)[last], np.cumsum(good)[last], np.cumsum(1 - is_known)[last]


def fit_threshold(scores, correct, min_precision: float | None = None, coverage: float | None = None,
                  negative_scores=None) -> Threshold:
    """The threshold on out-of-fold unknown-``scores`` of known clips (``correct``: their prediction was
    right) with the most coverage whose precision is >= ``min_precision`` and coverage <= ``coverage``.

    Either target alone or both (coverage then caps the accepted share, leaving room for unknowns a
    precision target on known clips alone cannot see). ``negative_scores`` (clips known to be none of
    the classes) count as wrong predictions wherever they are accepted, so they pull the threshold down.
    The value is the last accepted score: the rule accepts exactly the clips it accepted here.
    """
    min_precision = fraction(min_precision, "min_precision")
    coverage = fraction(coverage, "coverage")
    if min_precision is None and coverage is None:
        raise VidcatError("a threshold needs min_precision or coverage (or both)")
    s = as_matrix(scores, "scores")[:, 0]
    ok = np.asarray(correct, bool).reshape(-1)
    if ok.shape != s.shape:
        raise VidcatError(f"correct has {ok.size} values, scores {s.size}")
    neg = np.zeros(0) if negative_scores is None else as_matrix(negative_scores, "negative_scores")[:, 0]
    values, known, good, negs = _cuts(s, ok, neg)
    precision = good / np.maximum(known + negs, 1)
    cover = known / len(s)
    feasible = (known > 0) & (precision >= (min_precision or 0) - 1e-12) & (cover <= (coverage or 1) + 1e-12)
    met = bool(feasible.any())
    if met:   # most coverage; among equal coverage the lowest cut (fewest negatives)
        i = int(np.flatnonzero(feasible & (cover == cover[feasible].max()))[0])
    else:     # most precise; among equally precise the most coverage
        i = int(np.flatnonzero(precision == precision[known > 0].max())[-1])
    value = float(values[i])
    target = " and ".join(f"{n} {v:g}" for n, v in (("min_precision", min_precision), ("coverage", coverage))
                          if v is not None)
    neg_acc = float((neg <= value).mean()) if len(neg) else None
    return Threshold(value, float(precision[i]), float(cover[i]), met, target, neg_acc)


def openset_metrics(known_scores, known_correct, unknown_scores, threshold: float) -> dict:
    """AUROC of unknown vs known clips, and at ``threshold``: precision of the accepted predictions
    (accepted unknowns are wrong), coverage of the known clips and the share of unknowns flagged."""
    from sklearn.metrics import roc_auc_score

    ks = as_matrix(known_scores, "known_scores")[:, 0]
    us = as_matrix(unknown_scores, "unknown_scores")[:, 0]
    ok = np.asarray(known_correct, bool).reshape(-1)
    acc_k, acc_u = ks <= threshold, us <= threshold
    n_acc = int(acc_k.sum() + acc_u.sum())
    return {"auroc": float(roc_auc_score(np.r_[np.zeros(len(ks)), np.ones(len(us))], np.r_[ks, us])),
            "precision": float((ok & acc_k).sum() / n_acc) if n_acc else float("nan"),
            "coverage": float(acc_k.mean()), "unknown_flagged": float(1.0 - acc_u.mean()),
            "threshold": float(threshold)}


@dataclass
class UnknownDetector:
    """A fitted "none of these" rule: family, calibrator, centroids (distance families) and threshold."""

    family: str
    calibrator: Calibrator
    threshold: Threshold
    centroids: Centroids | None = None

    def scores(self, logits=None, features=None) -> np.ndarray:
        """Unknown-scores of clips from the head's raw ``logits`` or the clips' ``features``."""
        if self.family not in LOGIT_FAMILIES:
            return self.centroids.score(features)
        if self.calibrator.kind == "temperature":
            return family_scores(self.family, logits, temperature=self.calibrator.temperature)
        return family_scores(self.family, self.calibrator.logits(logits))

    def is_unknown(self, logits=None, features=None) -> np.ndarray:
        return self.scores(logits, features) > self.threshold.value

    def to_state(self) -> dict:
        """JSON-able settings plus, for distance families, the centroid arrays under ``"centroids"``."""
        return {"family": self.family, "calibrator": self.calibrator.to_dict(), "threshold": asdict(self.threshold),
                "centroids": None if self.centroids is None else self.centroids.to_state()}

    @classmethod
    def from_state(cls, d: dict) -> "UnknownDetector":
        return cls(d["family"], Calibrator.from_dict(d["calibrator"]), Threshold(**d["threshold"]),
                   None if d.get("centroids") is None else Centroids.from_state(d["centroids"]))


def fit_unknown_detector(family: str, calibrator: Calibrator, labels, oof_logits=None, features=None,
                         groups=None, min_precision: float | None = None, coverage: float | None = None,
                         negative_logits=None, negative_features=None, folds: int = 5) -> UnknownDetector:
    """Fit the detector of ``family`` on the training clips: out-of-fold scores (logits through the
    ``calibrator``; centroid distances by grouped folds) set the threshold (:func:`fit_threshold`), and
    the centroids are refitted on all clips. A clip counts as correct when its calibrated out-of-fold
    prediction is (all do when a distance family gets no ``oof_logits``). Negatives are scored by the
    final model's logits / the clips' features."""
    one_of(family, FAMILIES, "unknown-score family")
    y = np.asarray(labels)
    if family in LOGIT_FAMILIES:
        z = as_logits(oof_logits, "oof_logits")
        y = as_labels(y, len(z), z.shape[1])
        correct, centroids, known = calibrator.logits(z).argmax(1) == y, None, None
    else:
        x = as_matrix(features, "features")
        y = as_labels(y, len(x))
        correct = np.ones(len(x), bool) if oof_logits is None else calibrator.logits(oof_logits).argmax(1) == y
        known = oof_centroid_scores(x, y, groups, family, folds)
        centroids = fit_centroids(x, y, family)
    det = UnknownDetector(family, calibrator, Threshold(np.inf, 1.0, 1.0, True, ""), centroids)
    if known is None:
        known = det.scores(z)
    neg = None
    if negative_logits is not None or negative_features is not None:
        neg = det.scores(negative_logits, negative_features)
    det.threshold = fit_threshold(known, correct, min_precision, coverage, neg)
    return det
