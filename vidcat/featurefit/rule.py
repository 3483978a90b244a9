"""A default-model checkpoint's "none of these" rule, as predict, batch, serve, timeline, eval and suggest apply
it (torch-free).

The score is one of :mod:`vidcat.featurefit.openset`'s families, the one training chose
(:mod:`vidcat.featurefit.unknown`): ``msp`` from the probabilities, ``energy`` from the logits, ``mahalanobis``
/ ``cosine`` from the heads' pooled inputs (``space``), all of which the model computes in its one pass
(:func:`vidcat.models.inputs.predict_outputs`). The threshold is the checkpoint's own unless the options give
a target (``--min-precision``, ``--coverage``): then it is refitted from the out-of-fold scores the checkpoint
keeps, without retraining.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidcat.errors import VidcatError


@dataclass
class UnknownRule:
    """Answer ``unknown`` where the ``family`` score is above ``threshold``; what that gave on the
    out-of-fold clips (``precision``, ``coverage``) for the ``target``."""

    family: str
    threshold: float
    target: str
    precision: float
    coverage: float
    centroids: object = None        # vidcat.featurefit.openset.Centroids of the distance families
    blocks: list | None = None      # [[stream, width], ...]: the space's layout, by stream
    class_means: object = None      # (K, D) each class's mean (what a clip's absent stream is compared as)

    def scores(self, probs, evidence: dict | None = None) -> np.ndarray:
        """(B,) scores of (B, K) view-averaged probabilities, or of the ``evidence`` (``"energy"`` (B,),
        ``"space"`` (B, D)) the model gave beside them."""
        from vidcat.featurefit.openset import msp_score

        if self.family == "msp":
            return msp_score(np.atleast_2d(np.asarray(probs, np.float64)))
        key = "energy" if self.family == "energy" else "space"
        if not evidence or evidence.get(key) is None:
            raise VidcatError(f"this model's 'unknown' rule ({self.family}) needs the model's {key}, which this "
                              "backend does not give (predict with the checkpoint, or pass --no-unknown)")
        x = np.asarray(evidence[key], np.float64)
        if key == "energy":
            return x.reshape(-1)
        from vidcat.featurefit.unknown import distance_scores

        widths = [w for _, w in self.blocks or ()]
        return distance_scores(self.centroids, self.class_means, x, evidence.get("present"), widths)

    def judge(self, probs, evidence: dict | None = None) -> list[tuple[float, bool]]:
        """``(score, unknown)`` per clip."""
        s = self.scores(probs, evidence)
        return [(float(v), bool(v > self.threshold)) for v in s]

    def describe(self) -> str:
        return (f"'unknown' above {self.family} {self.threshold:.4g} ({self.target}: out-of-fold precision "
                f"{self.precision:.2f}, coverage {self.coverage:.2f})")


def rule_from(entry: dict | None, options=None) -> UnknownRule | None:
    """The rule of a checkpoint's ``open_set`` entry; ``options`` (an :class:`~vidcat.config.OpenSet`, or
    any object with its fields) may refit the threshold to its target or turn the rule off
    (``unknown=False``). None for a checkpoint without a rule."""
    from vidcat.config import open_set_target

    from vidcat.featurefit.openset import Centroids

    if not entry or (options is not None and getattr(options, "unknown", True) is False):
        return None
    centroids = None if entry.get("centroids") is None else Centroids.from_state(entry["centroids"])
    blocks = entry.get("blocks")
    means = None if entry.get("class_means") is None else np.asarray(entry["class_means"], np.float64)
    target = open_set_target(options)
    if target is None:
        t = entry["threshold"]
        return UnknownRule(entry["family"], float(t["value"]), t["target"], float(t["precision"]),
                           float(t["coverage"]), centroids, blocks, means)
    from vidcat.featurefit.unknown import threshold_for

    thr, _ = threshold_for(np.asarray(entry["scores"], np.float64), np.asarray(entry["correct"], bool), target,
                           entry.get("negative_scores"))
    target_text = thr.target + ("" if thr.met else " (not reachable: the most precise threshold instead)")
    return UnknownRule(entry["family"], thr.value, target_text, thr.precision, thr.coverage, centroids, blocks,
                       means)
