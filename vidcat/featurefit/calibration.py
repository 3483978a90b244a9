"""Calibrated probabilities from out-of-fold logits: temperature (or vector) scaling, ECE, reliability plot.

A linear head's softmax is usually over- or under-confident. Temperature scaling divides the logits by one
scalar T fitted to minimise the negative log-likelihood (NLL) of the out-of-fold logits; it never changes
the argmax. Vector scaling (a per-class scale and bias, 2K parameters) can also fix a per-class bias, and
:func:`fit_calibration` takes it only where its cross-validated NLL beats temperature scaling's. Logits may
be log-probabilities (softmax ignores a per-row shift), so stacked probabilities calibrate the same way.

Expected calibration error here is the top-label ECE over equal-width confidence bins (15 by default).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_softmax, softmax

from vidcat.featurefit._common import as_labels, as_logits, as_probs, grouped_folds, one_of, positive_int

METHODS = ("auto", "temperature", "vector")
ECE_BINS = 15
LOG_T_RANGE = (-5.0, 5.0)        # T between e^-5 and e^5
VECTOR_MARGIN = 0.01             # vector scaling must beat temperature's CV NLL by 1 % to be chosen


@dataclass
class Calibrator:
    """Maps logits to calibrated logits: ``logits * scale + bias`` (temperature: scale = 1/T, bias = 0)."""

    kind: str = "temperature"
    temperature: float = 1.0
    scale: np.ndarray | None = None      # (K,), vector scaling only
    bias: np.ndarray | None = None       # (K,), vector scaling only
    evidence: dict = field(default_factory=dict)   # cross-validated NLL per method, when compared

    def logits(self, logits) -> np.ndarray:
        z = as_logits(logits)
        if self.kind == "vector":
            return z * self.scale + self.bias
        return z / self.temperature

    def probs(self, logits) -> np.ndarray:
        return softmax(self.logits(logits), axis=1)

    def to_dict(self) -> dict:
        """JSON-able settings; :meth:`from_dict` rebuilds the calibrator."""
        out = {"kind": self.kind, "temperature": float(self.temperature), "evidence": self.evidence}
        if self.kind == "vector":
            out.update(scale=self.scale.tolist(), bias=self.bias.tolist())
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        vec = d.get("kind") == "vector"
        return cls(d.get("kind", "temperature"), float(d.get("temperature", 1.0)),
                   np.asarray(d["scale"], np.float64) if vec else None,
                   np.asarray(d["bias"], np.float64) if vec else None, dict(d.get("evidence", {})))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(``logits``)."""
    return float(-log_softmax(logits, axis=1)[np.arange(len(labels)), labels].mean())


def targets(labels: np.ndarray, k: int) -> np.ndarray:
    """Soft targets for fitting a calibrator: each label's one-hot smoothed by Laplace's rule of succession
    (1 / (n + 2) of its mass spread over the other classes). Out-of-fold logits that separate every clip
    would otherwise drive the temperature to 0 -- certainty that a few hundred clips cannot justify."""
    eps = 1.0 / (len(labels) + 2)
    t = np.full((len(labels), k), eps / max(k - 1, 1))
    t[np.arange(len(labels)), labels] = 1.0 - eps
    return t


def soft_nll(logits: np.ndarray, soft: np.ndarray) -> float:
    return float(-(log_softmax(logits, axis=1) * soft).sum(1).mean())


