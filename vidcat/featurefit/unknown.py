"""The default model's "none of these" rule, learnt when ``vidcat train`` fits it.

The unknown-score is one of :mod:`vidcat.featurefit.openset`'s families, each computed from what the model
gives in its one pass over a clip, so every entry point (predict, batch, serve, timeline, eval) can score it:
``msp`` (1 - the calibrated top probability) and ``energy`` (-logsumexp of the calibrated logits; Liu et al.
2020) from the fused logits, ``mahalanobis`` and ``cosine`` from the distance of the heads' pooled inputs (the
chosen streams side by side, :mod:`vidcat.models.stream_space`) to the class centroids. A linear head
extrapolates: a clip of a class it never saw can get a larger logit than any training clip (on planted
motion directions the held-out direction got probability 1.00 and *lower* energy than the known clips), which
only a distance notices. Which family is used is chosen on the user's clips, by evidence:

1. a held-out-class simulation, where there are at least 3 classes: each class in turn plays the unknown; the
   chosen streams' heads (their chosen settings, fixed), the stacker's stream weights and the centroids are
   refitted on the other classes' clips of each grouped training fold and score that fold's test clips --
   known clips out-of-fold, held-out-class clips from a model that never saw them or their groups. This asks
   the question the rule answers (a clip of a class never trained on), on the model's own streams, at the
   cost of a few linear fits per class and fold (at most :data:`SIM_CLASSES` classes, the largest);
2. else the AUROC of out-of-fold scores separating wrong from right predictions (needs :data:`MIN_ERRORS`);
3. else (two classes, few errors) :data:`FALLBACK`: with two known classes a linear head's boundary
   extrapolates furthest, and leaving one class out of ud810 (two known classes each time;
   ``benchmarks/openset.py``) gave mean AUROC msp 0.63, energy 0.63, mahalanobis 0.73, cosine 0.79, as the
   planted directions gave msp 0.48, mahalanobis 0.94.

The family with the highest mean AUROC wins, but msp (bounded, readable as a probability) stays unless another
beats it by :data:`MARGIN`.

The threshold comes from the chosen family's out-of-fold scores of the training clips
(:func:`vidcat.featurefit.openset.fit_threshold`). The default target is coverage
:data:`~vidcat.config.DEFAULT_COVERAGE` (at most ~5 % of known clips turned away); with ``--background`` clips
(known to be none of the classes) the coverage that maximises Youden's J -- known clips accepted minus
background clips accepted -- instead. The checkpoint keeps the scores, their correctness and the background
scores (and the centroids of a distance family), so predict can honour another ``--min-precision`` /
``--coverage`` without retraining. A stream a clip lacks (no sound, no person) is no evidence for the
distances either (:func:`distance_scores`).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict

import numpy as np
from scipy.special import logsumexp, softmax

from vidcat.config import DEFAULT_COVERAGE
from vidcat.featurefit.fusion import LogPool, centred
from vidcat.featurefit.openset import FAMILIES, LOGIT_FAMILIES, fit_centroids, fit_threshold, msp_score

MARGIN = 0.01          # another family must beat msp's mean AUROC by this much to be chosen
MIN_ERRORS = 5         # out-of-fold errors (and correct clips) needed to compare families on misclassification
MIN_CLIPS = 10         # out-of-fold clips needed to learn a rule at all
FALLBACK = "mahalanobis"   # the family when there is no evidence to compare (see the module docstring)
SIM_CLASSES = 8        # the held-out-class simulation leaves out at most this many classes (the largest)


def family_scores(family: str, logits=None, centroids=None, space=None) -> np.ndarray:
    """(N,) unknown-scores, larger = less like a known class: of calibrated ``logits`` (N, K) for msp and
    energy, of the heads' pooled inputs ``space`` (N, D) against fitted ``centroids`` for the distances."""
    if family == "energy":
        return -logsumexp(np.asarray(logits, np.float64), axis=1)
    if family == "msp":
        return msp_score(softmax(np.asarray(logits, np.float64), axis=1))
    return centroids.score(space)


def train_space(fit, inputs: dict) -> np.ndarray:
    """(N, D) the chosen heads' pooled inputs of the training clips' centre views (what
    :func:`vidcat.models.stream_space.head_space` gives at predict time)."""
    return np.concatenate([fit.heads[n].estimator.named_steps["pool"].transform(inputs[n].x[:, 0])
                           for n in fit.chosen], 1).astype(np.float64)


def absent_mask(present: np.ndarray, widths) -> np.ndarray:
    """(N, D) True where a clip lacks the stream of that column's block (``present`` (N, S) < 0.5)."""
    return np.repeat(np.asarray(present, np.float64) < 0.5, widths, axis=1)


