"""Shared by the featurefit modules: one-line VidcatErrors for bad arrays, and their grouped folds."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidcat.errors import VidcatError


def as_matrix(x, name: str, rows: int | None = None) -> np.ndarray:
    """``x`` as a finite float64 (N, D) array (a 1-D array is one column); ``rows`` checks N."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise VidcatError(f"{name} must be a non-empty (N, D) array, not shape {a.shape}")
    if rows is not None and a.shape[0] != rows:
        raise VidcatError(f"{name} has {a.shape[0]} rows, want {rows} (one per clip)")
    if not np.isfinite(a).all():
        raise VidcatError(f"{name} holds {int((~np.isfinite(a)).sum())} NaN/inf value(s)")
    return a


def as_labels(y, n: int, num_classes: int | None = None, name: str = "labels") -> np.ndarray:
    """``y`` as an int64 (n,) array of class indices in [0, num_classes)."""
    a = np.asarray(y)
    if a.shape != (n,) or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise VidcatError(f"{name} must be {n} integer class indices, not {a.dtype} of shape {a.shape}")
    a = a.astype(np.int64)
    hi = num_classes if num_classes is not None else (int(a.max()) + 1 if a.size else 0)
    if a.size and (a.min() < 0 or a.max() >= hi):
        raise VidcatError(f"{name} must lie in [0, {hi}), found {int(a.min())}..{int(a.max())}")
    return a


def as_logits(x, name: str = "logits", rows: int | None = None) -> np.ndarray:
    """(N, K) logits; a binary head's (N,) decision values become the two columns [0, d]."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = np.stack([np.zeros_like(a), a], axis=1)
    return as_matrix(a, name, rows)


def as_probs(x, name: str = "probs", rows: int | None = None) -> np.ndarray:
    """(N, K >= 2) probabilities (each in [0, 1])."""
    a = as_matrix(x, name, rows)
    if a.shape[1] < 2 or a.min() < 0 or a.max() > 1 + 1e-6:
        raise VidcatError(f"{name} must be (N, K >= 2) probabilities in [0, 1], not shape {a.shape} "
                          f"with values {a.min():.3g}..{a.max():.3g}")
    return a


def fraction(value, name: str, allow_none: bool = True) -> float | None:
    """A number in (0, 1] (None passes when allowed)."""
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise VidcatError(f"{name} must be a number in (0, 1], not {value!r}") from None
    if not 0.0 < v <= 1.0:
        raise VidcatError(f"{name} must be a number in (0, 1], not {value!r}")
    return v


def positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise VidcatError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def one_of(value, choices, name: str):
    if value not in choices:
        raise VidcatError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")
    return value


def grouped_folds(labels: np.ndarray, groups=None, n_splits: int = 5, seed: int = 0) -> list[tuple]:
    """:func:`vidcat.data.splits.grouped_folds` (each clip its own group when ``groups`` is None)."""
    from vidcat.data.splits import grouped_folds as folds

    labels = np.asarray(labels)
    return folds(labels, np.arange(len(labels)) if groups is None else groups, n_splits, seed, min_classes=1)


def manifest_path(path, manifest) -> str:
    """``path`` as a manifest row names it: relative to the ``manifest``'s folder when below it (so the
    folder can move as a whole), else absolute."""
    full, base = Path(os.fspath(path)).resolve(), Path(manifest).resolve().parent
    return full.relative_to(base).as_posix() if full.is_relative_to(base) else str(full)
