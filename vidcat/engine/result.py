"""What a fit strategy hands back to the trainer, whichever way the model was fitted, and the history file
both strategies write."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from vidcat.io.store import atomic_open


@dataclass
class FitResult:
    """One run's outcome: per-epoch rows, the best score, steps that were skipped as non-finite, files
    that were skipped (unreadable) or damaged, and strategy-specific parts of the summary (``extra``)."""

    history: list
    best_score: float | None
    epochs_done: int
    nonfinite_steps: int = 0
    skipped: dict = field(default_factory=dict)
    damaged: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for h in history for k in h))
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)

