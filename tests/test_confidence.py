"""Calibration and "none of these" on planted structure: an over-confident head is calibrated back, a
held-out class is flagged unknown, the score family and the threshold are chosen by evidence."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.special import softmax
from sklearn.model_selection import GroupKFold, cross_val_predict

from vidcat.errors import VidcatError
from vidcat.featurefit.calibration import (Calibrator, expected_calibration_error, fit_calibration,
                                           fit_temperature, nll, plot_reliability, reliability_table)
from vidcat.featurefit.openset import (Centroids, UnknownDetector, choose_unknown_score, default_head,
                                       family_scores, fit_centroids, fit_threshold, fit_unknown_detector,
                                       openset_metrics)


def _planted_logits(n=800, k=5, seed=0):
    """True logits z and labels drawn from softmax(z): softmax(z) is calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    y = (softmax(z, axis=1).cumsum(1) > rng.random((n, 1))).argmax(1)
    return z, y, np.arange(n) // 4


# -- calibration ------------------------------------------------------------------------------------------
def test_an_over_confident_head_is_calibrated_back():
    z, y, groups = _planted_logits()
    over = 5 * z
    cal = fit_calibration(over, y, groups)
    assert cal.kind == "temperature" and 4.3 < cal.temperature < 5.8
    before = expected_calibration_error(softmax(over, axis=1), y)
    after = expected_calibration_error(cal.probs(over), y)
    assert before > 0.2 and after < before / 4
    assert (cal.probs(over).argmax(1) == over.argmax(1)).all()   # temperature never changes the decision
    assert cal.evidence["cv_nll_temperature"] <= cal.evidence["cv_nll_vector"] * 1.01


def test_a_per_class_bias_needs_vector_scaling_and_auto_finds_it():
    z, y, groups = _planted_logits(seed=1)
    biased = 2 * z + np.array([2.0, -1.5, 0.0, 1.5, -2.0])
    cal = fit_calibration(biased, y, groups)
    assert cal.kind == "vector"
    assert cal.evidence["cv_nll_vector"] < 0.95 * cal.evidence["cv_nll_temperature"]
    t = fit_temperature(biased, y)
    assert nll(cal.logits(biased), y) < nll(biased / t, y) - 0.05
    assert cal.scale.mean() == pytest.approx(0.5, abs=0.1)        # undoes the planted x2 ...
    assert np.corrcoef(cal.bias, [2.0, -1.5, 0.0, 1.5, -2.0])[0, 1] < -0.9   # ... and the planted bias
    assert Calibrator.from_dict(cal.to_dict()).probs(biased) == pytest.approx(cal.probs(biased))


