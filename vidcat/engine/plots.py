"""Figures written beside runs: training curves, confusion matrix, long-video timeline."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vidcat.io.store import atomic_path  # noqa: E402


def _save(fig, path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def plot_curves(history: list[dict], path) -> Path:
    """Loss and accuracy per epoch for train and (when present) validation."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [h["epoch"] for h in history]
    for key, ax in (("loss", ax_loss), ("top1", ax_acc)):
        for split in ("train", "val"):
            vals = [h.get(f"{split}_{key}") for h in history]
            if any(v is not None and v == v for v in vals):
                ax.plot(epochs, vals, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # multi-label runs have no top1 curve: no empty legend
            ax.legend()
    ax_acc.set_ylim(0, 1.02)
    return _save(fig, path)


def plot_confusion(confusion, classes: list[str], path, title: str = "") -> Path:
    cm = np.asarray(confusion)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * n, 1 + 0.45 * n))
    ax.imshow(cm, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def class_colours(n: int) -> list:
    """One distinct colour per class index (tab10, tab20, then evenly spaced hues)."""
    if n <= 10:
        return [plt.cm.tab10(i) for i in range(n)]
    if n <= 20:
        return [plt.cm.tab20(i) for i in range(n)]
    return [plt.cm.hsv(i / n) for i in range(n)]


def plot_timeline(times: np.ndarray, scores: np.ndarray, classes: list[str], path, top: int = 5,
                  cuts=()) -> Path:
    """Per-window class scores over a long video: score lines (the ``top`` classes by peak score, plus
    every class that is top-1 somewhere) above a band of the top-1 class, both in the same per-class
    colour, one legend; shot cuts as dashed lines."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    colours = class_colours(len(classes))
    winners = scores.argmax(1)
    keep = list(dict.fromkeys([*np.argsort(-scores.max(axis=0))[:top].tolist(), *np.unique(winners).tolist()]))
    fig, (ax, band) = plt.subplots(2, 1, figsize=(10, 4.4), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    for k in keep:
        ax.plot(times, scores[:, k], color=colours[k], lw=1.6, label=classes[k])
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    half = (times[1] - times[0]) / 2 if len(times) > 1 else 0.5
    band.imshow(winners[None], aspect="auto", cmap=ListedColormap(colours),
                norm=BoundaryNorm(np.arange(len(classes) + 1) - 0.5, len(classes)),
                extent=(times[0] - half, times[-1] + half, 0, 1), interpolation="nearest")
    for c in cuts:
        for a in (ax, band):
            a.axvline(c, color="0.35", ls="--", lw=0.9)
    band.set_yticks([])
    band.set_ylabel("top-1", rotation=0, ha="right", va="center")
    band.set_xlabel("time (s)")
    handles = [Patch(color=colours[k], label=classes[k]) for k in keep]
    if len(cuts):
        handles.append(plt.Line2D([], [], color="0.35", ls="--", lw=0.9, label="shot cut"))
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return _save(fig, path)
