"""What a fit strategy hands back to the trainer, whichever way the model was fitted, and the run files
(history, JSON) both strategies write."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from vidcat.io.store import atomic_open, atomic_write


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


def write_json(path: Path, obj) -> None:
    """Valid JSON (non-finite floats become null), written atomically."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    atomic_write(path, json.dumps(clean(obj), indent=2, default=str))