def test_ece_is_top_label_over_equal_width_bins():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 0, 0, 0])      # 0.9 bin: 2/2 right; 0.6 bin: 1 of 2 right (top-label 0.6 each)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.1 + 0.5 * 0.1)
    t = reliability_table(probs, labels, bins=10)
    assert t["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 2, 0]
    assert t["accuracy"][8] == 1.0 and t["accuracy"][5] == 0.5


def test_reliability_diagram_is_a_png(tmp_path):
    z, y, groups = _planted_logits(n=300)
    cal = fit_calibration(5 * z, y, groups, method="temperature")
    out = plot_reliability(tmp_path / "reliability.png", y, softmax(5 * z, axis=1), cal.probs(5 * z))
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 300
    assert [p.name for p in tmp_path.iterdir()] == ["reliability.png"]   # no temp file left


@pytest.mark.parametrize("call,message", [
    (lambda: fit_temperature(np.zeros((3, 2)), [0, 1, 2]), "labels must lie in [0, 2), found 0..2"),
    (lambda: fit_temperature(np.full((2, 2), np.nan), [0, 1]), "logits holds 4 NaN/inf value(s)"),
    (lambda: fit_calibration(np.zeros((4, 2)), [0, 1, 0, 1], method="platt"),
     "calibration method must be one of auto, temperature, vector, not 'platt'"),
    (lambda: expected_calibration_error(np.array([[0.5, 0.5]]), [0], bins=0), "bins must be an integer >= 1, not 0"),
])
def test_calibration_input_errors_are_one_line(call, message):
    with pytest.raises(VidcatError) as e:
        call()
    assert str(e.value) == message


# -- "none of these" --------------------------------------------------------------------------------------
def _gaussian_classes(k=5, per_class=60, dim=16, seed=0):
    """``k`` Gaussian classes, their centres ~4 noise-std apart, 6 groups (recordings) per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 4.0 / np.sqrt(2)
    x = np.concatenate([c + rng.normal(size=(per_class, dim)) for c in centres])
    y = np.repeat(np.arange(k), per_class)
    return x, y, y * 10 + np.arange(len(y)) % 6, centres, rng


def _oof_logits(x, y, groups):
    return cross_val_predict(default_head(), x, y, groups=groups, cv=GroupKFold(5), method="decision_function")


def test_a_held_out_class_is_flagged_unknown():
    x, y, groups, centres, rng = _gaussian_classes()
    known = y < 4                                   # class 4 is never seen in training
    xk, yk, gk = x[known], y[known], groups[known]
    oof = _oof_logits(xk, yk, gk)
    cal = fit_calibration(oof, yk, gk)
    choice = choose_unknown_score(xk, yk, gk)
    assert choice.auroc[choice.family] == max(choice.auroc.values()) >= 0.9
    det = fit_unknown_detector(choice.family, cal, yk, oof, xk, gk, coverage=0.95)
    assert det.threshold.met and det.threshold.coverage <= 0.95
    head = default_head().fit(xk, yk)
    fresh_known = np.concatenate([c + rng.normal(size=(40, 16)) for c in centres[:4]])
    fresh_y = np.repeat(np.arange(4), 40)
    unknown = x[~known]
    ks = det.scores(head.decision_function(fresh_known), fresh_known)
    us = det.scores(head.decision_function(unknown), unknown)
    m = openset_metrics(ks, head.predict(fresh_known) == fresh_y, us, det.threshold.value)
    assert m["auroc"] >= 0.9 and m["unknown_flagged"] >= 0.8 and m["coverage"] >= 0.85
    assert det.is_unknown(head.decision_function(unknown), unknown).mean() == m["unknown_flagged"]
    again = UnknownDetector.from_state(det.to_state())
    assert np.array_equal(again.scores(head.decision_function(unknown), unknown), us)


def test_the_chooser_prefers_distance_when_the_unknown_lies_beyond_a_known_class():
    """A class past class 0, away from class 1, gets confident class-0 logits (max-probability and energy
    miss it) but is far from every centroid: the simulation must see that and pick a distance score."""
    x, y, groups, centres, _ = _gaussian_classes(k=3)
    beyond = x[y == 0] + 2.0 * (centres[0] - centres[1])
    xs, ys = np.concatenate([x, beyond]), np.r_[y, np.full(len(beyond), 3)]
    gs = np.r_[groups, 30 + np.arange(len(beyond)) % 6]
    choice = choose_unknown_score(xs, ys, gs)
    assert choice.family == "mahalanobis"
    beyond_scores = choice.per_class[3]
    assert beyond_scores["mahalanobis"] > 0.95 and max(beyond_scores["msp"], beyond_scores["energy"]) < 0.8


def test_threshold_maximises_coverage_at_the_precision_target():
    scores, correct = np.array([0.1, 0.2, 0.3, 0.4, 0.5]), np.array([1, 1, 0, 1, 0], bool)
    t = fit_threshold(scores, correct, min_precision=0.75)
    assert (t.value, t.precision, t.coverage, t.met) == (0.4, 0.75, 0.8, True)
    assert fit_threshold(scores, correct, coverage=0.5).value == 0.2
    assert fit_threshold(scores, correct, min_precision=0.75, coverage=0.7).value == 0.2
    # a background clip scoring 0.35 is a wrong prediction wherever it is accepted: the cut moves to 0.2
    t = fit_threshold(scores, correct, min_precision=0.75, negative_scores=[0.35])
    assert t.value == 0.2 and t.negatives_accepted == 0.0 and t.precision == 1.0
    t = fit_threshold(scores, np.array([0, 1, 1, 1, 1], bool), min_precision=1.0)
    assert not t.met and t.coverage == 1.0 and t.precision == 0.8 and t.value == 0.5


def test_negatives_sharpen_the_threshold():
    x, y, groups, centres, rng = _gaussian_classes()
    known = y < 4
    xk, yk, gk = x[known], y[known], groups[known]
    oof = _oof_logits(xk, yk, gk)
    cal = fit_calibration(oof, yk, gk)
    near_miss = lambda n: centres[0] + 1.5 * rng.normal(size=(n, 16))   # like class 0, but not it
    background = near_miss(60)                                    # clips known to be none of the classes
    head = default_head().fit(xk, yk)
    plain = fit_unknown_detector("mahalanobis", cal, yk, oof, xk, gk, min_precision=0.95)
    sharp = fit_unknown_detector("mahalanobis", cal, yk, oof, xk, gk, min_precision=0.95,
                                 negative_logits=head.decision_function(background), negative_features=background)
    unknown = near_miss(60)
    assert sharp.threshold.value < plain.threshold.value
    assert sharp.threshold.met and sharp.threshold.precision >= 0.95 and sharp.threshold.coverage > 0.8
    assert sharp.is_unknown(features=unknown).mean() > plain.is_unknown(features=unknown).mean() + 0.2


@pytest.mark.parametrize("clips,dim", [(45, 120), (300, 12)])
def test_mahalanobis_distance_equals_ledoit_wolf_precision(clips, dim):
    """The low-rank form (features outnumbering clips, or not) is the Ledoit-Wolf Mahalanobis distance."""
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(dim)
    x = rng.normal(size=(clips, dim)) * rng.uniform(0.5, 2.0, dim)
    y = np.arange(clips) % 3
    x[y == 1] += 1.0
    c = fit_centroids(x, y)
    z = (x - c.mean) / c.scale
    precision = LedoitWolf(assume_centered=True).fit(z - c.centroids[y]).precision_
    q = rng.normal(size=(9, dim))
    diff = ((q - c.mean) / c.scale)[:, None] - c.centroids[None]
    want = np.sqrt(np.einsum("nkd,de,nke->nk", diff, precision, diff).min(1))
    assert c.score(q) == pytest.approx(want, rel=1e-8)
    assert Centroids.from_state(c.to_state()).score(q) == pytest.approx(want, rel=1e-8)


def test_max_probability_score_keeps_confident_clips_apart():
    """1 - max p, taken as the other classes' probability mass, does not round to 0 at large logits."""
    s = family_scores("msp", [[40.0, 0.0], [30.0, 0.0], [0.0, 0.0]])
    assert 0 < s[0] < s[1] < s[2] == 0.5
    assert s[1] == pytest.approx(np.exp(-30.0), rel=1e-9)


def test_openset_metrics_count_accepted_unknowns_as_wrong():
    m = openset_metrics([0.1, 0.2, 0.9], [True, False, True], [0.15, 0.95, 0.99], threshold=0.5)
    assert m["auroc"] == pytest.approx(7 / 9) and m["coverage"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(1 / 3) and m["unknown_flagged"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("call,message", [
    (lambda: fit_threshold([0.1, 0.2], [1, 1], min_precision=1.5), "min_precision must be a number in (0, 1], not 1.5"),
    (lambda: fit_threshold([0.1, 0.2], [1, 1]), "a threshold needs min_precision or coverage (or both)"),
    (lambda: fit_threshold([0.1, 0.2], [1], coverage=0.5), "correct has 1 values, scores 2"),
    (lambda: choose_unknown_score(np.zeros((4, 2)), [0, 0, 1, 1]),
     "choosing an unknown-score needs at least 3 classes, the data has 2"),
    (lambda: choose_unknown_score(np.zeros((6, 2)), [0, 0, 1, 1, 2, 2], families=("knn",)),
     "unknown-score family must be one of msp, energy, mahalanobis, cosine, not 'knn'"),
])
def test_openset_input_errors_are_one_line(call, message):
    with pytest.raises(VidcatError) as e:
        call()
    assert str(e.value) == message