def fit_temperature(logits, labels) -> float:
    """The T > 0 minimising the (smoothed-target, :func:`targets`) NLL of softmax(logits / T), searched over
    log T (bounded, Brent)."""
    z = as_logits(logits)
    y = as_labels(labels, len(z), z.shape[1])
    soft = targets(y, z.shape[1])
    res = minimize_scalar(lambda s: soft_nll(z * np.exp(-s), soft), bounds=LOG_T_RANGE, method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def _vector_nll_and_grad(params: np.ndarray, z: np.ndarray, soft: np.ndarray):
    k = z.shape[1]
    a, b = params[:k], params[k:]
    logp = log_softmax(z * a + b, axis=1)
    diff = (np.exp(logp) - soft) / len(z)      # soft targets sum to 1 per row, so this is the exact gradient
    return float(-(logp * soft).sum() / len(z)), np.concatenate([(diff * z).sum(0), diff.sum(0)])


def fit_vector_scaling(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per-class scale and bias minimising the NLL of softmax(logits * scale + bias) (L-BFGS), started
    from the temperature-scaling solution."""
    z = as_logits(logits)
    y = as_labels(labels, len(z), z.shape[1])
    k = z.shape[1]
    t = fit_temperature(z, y)
    x0 = np.concatenate([np.full(k, 1.0 / t), np.zeros(k)])
    res = minimize(_vector_nll_and_grad, x0, args=(z, targets(y, k)), jac=True, method="L-BFGS-B")
    return res.x[:k].copy(), res.x[k:].copy()


def _fit(kind: str, z: np.ndarray, y: np.ndarray) -> Calibrator:
    if kind == "vector":
        scale, bias = fit_vector_scaling(z, y)
        return Calibrator("vector", 1.0, scale, bias)
    return Calibrator("temperature", fit_temperature(z, y))


def cross_validated_nll(logits, labels, groups=None, kind: str = "temperature", folds: int = 5,
                        seed: int = 0) -> float | None:
    """NLL of held-out logits after a ``kind`` calibrator fitted on the other folds (grouped when
    ``groups`` is given); None when fewer than two folds are possible."""
    z = as_logits(logits)
    y = as_labels(labels, len(z), z.shape[1])
    splits = grouped_folds(y, groups, folds, seed)
    if not splits:
        return None
    total = 0.0
    for tr, te in splits:
        total += nll(_fit(kind, z[tr], y[tr]).logits(z[te]), y[te]) * len(te)
    return total / len(z)


def fit_calibration(logits, labels, groups=None, method: str = "auto", folds: int = 5,
                    seed: int = 0) -> Calibrator:
    """Fit a calibrator on out-of-fold ``logits`` (N, K) and integer ``labels``.

    ``method="auto"`` compares temperature and vector scaling by cross-validated NLL (grouped by
    ``groups`` when given) and keeps vector scaling only when it is lower by more than
    :data:`VECTOR_MARGIN` (relative): one parameter is the safer bet on a few hundred clips.
    """
    one_of(method, METHODS, "calibration method")
    positive_int(folds, "folds", 2)
    z = as_logits(logits)
    y = as_labels(labels, len(z), z.shape[1])
    if method != "auto":
        return _fit(method, z, y)
    evidence = {kind: cross_validated_nll(z, y, groups, kind, folds, seed) for kind in ("temperature", "vector")}
    t, v = evidence["temperature"], evidence["vector"]
    kind = "vector" if t is not None and v is not None and v < t * (1 - VECTOR_MARGIN) else "temperature"
    cal = _fit(kind, z, y)
    cal.evidence = {f"cv_nll_{k}": (None if x is None else round(x, 5)) for k, x in evidence.items()}
    return cal


def reliability_table(probs, labels, bins: int = ECE_BINS) -> dict:
    """Per equal-width confidence bin: clip count, mean top-label confidence, accuracy (NaN when empty)."""
    p = as_probs(probs)
    y = as_labels(labels, len(p), p.shape[1])
    bins = positive_int(bins, "bins")
    conf, correct = p.max(1), (p.argmax(1) == y).astype(np.float64)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)   # (0, 1/bins] is bin 0
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, bins) / count
        accuracy = np.bincount(which, correct, bins) / count
    return {"edges": np.linspace(0, 1, bins + 1), "count": count, "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """Top-label ECE: sum over equal-width confidence bins of (bin share) x |accuracy - confidence|."""
    t = reliability_table(probs, labels, bins)
    seen = t["count"] > 0
    return float((t["count"][seen] / t["count"].sum() * np.abs(t["accuracy"] - t["confidence"])[seen]).sum())


def plot_reliability(path, labels, before, after, bins: int = ECE_BINS, title: str = "") -> Path:
    """Reliability diagrams of probabilities ``before`` and ``after`` calibration side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidcat.io.store import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharey=True)
    try:
        for ax, probs, name in zip(axes, (before, after), ("before", "after")):
            t = reliability_table(probs, labels, bins)
            centres, width = (t["edges"][:-1] + t["edges"][1:]) / 2, 1.0 / bins
            ax.bar(centres, np.nan_to_num(t["accuracy"]), width=width, edgecolor="k", label="accuracy")
            ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-label)",
                   title=f"{name}: ECE {expected_calibration_error(probs, labels, bins):.3f} ({bins} bins)")
        axes[0].set_ylabel("accuracy")
        axes[0].legend(loc="upper left")
        if title:
            fig.suptitle(title)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(path)
