"""Classification metrics from scores: top-k, mean-class accuracy, confusion, mAP and GAP."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix


def single_label_metrics(scores: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """``scores`` (N, K) and integer ``labels`` (N,) → top1, top5, mean_class_acc, per_class, confusion."""
    k = len(classes)
    order = np.argsort(-scores, axis=1)
    pred = order[:, 0]
    top1 = float(np.mean(pred == labels)) if len(labels) else 0.0
    top5 = float(np.mean([labels[i] in order[i, :5] for i in range(len(labels))])) if len(labels) else 0.0
    cm = confusion_matrix(labels, pred, labels=list(range(k)))
    support = cm.sum(axis=1)
    per_class_acc = np.divide(np.diag(cm), support, out=np.zeros(k), where=support > 0)
    present = support > 0
    return {
        "top1": top1,
        "top5": top5,
        "mean_class_acc": float(per_class_acc[present].mean()) if present.any() else 0.0,
        "n": int(len(labels)),
        "per_class": {c: {"acc": float(per_class_acc[i]), "n": int(support[i])} for i, c in enumerate(classes)},
        "confusion": cm.tolist(),
    }


def global_average_precision(scores: np.ndarray, targets: np.ndarray, top_k: int = 20) -> float:
    """YouTube-8M GAP: AP over every video's top-k (video, class) predictions pooled together."""
    k = min(top_k, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    s = np.take_along_axis(scores, top, axis=1).ravel()
    hit = np.take_along_axis(targets, top, axis=1).ravel()
    order = np.argsort(-s)
    hit = hit[order]
    positives = targets.sum()
    if positives == 0:
        return 0.0
    precision = np.cumsum(hit) / np.arange(1, len(hit) + 1)
    return float((precision * hit).sum() / positives)


def multi_label_metrics(scores: np.ndarray, targets: np.ndarray, classes: list[str]) -> dict:
    """``scores`` (N, K) and multi-hot ``targets`` → mAP (over classes with positives), GAP, top1 hit rate."""
    has_pos = targets.sum(axis=0) > 0
    ap = average_precision_score(targets[:, has_pos], scores[:, has_pos], average=None) if has_pos.any() else []
    ap = np.atleast_1d(ap)
    top1 = float(np.mean(targets[np.arange(len(scores)), scores.argmax(1)])) if len(scores) else 0.0
    per_class, j = {}, 0
    for i, c in enumerate(classes):
        per_class[c] = {"ap": float(ap[j]) if has_pos[i] else None, "n": int(targets[:, i].sum())}
        j += int(has_pos[i])
    return {"top1": top1, "mAP": float(np.mean(ap)) if len(ap) else 0.0,
            "gap": global_average_precision(scores, targets), "n": int(len(scores)), "per_class": per_class}


def compute_metrics(scores: np.ndarray, labels: np.ndarray, classes: list[str], multilabel: bool) -> dict:
    if multilabel:
        return multi_label_metrics(scores, labels, classes)
    return single_label_metrics(scores, labels.astype(np.int64), classes)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials (95 % for z = 1.96)."""
    import math

    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)
