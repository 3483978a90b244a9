"""What every predictor shares, torch-free: class probabilities → the ``vidcat predict`` record.

:class:`Predictor` (torch), :class:`OnnxPredictor` (ONNX Runtime) and the Ray batch job all build
their records with :func:`make_record`, so they write the same ``{"path", "labels", "scores"}``
(or ``{"path", "error"}`` for a file that cannot be read).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidcat.errors import VideoError


def make_record(path, probs, classes: list[str], topk: int) -> dict:
    """``{"path", "labels", "scores"}``: the ``topk`` most probable classes, best first."""
    p = np.asarray(probs)
    order = np.argsort(-p, kind="stable")[: min(topk, len(classes))]
    return {"path": str(path), "labels": [classes[i] for i in order],
            "scores": [round(float(p[i]), 6) for i in order]}


def error_record(path, reason: str) -> dict:
    return {"path": str(path), "error": reason}


def probabilities(logits: np.ndarray, multilabel: bool, views: int = 1) -> np.ndarray:
    """(B*V, K) logits → (B, K) probabilities (sigmoid or softmax) averaged over ``views``."""
    x = np.asarray(logits, np.float32)
    if multilabel:
        p = 1.0 / (1.0 + np.exp(-x))
    else:
        e = np.exp(x - x.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    return p.reshape(-1, views, p.shape[-1]).mean(1)


class BasePredictor:
    """``__call__`` and ``predict_many`` over a subclass's ``scores(path, text) -> (K,) probabilities``."""

    classes: list[str]
    multilabel: bool
    topk: int = 5

    def scores(self, path, text: str | None = None):
        raise NotImplementedError

    def __call__(self, path, text: str | None = None) -> dict:
        return make_record(path, self.scores(path, text), self.classes, self.topk)

    def predict_many(self, paths, strict: bool = False):
        """Yield one record per video under ``paths`` (folders recurse); bad files yield ``error``."""
        from vidcat.io.video import find_videos

        for root in paths:
            files = find_videos(root) if Path(root).is_dir() else [Path(root)]
            for f in files:
                try:
                    yield self(f)
                except VideoError as e:
                    if strict:
                        raise
                    yield error_record(f, e.reason)
