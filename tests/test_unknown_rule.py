"""The "none of these" rule's parts, on planted numbers: which family the evidence picks, the default and
background-set thresholds, refitting a checkpoint's threshold to a target, the record fields, and what an
ONNX export can carry."""
from __future__ import annotations

import numpy as np
import pytest

from vidcat.config import OpenSet
from vidcat.errors import VidcatError
from vidcat.featurefit.openset import fit_centroids
from vidcat.featurefit.rule import UnknownRule, rule_from
from vidcat.featurefit.unknown import (FALLBACK, MARGIN, choose_family, distance_model, threshold_for,
                                       youden_coverage)
from vidcat.inference.base import make_record
from vidcat.inference.unknown import onnx_rule


def _evidence(msp, energy, maha, cosine):
    return {"auroc": {"msp": msp, "energy": energy, "mahalanobis": maha, "cosine": cosine}}


def test_the_family_is_chosen_by_evidence_msp_unless_beaten_by_the_margin():
    assert choose_family(_evidence(0.48, 0.47, 0.94, 0.90), None)[0] == "mahalanobis"
    assert choose_family(_evidence(0.80, 0.80 + MARGIN / 2, 0.70, 0.70), None)[0] == "msp"
    assert choose_family(_evidence(0.70, 0.75, 0.60, 0.60), None)[0] == "energy"
    family, why = choose_family(None, _evidence(0.9, 0.6, 0.5, 0.5))
    assert family == "msp" and why.startswith("out-of-fold error detection: AUROC msp 0.900")
    assert choose_family(None, None)[0] == FALLBACK == "mahalanobis"


def test_default_target_is_coverage_and_background_clips_move_it():
    known = np.linspace(0.0, 1.0, 100)                  # 100 known clips, scores 0 .. 1
    correct = np.ones(100, bool)
    thr, how = threshold_for(known, correct, None)
    assert how == "default" and thr.target == "coverage 0.95" and thr.coverage == pytest.approx(0.95)
    # background clips above 0.6: every known clip up to 0.6 can be accepted, none beyond without a negative
    negatives = np.linspace(0.61, 1.0, 40)
    assert youden_coverage(known, negatives) == pytest.approx(0.61)
    thr, how = threshold_for(known, correct, None, negatives)
    assert how == "Youden's J on 40 background clips" and thr.value < 0.61 and thr.negatives_accepted == 0.0
    thr, how = threshold_for(known, correct, {"min_precision": None, "coverage": 0.5})
    assert how == "given" and thr.coverage == pytest.approx(0.5)


def _entry(rng, family="msp"):
    scores = np.sort(rng.uniform(0, 1, 200))
    correct = rng.uniform(0, 1, 200) > scores * 0.6     # errors grow with the score
    thr, _ = threshold_for(scores, correct, None)
    return {"family": family, "scores": scores.tolist(), "correct": correct.tolist(), "negative_scores": None,
            "threshold": {"value": thr.value, "precision": thr.precision, "coverage": thr.coverage, "met": thr.met,
                          "target": thr.target, "negatives_accepted": None}}


def test_a_target_refits_the_checkpoint_threshold_and_no_unknown_turns_it_off():
    entry = _entry(np.random.default_rng(0))
    own = rule_from(entry)
    strict = rule_from(entry, OpenSet(min_precision=0.8))
    assert own.target == "coverage 0.95" and strict.target.startswith("min_precision 0.8")
    assert strict.threshold < own.threshold and strict.precision >= 0.8
    assert rule_from(entry, OpenSet(unknown=False)) is None and rule_from(None) is None


def test_the_record_puts_unknown_first_and_keeps_the_top_classes():
    rule = UnknownRule("msp", 0.3, "coverage 0.95", 0.9, 0.95)
    sure, unsure = np.array([0.9, 0.06, 0.04]), np.array([0.5, 0.3, 0.2])
    rec = make_record("a.mp4", sure, ["x", "y", "z"], 2, unknown=rule.judge(sure[None])[0])
    assert rec == {"path": "a.mp4", "labels": ["x", "y"], "scores": [0.9, 0.06], "unknown": False,
                   "unknown_score": pytest.approx(0.1)}
    rec = make_record("b.mp4", unsure, ["x", "y", "z"], 2, unknown=rule.judge(unsure[None])[0])
    assert rec["labels"] == ["unknown", "x", "y"] and rec["scores"] == [0.5, 0.5, 0.3] and rec["unknown"]
    assert "unknown" not in make_record("c.mp4", sure, ["x", "y", "z"], 2)


def test_distance_and_energy_rules_need_the_models_evidence():
    rng = np.random.default_rng(1)
    x, y = np.r_[rng.normal(0, 1, (30, 4)), rng.normal(5, 1, (30, 4))], np.repeat([0, 1], 30)
    rule = UnknownRule("mahalanobis", 4.0, "coverage 0.95", 1.0, 0.95, fit_centroids(x, y))
    far = rule.judge(np.array([[0.99, 0.01]] * 2), {"space": np.array([[0.0] * 4, [40.0] * 4])})
    assert [u for _, u in far] == [False, True]
    with pytest.raises(VidcatError, match=r"^this model's 'unknown' rule \(energy\) needs the model's energy"):
        UnknownRule("energy", -1.0, "", 1.0, 1.0).scores(np.array([[0.5, 0.5]]))


def test_an_onnx_export_carries_a_logit_rule_and_names_a_distance_rule():
    entry = _entry(np.random.default_rng(2))
    meta, note = onnx_rule(entry)
    assert meta["score"] == "1 - max(softmax(logits))" and meta["threshold"] == entry["threshold"]["value"]
    assert note.startswith("the 'unknown' rule (1 - max(softmax(logits)) >")
    meta, note = onnx_rule({**entry, "family": "mahalanobis"})
    assert "not output by this graph" in meta["score"] and "needs features this graph does not output" in note
    assert onnx_rule(None) == (None, "no 'unknown' rule (none in the checkpoint)")


def test_a_missing_stream_is_no_evidence_for_the_distance():
    """Two streams of two features each; a clip whose second stream is absent (all zeros) is far from every
    centroid as it stands, and as near as its first stream says once the absent block counts as no evidence."""
    rng = np.random.default_rng(3)
    x, y = np.r_[rng.normal([0, 0, 10, 10], 1, (30, 4)), rng.normal([6, 6, 16, 16], 1, (30, 4))], np.repeat([0, 1], 30)
    present = np.ones((60, 2))
    present[::10, 1] = 0                                    # some training clips lack the second stream too
    x[::10, 2:] = 0.0
    blocks = [["first", 2], ["second", 2]]
    centroids, means = distance_model(x, present, [2, 2], y, "mahalanobis")
    assert means[:, 2:] == pytest.approx(np.array([[10, 10], [16, 16]]), abs=0.6)   # absent rows left out
    rule = UnknownRule("mahalanobis", 4.0, "", 1.0, 0.95, centroids, blocks, means)
    silent = np.array([[0.2, -0.1, 0.0, 0.0]])             # the first stream at class 0, the second absent
    probs = np.array([[0.9, 0.1]])
    assert rule.judge(probs, {"space": silent})[0][1] is True
    score, unknown = rule.judge(probs, {"space": silent, "present": np.array([[1.0, 0.0]])})[0]
    assert unknown is False and score < 4.0