def class_means(raw: np.ndarray, y: np.ndarray, present: np.ndarray, widths) -> np.ndarray:
    """(K', D) each class's mean in every block, over its clips that have the stream (else over every clip
    that has it, else 0); classes in ``np.unique(y)`` order."""
    kept = np.where(absent_mask(present, widths), np.nan, raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # a block no clip (of a class) has: the fallback
        overall = np.nan_to_num(np.nanmean(kept, axis=0))
        means = np.stack([np.nanmean(kept[y == c], axis=0) for c in np.unique(y)])
    return np.where(np.isfinite(means), means, overall)


def fill_own_class(raw: np.ndarray, y: np.ndarray, present: np.ndarray, widths) -> np.ndarray:
    """Training clips with every absent block set to their own class's mean (what the centroids are fitted on)."""
    means = class_means(raw, y, present, widths)
    return np.where(absent_mask(present, widths), means[np.searchsorted(np.unique(y), y)], raw)


def distance_scores(centroids, means: np.ndarray, space: np.ndarray, present=None, widths=None) -> np.ndarray:
    """Nearest-centroid distance where a clip's absent blocks take each class's mean in turn (the smallest
    distance wins): a stream a clip lacks (no sound, no person) is no evidence, not an all-zero point far
    from every centroid."""
    space = np.atleast_2d(np.asarray(space, np.float64))
    best = centroids.score(space)
    if present is None or not widths:
        return best
    missing = absent_mask(np.atleast_2d(present), widths)
    rows = np.flatnonzero(missing.any(1))
    if len(rows):
        best[rows] = np.min([centroids.score(np.where(missing[rows], m, space[rows])) for m in np.atleast_2d(means)], 0)
    return best


def distance_model(raw: np.ndarray, present: np.ndarray, widths, y: np.ndarray, family: str) -> tuple:
    """``(centroids, class means)`` of a distance family fitted on training clips (absent blocks: own class)."""
    return fit_centroids(fill_own_class(raw, y, present, widths), y, family), class_means(raw, y, present, widths)


def space_and_blocks(fit, inputs: dict) -> tuple[np.ndarray, np.ndarray, list]:
    """``(raw space (N, D), presence (N, S), widths)`` of the chosen streams (:func:`train_space`)."""
    present = np.stack([inputs[n].present for n in fit.chosen], 1).astype(np.float64)
    widths = [fit.heads[n].estimator.named_steps["pool"].transform(inputs[n].x[:1, 0]).shape[1] for n in fit.chosen]
    return train_space(fit, inputs), present, [int(w) for w in widths]


def _auroc(negatives: np.ndarray, positives: np.ndarray) -> float | None:
    """AUROC of scores ``positives`` ranked above ``negatives`` (None when either side is empty)."""
    from sklearn.metrics import roc_auc_score

    if not len(negatives) or not len(positives):
        return None
    return float(roc_auc_score(np.r_[np.zeros(len(negatives)), np.ones(len(positives))], np.r_[negatives, positives]))


def _fused_without(fit, inputs: dict, y: np.ndarray, held: int, tr, te) -> tuple[np.ndarray, np.ndarray]:
    """Fused logits (rows ``te``) of the chosen streams' heads refitted on the clips ``tr`` not of class ``held``
    (classes renumbered without it), pooled with the fitted stacker's stream weights (1 for a full logistic
    stacker). Returns (logits (len(te), K - 1), the renumbered labels of ``te``, -1 for ``held``). The refits
    read each clip's centre view only: the simulation ranks score families, and the augmented views tripled
    the rows of every refit (most of ``vidcat train``'s time on a set of 15 classes)."""
    from vidcat.featurefit import heads as H

    keep = np.array([c for c in range(fit.num_classes) if c != held])
    remap = np.full(fit.num_classes, -1)
    remap[keep] = np.arange(len(keep))
    pool = fit.stacker if isinstance(fit.stacker, LogPool) else None
    total = np.zeros((len(te), len(keep))) + (pool.bias_[keep] if pool is not None else 0.0)
    rows = tr[y[tr] != held]
    for s, name in enumerate(fit.chosen):
        inp = inputs[name]
        fit_rows = rows[inp.present[rows] > 0]
        if len(np.unique(y[fit_rows])) < 2:
            continue
        est = H.fit_rows(fit.heads[name].estimator, inp.x[fit_rows, :1], remap[y[fit_rows]])
        lp = H.log_proba(est, inp.x[te, 0], len(keep))
        total += (pool.weights_[s] if pool is not None else 1.0) * centred(lp) * (inp.present[te, None] > 0)
    return total, remap[y[te]]


def _simulate_class(fit, inputs: dict, space: np.ndarray, y: np.ndarray, held: int, folds) -> dict | None:
    """Every family's AUROC of class ``held``'s clips against the known clips, over the grouped folds."""
    from vidcat.featurefit.calibration import fit_temperature

    z, lab, dist = [], [], {f: [] for f in FAMILIES if f not in LOGIT_FAMILIES}
    for tr, te in folds:
        tr, te = np.asarray(tr), np.asarray(te)
        logits, renumbered = _fused_without(fit, inputs, y, held, tr, te)
        z.append(logits)
        lab.append(renumbered)
        rows = tr[y[tr] != held]
        for f in dist:
            dist[f].append(fit_centroids(space[rows], y[rows], f).score(space[te]))
    z, lab = np.concatenate(z), np.concatenate(lab)
    known = lab >= 0
    if known.sum() < 2 or known.all() or len(np.unique(lab[known])) < 2:
        return None
    t = fit_temperature(z[known], lab[known])
    scores = {f: family_scores(f, z / t) for f in LOGIT_FAMILIES} | {f: np.concatenate(v) for f, v in dist.items()}
    return {f: _auroc(s[known], s[~known]) for f, s in scores.items()}


def held_out_class_auroc(fit, inputs: dict, space: np.ndarray, y: np.ndarray, folds) -> dict | None:
    """Mean AUROC (held-out class vs known clips) of each family over the classes (at most :data:`SIM_CLASSES`,
    the largest: the cost grows with every class left out), or None with < 3 classes."""
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 3 or not folds:
        return None
    classes = classes[np.argsort(-counts, kind="stable")[:SIM_CLASSES]]
    per_class = {int(c): r for c in classes if (r := _simulate_class(fit, inputs, space, y, int(c), folds))}
    if not per_class:
        return None
    return {"auroc": {f: round(float(np.mean([r[f] for r in per_class.values()])), 4) for f in FAMILIES},
            "classes": len(per_class), "per_class": per_class}


def oof_scores(logits: np.ndarray, raw: np.ndarray, present: np.ndarray, widths, y: np.ndarray, folds) -> dict:
    """Each family's out-of-fold scores of the training clips: calibrated out-of-fold ``logits``; centroids
    (and class means) fitted on each fold's training clips, the test clips scored by :func:`distance_scores`
    (in-sample where there are no folds)."""
    out = {f: family_scores(f, logits) for f in LOGIT_FAMILIES}
    for f in FAMILIES:
        if f in LOGIT_FAMILIES:
            continue
        out[f] = np.zeros(len(y))
        for tr, te in folds or [(np.arange(len(y)),) * 2]:
            c = fit_centroids(fill_own_class(raw[tr], y[tr], present[tr], widths), y[tr], f)
            out[f][te] = distance_scores(c, class_means(raw[tr], y[tr], present[tr], widths), raw[te], present[te],
                                         widths)
    return out


def misclassification_auroc(scores: dict, correct: np.ndarray) -> dict | None:
    """AUROC of each family's out-of-fold scores separating wrong from right predictions (None with fewer
    than :data:`MIN_ERRORS` of either)."""
    if (~correct).sum() < MIN_ERRORS or correct.sum() < MIN_ERRORS:
        return None
    return {"auroc": {f: round(_auroc(s[correct], s[~correct]), 4) for f, s in scores.items()},
            "errors": int((~correct).sum())}


def choose_family(held_out: dict | None, misclassified: dict | None) -> tuple[str, str]:
    """``(family, why)`` from the evidence (see the module docstring)."""
    for what, ev in (("held-out-class simulation", held_out), ("out-of-fold error detection", misclassified)):
        if ev is not None:
            a = ev["auroc"]
            best = max(FAMILIES, key=lambda f: (a[f], -FAMILIES.index(f)))
            family = best if a[best] > a["msp"] + MARGIN else "msp"
            return family, f"{what}: AUROC " + ", ".join(f"{f} {a[f]:.3f}" for f in FAMILIES)
    return FALLBACK, f"no evidence to compare (fewer than 3 classes, few out-of-fold errors): {FALLBACK}"


def youden_coverage(known: np.ndarray, negatives: np.ndarray) -> float:
    """The coverage of known clips at the cut (a known clip's score) that maximises known accepted minus
    negatives accepted; ties go to the larger coverage."""
    cuts = np.unique(known)
    cover = (known[None, :] <= cuts[:, None]).mean(1)
    j = cover - (negatives[None, :] <= cuts[:, None]).mean(1)
    return float(cover[np.flatnonzero(j >= j.max() - 1e-12)[-1]])


def threshold_for(scores, correct, target: dict | None, negatives=None) -> tuple:
    """``(Threshold, how)`` of a target ``{"min_precision", "coverage"}``; None: the default (coverage
    :data:`DEFAULT_COVERAGE`, or Youden's J where there are negatives)."""
    neg = None if negatives is None or not len(negatives) else np.asarray(negatives, np.float64)
    if target is not None:
        return fit_threshold(scores, correct, target.get("min_precision"), target.get("coverage"), neg), "given"
    if neg is not None:
        cov = youden_coverage(np.asarray(scores, np.float64), neg)
        return fit_threshold(scores, correct, None, cov, neg), f"Youden's J on {len(neg)} background clips"
    return fit_threshold(scores, correct, None, DEFAULT_COVERAGE, None), "default"


def fit_open_set(fit, inputs: dict, y: np.ndarray, folds, calibrator, target: dict | None = None,
                 negative: tuple | None = None) -> tuple[dict, dict | None]:
    """``(report, checkpoint entry)`` of the rule: family chosen by evidence, threshold on its out-of-fold
    scores (``negative``: the final model's ``(calibrated logits, head space)`` of background clips). The
    entry is None when there are too few out-of-fold clips."""
    z = fit.oof_logits
    ok = np.isfinite(z).all(1) if z is not None else np.zeros(len(y), bool)
    if ok.sum() < MIN_CLIPS:
        return {"note": f"fewer than {MIN_CLIPS} out-of-fold clips: no 'unknown' rule"}, None
    cal = calibrator.logits(z[ok]) if calibrator is not None else z[ok]
    raw, present, widths = space_and_blocks(fit, inputs)
    sub = np.flatnonzero(ok)
    local = [(np.flatnonzero(np.isin(sub, tr)), np.flatnonzero(np.isin(sub, te))) for tr, te in folds]
    correct = cal.argmax(1) == y[ok]
    held = held_out_class_auroc(fit, inputs, fill_own_class(raw, y, present, widths), y, folds)
    scores = oof_scores(cal, raw[ok], present[ok], widths, y[ok], [f for f in local if len(f[0]) and len(f[1])])
    mis = misclassification_auroc(scores, correct)
    family, why = choose_family(held, mis)
    distance = None if family in LOGIT_FAMILIES else distance_model(raw[ok], present[ok], widths, y[ok], family)
    neg = None
    if negative is not None:         # the final model's (logits, space, presence) of the background clips
        neg = family_scores(family, negative[0]) if distance is None else \
            distance_scores(distance[0], distance[1], negative[1], negative[2], widths)
    thr, how = threshold_for(scores[family], correct, target, neg)
    evidence = {"chosen_by": why, "held_out_class": None if held is None else {k: held[k] for k in ("auroc", "classes")},
                "misclassification": mis}
    entry = {"family": family, "scores": np.round(scores[family], 6).tolist(), "correct": correct.tolist(),
             "negative_scores": None if neg is None else np.round(neg, 6).tolist(), "target": target, "how": how,
             "threshold": asdict(thr), "evidence": evidence,
             "centroids": None if distance is None else _compact(distance[0].to_state()),
             "class_means": None if distance is None else distance[1].astype(np.float32),
             "blocks": [[n, w] for n, w in zip(fit.chosen, widths)]}
    report = {k: entry[k] for k in ("family", "how", "threshold", "evidence")}
    return {**report, "target": thr.target, "clips": int(ok.sum()),
            "background_clips": 0 if neg is None else len(neg)}, entry


def _compact(state: dict) -> dict:
    """Centroid arrays as float32 (half the checkpoint space; distances need no more)."""
    return {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def open_set_line(report: dict) -> str:
    """One line for the terminal."""
    if "family" not in report:
        return f"'unknown': {report.get('note', 'no rule')}"
    t = report["threshold"]
    line = (f"'unknown' where the {report['family']} score is above {t['value']:.4g} ({t['target']}, {report['how']}): "
            f"out-of-fold precision {t['precision']:.2f}, coverage {t['coverage']:.2f}")
    if t.get("negatives_accepted") is not None:
        line += f", background accepted {t['negatives_accepted']:.2f}"
    return line + f"; {report['evidence']['chosen_by']}"


def open_set_rule(fit, inputs: dict, y: np.ndarray, folds, calibrator, model, data, modules: dict, cfg,
                  log) -> tuple[dict, dict | None]:
    """:func:`fit_open_set` for ``vidcat train``: the target from ``--min-precision`` / ``--coverage``, and the
    ``--background`` clips' features through the chosen streams (same extraction and store) scored by the
    fitted ``model``. Logs one line; returns ``(report, checkpoint entry)``."""
    from vidcat.config import open_set_target
    from vidcat.featurefit.unlabelled import fused_outputs, pool_features, unlabelled_items

    negative = None
    if getattr(cfg, "background", None):
        pool = pool_features(unlabelled_items(cfg.background), data, {n: modules[n] for n in fit.chosen},
                             cfg.cache, cfg.strict, cfg.workers, log)
        negative = fused_outputs(model, pool)
    report, entry = fit_open_set(fit, inputs, y, folds, calibrator, open_set_target(cfg), negative)
    log(open_set_line(report))
    return report, entry
