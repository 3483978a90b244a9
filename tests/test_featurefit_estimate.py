"""What the default says about itself, on planted features: automatic groups merge near-duplicate clips so the
estimate stays honest, the estimate line and its Wilson interval, the learning curve, and a near-constant
feature that never gets a huge weight."""
from __future__ import annotations

import numpy as np
import pytest

from vidcat.data.splits import grouped_folds, near_duplicate_groups
from vidcat.featurefit import heads as H
from vidcat.featurefit.recipe import calibration_logits, estimate, estimate_line, learning_curve
from vidcat.featurefit.select import StreamInput, fit_streams
from vidcat.metrics import wilson


def _duplicates(n_sources: int, pieces: int, dim: int, noise: float, seed: int) -> np.ndarray:
    """``pieces`` near-identical clips (rows) of each of ``n_sources`` recordings, recording-major."""
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n_sources, dim))
    return np.repeat(src, pieces, 0) + noise * rng.normal(size=(n_sources * pieces, dim))


def test_near_duplicate_groups_never_exceed_a_fold():
    """One recording cut into half of the clips: the groups are tightened until k grouped folds stay possible."""
    emb = np.concatenate([_duplicates(1, 20, 16, 0.05, 1), _duplicates(20, 1, 16, 0.0, 2)])
    g = near_duplicate_groups(emb, k=5)
    assert np.bincount(g).max() <= len(emb) // 5


def test_a_random_split_of_planted_duplicates_is_regrouped_and_the_estimate_is_honest():
    """Without groups a random k-fold puts pieces of one recording on both sides and looks perfect; the
    automatic groups keep them together, so the estimate is honest (near chance: the label is not in the
    pixels, only in which recording a clip comes from)."""
    x = _duplicates(12, 4, 48, 0.02, 3)
    y = np.repeat(np.random.default_rng(3).permutation([0, 1] * 6), 4)
    inputs = {"appearance": StreamInput("appearance", x[:, None, :], np.ones(len(y)))}
    clips = np.arange(len(y))
    naive = estimate(inputs, y, clips, grouped_folds(y, clips, 4), 2, 0, "random")[0]
    auto = near_duplicate_groups(x, k=4)
    honest, logits = estimate(inputs, y, auto, grouped_folds(y, auto, 4), 2, 0, "grouped")
    assert naive["top1"] >= 0.85 and naive["nested"]
    assert honest["top1"] <= 0.75 and honest["groups"] == 12
    assert honest["lo"] <= honest["top1"] <= honest["hi"] and honest["n"] == 48
    assert logits.shape == (48, 2) and (logits.argmax(1) == y).mean() == honest["top1"]   # what calibration reads


def test_the_estimate_line():
    e = {"top1": 0.9444, "lo": 0.7424, "hi": 0.9901, "folds": 2, "n": 18, "groups": 2}
    assert estimate_line(e) == "expected top-1 0.94 (95% CI 0.74-0.99; 2-fold grouped CV, 18 clips, 2 groups)"
    s = {"top1": 0.5, "lo": 0.3, "hi": 0.7, "groups": 3}
    assert estimate_line(e, s) == ("expected top-1 0.94 (95% CI 0.74-0.99; 2-fold grouped CV, 18 clips, 2 groups); "
                                   "on a new recording session 0.50 (0.30-0.70; leave one of 3 sessions out)")
    y = np.array([0, 1, 0, 1])
    one, logits = estimate({"a": StreamInput("a", np.zeros((4, 1, 3)), np.ones(4))}, y, np.zeros(4), [], 2, 0,
                           "grouped")
    assert one["top1"] is None and logits is None
    assert estimate_line(one) == "expected top-1 unknown (1 group(s): nothing to cross-validate)"


def test_wilson_interval():
    lo, hi = wilson(24, 27)
    assert lo == pytest.approx(0.7197, abs=1e-3) and hi == pytest.approx(0.9615, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(10, 10)[1] == 1.0 and wilson(0, 10)[0] == 0.0


def _planted(n_groups=16, per_group=3, dim=20, seed=0):
    """Clips whose class shows in the first 3 features, each group with its own offset."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_groups * per_group)
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=(len(y), dim)) + rng.normal(0, 0.5, (n_groups, 1))[g]
    x[:, :3] += np.where(y[:, None] == 1, 1.5, -1.5)
    return x, y, g


def test_learning_curve_has_one_point_per_fraction_and_learns_the_planted_class():
    x, y, g = _planted()
    inputs = {"sight": StreamInput("sight", x[:, None, :], np.ones(len(y)))}
    folds = grouped_folds(y, g, 4)
    fit = fit_streams(inputs, y, folds, 2)
    rows = learning_curve(fit, inputs, y, g, folds, 2)
    assert [r["fraction"] for r in rows] == [0.25, 0.5, 0.75, 1.0]
    assert all(r["n"] == len(y) and r["lo"] <= r["top1"] <= r["hi"] for r in rows)
    assert rows[-1]["top1"] >= 0.9


def test_a_near_constant_feature_never_gets_a_huge_weight():
    """An exact-zero channel recomputed as ~1e-8 in one entry must not be divided by its ~1e-9 spread."""
    x, y, _ = _planted(seed=1)
    x[:, 5] = 0.0
    noisy = x.copy()
    noisy[0, 5] = 3e-8
    forms = [H.linear_form(H.fit_rows(H.head_pipeline(len(y), x.shape[1]), a[:, None, :], y), x.shape[1], 2)
             for a in (noisy, x)]
    assert forms[0]["keep"][5] == 0 and np.abs(forms[0]["weight"]).max() < 100

    def predict(form, a):
        return ((a - form["mu"]) / form["sigma"] * form["keep"] @ form["weight"].T + form["bias"]).argmax(1)

    assert np.array_equal(predict(forms[0], noisy), predict(forms[1], x))


def test_calibration_reads_the_nested_logits_where_every_fold_fitted():
    from types import SimpleNamespace

    fit = SimpleNamespace(oof_logits=np.zeros((4, 2)))
    nested = np.ones((4, 2))
    assert calibration_logits(fit, nested)[1] == "nested estimate" and calibration_logits(fit, nested)[0] is nested
    nested[1] = np.nan                          # a fold whose training part had too few groups to fit
    for given in (nested, None):                # ... or no nested estimate (above 1,500 clips)
        z, which = calibration_logits(fit, given)
        assert z is fit.oof_logits and which == "out-of-fold"


def test_above_the_nested_limit_the_estimate_scores_the_callers_fit_without_refitting(monkeypatch):
    import vidcat.featurefit.recipe as R

    x = _duplicates(12, 4, 48, 0.02, 3)
    y = np.repeat(np.arange(12) % 2, 4)
    inputs = {"appearance": StreamInput("appearance", x[:, None, :], np.ones(len(y)))}
    groups = np.repeat(np.arange(12), 4)
    folds = grouped_folds(y, groups, 4)
    fit = fit_streams(inputs, y, folds, 2)
    monkeypatch.setattr(R, "NESTED_MAX_CLIPS", 10)
    refitted, _ = estimate(inputs, y, groups, folds, 2, 0, "grouped")
    monkeypatch.setattr(R, "fit_streams", lambda *a: pytest.fail("refitted what the caller gave"))
    given, logits = estimate(inputs, y, groups, folds, 2, 0, "grouped", fit)
    assert given == refitted and not given["nested"] and logits is None
