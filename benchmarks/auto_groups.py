"""How well automatic grouping (vidcat.data.splits.near_duplicate_groups) recovers the corpus' real groups.

    python benchmarks/auto_groups.py      # the appearance features come from the store (benchmarks/real_data.py)

Pairs of clips from one source (UCF101: same class and gNN = one YouTube video; MLR511: one signer) should
share an automatic group (recall); pairs in one automatic group should share a source (precision). The
embedding is what ``vidcat train`` groups by: the centre view's mean global appearance features.
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import real_data as R  # noqa: E402
from corpus import load_corpus  # noqa: E402

from vidcat.data.splits import near_duplicate_groups  # noqa: E402


def pair_scores(auto: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of the same-group pairs of ``auto`` against those of ``truth``."""
    same, sa = truth[:, None] == truth[None, :], auto[:, None] == auto[None, :]
    np.fill_diagonal(same, False)
    np.fill_diagonal(sa, False)
    return (sa & same).sum() / max(sa.sum(), 1), (sa & same).sum() / max(same.sum(), 1)


def main() -> int:
    for e in load_corpus(None):
        if e["name"] not in ("ucf101-5", "mlr511-arsl"):
            continue
        inputs, _, labels, groups, _, _ = R.features(e, ("appearance",), None)
        app = inputs["appearance"]
        emb = app.x[:, 0, : app.per_frame[1] // 3]
        truth = groups * 100 + labels if e["name"] == "ucf101-5" else groups
        for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
            auto = near_duplicate_groups(emb, 5, threshold=t)
            prec, rec = pair_scores(auto, truth)
            print(e["name"], t, "groups", len(np.unique(auto)), "true", len(np.unique(truth)),
                  f"pair precision {prec:.2f} recall {rec:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
