"""The default model refitted with fixed settings: shared by the open-set, suggestion and calibration benchmarks.

``vidcat train`` chooses each stream's head settings, the streams and the stacker by grouped CV. Repeating that
choice for every held-out class x outer fold (open set) or every labelling round (suggest) costs hundreds of
grid searches per set; these benchmarks instead make the choice once per set -- :func:`choose_settings`, one
:func:`vidcat.featurefit.select.fit_streams` on all of the set's clips (slightly optimistic: the settings saw
every clip) -- and refit the chosen streams' heads with those settings on each training part
(:func:`refit`), the stacker of the chosen kind on their inner out-of-fold log-probabilities, exactly as the
default does after its choice.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from vidcat.data.splits import grouped_folds  # noqa: E402
from vidcat.featurefit import fusion as FU  # noqa: E402
from vidcat.featurefit import heads as H  # noqa: E402
from vidcat.featurefit.select import StreamHead, StreamsFit, fit_streams  # noqa: E402

INNER_FOLDS = 5


def choose_settings(inputs: dict, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> StreamsFit:
    """The default's choice on every clip of the set: streams, their head settings, the stacker kind."""
    folds = grouped_folds(y, groups, INNER_FOLDS, seed)
    return fit_streams(inputs, y, folds, int(y.max()) + 1)


def _head(template, inp, y: np.ndarray, folds, k: int) -> StreamHead:
    """One stream's head with the template's settings: refitted on the present clips, out-of-fold on ``folds``."""
    pres = inp.present > 0
    est = H.fit_rows(template.estimator, inp.x[pres], y[pres])
    pf = [(tr[pres[tr]], te[pres[te]]) for tr, te in folds]
    pf = [(tr, te) for tr, te in pf if len(te) and len(np.unique(y[tr])) >= 2]
    return StreamHead(inp.name, template.params, est, H.oof_log_proba(template.estimator, inp.x, y, pf, k))


def refit(settings: StreamsFit, inputs: dict, y: np.ndarray, groups: np.ndarray, seed: int = 0):
    """``(StreamsFit, inner folds)`` of the chosen streams on these clips (labels 0..K-1), the settings fixed.
    None when the clips cannot be folded (fewer than two groups)."""
    k = int(y.max()) + 1
    folds = grouped_folds(y, groups, INNER_FOLDS, seed)
    if not folds:
        return None, folds
    names = [n for n in settings.chosen if len(np.unique(y[inputs[n].present > 0])) >= 2]   # a head needs 2 classes
    heads = {n: _head(settings.heads[n], inputs[n], y, folds, k) for n in names}
    oof = {n: h.oof for n, h in heads.items()}
    kind = settings.stacker_kind
    stacker = FU.fit_stacker(FU.stack_inputs(oof, names), y, kind, k)
    fit = StreamsFit(heads, tuple(names), stacker, [], k, kind, FU.stacker_oof_logits(oof, names, y, folds, kind))
    return fit, folds

