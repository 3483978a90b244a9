"""Which unlabelled clips to label next: the uncertain ones, spread over the feature space.

Uncertainty is the margin between the two most probable classes (``1 - (p1 - p2)``) or the entropy of the
calibrated probabilities divided by log K, both in [0, 1]. Diversity: clips are picked greedily, each time
the clip with the largest ``uncertainty x redundancy weight`` where the weight ``1 - exp(-(d / s)^2)`` of
its distance d to the nearest clip already picked (standardised features) is near 0 for a near-duplicate
and near 1 beyond a few ``s``, with ``s`` the median nearest-neighbour distance among the unlabelled clips.
So the list starts at the most uncertain clip and a second clip like it waits until its uncertainty
outweighs a fresh one's. A clip that the model's "none of these" rule flags counts as fully uncertain: its
label may be a class the model does not know yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcat.data.manifest import write_manifest
from vidcat.errors import VidcatError
from vidcat.featurefit._common import as_matrix, as_probs, manifest_path, one_of, positive_int

KINDS = ("margin", "entropy")


@dataclass
class Suggestion:
    """One clip to label: its index, suggested class index, that class's probability, and why."""

    index: int
    label: int
    confidence: float
    uncertainty: float
    reason: str


def uncertainty(probs, kind: str = "margin") -> np.ndarray:
    """(N,) in [0, 1], larger = less sure: ``1 - (p1 - p2)`` (margin) or entropy / log K."""
    one_of(kind, KINDS, "uncertainty")
    p = as_probs(probs)
    if kind == "margin":
        top2 = np.sort(p, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    q = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(q)).sum(1) / np.log(p.shape[1])


def _spacing(z: np.ndarray) -> float:
    """Median distance of a clip to its nearest other clip (the scale of a near-duplicate)."""
    from sklearn.neighbors import NearestNeighbors

    if len(z) < 2:
        return 1.0
    dist, _ = NearestNeighbors(n_neighbors=2).fit(z).kneighbors(z)
    s = float(np.median(dist[:, 1]))
    return s if s > 0 else float(dist[:, 1].max()) or 1.0


def _reason(p: np.ndarray, kind: str, u: float, classes, near: float | None, flagged: bool = False) -> str:
    a, b = np.argsort(-p, kind="stable")[:2]
    name = (lambda i: classes[i]) if classes is not None else (lambda i: f"class {i}")
    value = p[a] - p[b] if kind == "margin" else u
    text = f"{kind} {value:.2f}: {name(a)} {p[a]:.2f} vs {name(b)} {p[b]:.2f}"
    if flagged:
        text = f"flagged unknown (none of the classes?); {text}"
    return text if near is None else f"{text}; {near:.1f} spacings from earlier picks"


def suggest_clips(probs, features=None, n: int = 20, kind: str = "margin", diversity: bool = True,
                  classes: list[str] | None = None, unknown=None) -> list[Suggestion]:
    """The ``n`` clips to label first, best first, from calibrated ``probs`` (N, K) of unlabelled clips
    and their ``features`` (N, D) (no features or ``diversity=False``: by uncertainty alone). ``unknown``
    (N,) marks clips a "none of these" rule flags: they count as fully uncertain (maybe a new class)."""
    p = as_probs(probs)
    n = min(positive_int(n, "n"), len(p))
    u = uncertainty(p, kind)
    flagged = np.zeros(len(p), bool) if unknown is None else np.asarray(unknown, bool).reshape(-1)
    if flagged.shape != (len(p),):
        raise VidcatError(f"unknown has {flagged.size} values, probs {len(p)} rows")
    u = np.where(flagged, 1.0, u)
    if features is None or not diversity:
        order = np.argsort(-u, kind="stable")[:n]
        return [Suggestion(int(i), int(p[i].argmax()), float(p[i].max()), float(u[i]),
                           _reason(p[i], kind, u[i], classes, None, flagged[i])) for i in order]
    x = as_matrix(features, "features", rows=len(p))
    z = (x - x.mean(0)) / np.where(x.std(0) > 1e-12, x.std(0), 1.0)
    s = _spacing(z)
    nearest = np.full(len(z), np.inf)
    picked, out = np.zeros(len(z), bool), []
    for _ in range(n):
        gain = np.where(picked, -np.inf, u * (1.0 - np.exp(-(nearest / s) ** 2)))
        i = int(np.argmax(gain))
        near = None if not out else float(nearest[i] / s)
        out.append(Suggestion(i, int(p[i].argmax()), float(p[i].max()), float(u[i]),
                              _reason(p[i], kind, u[i], classes, near, flagged[i])))
        picked[i] = True
        nearest = np.minimum(nearest, np.linalg.norm(z - z[i], axis=1))
    return out


def write_suggestions(path, clip_paths, suggestions: list[Suggestion], classes: list[str]) -> Path:
    """A CSV manifest ``path,label,confidence,rank,reason`` of the suggested clips, best first: ``label``
    holds the suggested class for the user to confirm or correct; vidcat reads it back as a dataset
    (the extra columns become item metadata)."""
    rows = []
    for rank, s in enumerate(suggestions, 1):
        if not 0 <= s.index < len(clip_paths) or not 0 <= s.label < len(classes):
            raise VidcatError(f"suggestion {rank} points at clip {s.index} / class {s.label}, outside the "
                              f"{len(clip_paths)} clips / {len(classes)} classes given")
        rows.append({"path": manifest_path(clip_paths[s.index], path),
                     "label": classes[s.label], "confidence": f"{s.confidence:.3f}", "rank": rank,
                     "reason": s.reason})
    return write_manifest(path, rows, ["path", "label", "confidence", "rank", "reason"])
