"""The default's selection on planted streams: each stream's head, the stream choice, stacking, the nested
estimate, and the fitted pipelines folded into the model's linear layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidcat.data.splits import grouped_folds
from vidcat.featurefit import fusion as FU
from vidcat.featurefit import heads as H
from vidcat.featurefit.select import StreamInput, answers, fit_streams, nested_correct, nested_logits, stream_table
from vidcat.models.stream_fusion import LinearHead


def _planted(n_per=12, groups=6, classes=4, seed=0):
    """Clips of ``classes`` classes in ``groups`` groups; class = (a, b) with a from stream "sight" and b
    from stream "sound" (2 x 2); plus a pure-noise stream."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per * groups // classes)
    rng.shuffle(y)
    g = np.arange(len(y)) % groups
    a, b = y // 2, y % 2
    shift = rng.normal(0, 0.5, (groups, 1))                      # each group its own offset
    sight = rng.normal(0, 1, (len(y), 40)) + 2.5 * a[:, None] * (np.arange(40) < 5) + shift[g]
    sound = rng.normal(0, 1, (len(y), 30)) + 2.5 * b[:, None] * (np.arange(30) < 5) + shift[g]
    noise = rng.normal(0, 1, (len(y), 50))
    return y, g, {"sight": sight, "sound": sound, "noise": noise}


def _inputs(feats, present=None):
    return {n: StreamInput(n, x[:, None, :], np.ones(len(x)) if present is None or n not in present else present[n])
            for n, x in feats.items()}


def test_complementary_streams_are_fused_and_noise_is_dropped():
    y, g, feats = _planted()
    folds = grouped_folds(y, g, 5)
    fit = fit_streams(_inputs(feats), y, folds, 4)
    assert set(fit.chosen) == {"sight", "sound"}
    assert not fit.heads["noise"].signal and fit.heads["sight"].signal
    rows = {r["row"]: r for r in stream_table(fit, _inputs(feats), y, folds)}
    assert rows["sight alone"]["top1"] < 0.65 and rows["sound alone"]["top1"] < 0.65   # each tells half
    assert next(r for k, r in rows.items() if k.startswith("chosen"))["top1"] >= 0.9
    assert rows["all fused without sound"]["top1"] < 0.65
    ok = nested_correct(_inputs(feats), y, g, folds, 4)
    assert ok.mean() >= 0.8                      # each stream alone tells half: < 0.65


def test_fused_logits_agree_with_predict_and_nested_logits_with_nested_correct():
    """The fused logits calibration and the unknown rule read are the ones the prediction argmaxes; a class the
    training clips lack scores below every other; the nested estimate's logits give its correctness."""
    y, g, feats = _planted()
    inputs, folds = _inputs(feats), grouped_folds(y, g, 5)
    fit = fit_streams(inputs, y, folds, 4)
    z = fit.logits(inputs)
    stacked = FU.stack_inputs(fit.log_probs(inputs), fit.chosen)
    assert z.shape == (len(y), 4) and np.array_equal(z.argmax(1), fit.stacker.predict(stacked))
    seen = np.flatnonzero(y != 3)
    part = fit_streams({n: i.take(seen) for n, i in inputs.items()}, y[seen], grouped_folds(y[seen], g[seen], 5), 4)
    zp = part.logits(inputs)
    assert (zp[:, 3] < np.delete(zp, 3, 1).min(1)).all()
    zn = nested_logits(inputs, y, g, folds, 4)
    assert np.isfinite(zn).all()
    assert np.array_equal(zn.argmax(1) == y, nested_correct(inputs, y, g, folds, 4))
    two = np.where(g < g.max() / 2, 0, 1)                  # two groups: each training part has one, no inner folds
    folds2 = grouped_folds(y, two, 2)
    z2 = nested_logits(inputs, y, two, folds2, 4)
    assert np.isnan(z2).all()                              # nothing the calibration could read ...
    for tr, te in folds2:                                  # ... and the estimate counts the majority class
        assert (answers(z2, y, folds2)[te] == np.bincount(y[tr]).argmax()).all()


def test_a_stream_missing_for_some_clips_is_no_evidence_not_an_error():
    y, g, feats = _planted(seed=1)
    present = {"sound": (np.arange(len(y)) % 3 != 0).astype(float)}   # a third of the clips have no sound
    feats["sound"][present["sound"] == 0] = 0.0
    folds = grouped_folds(y, g, 5)
    fit = fit_streams(_inputs(feats, present), y, folds, 4)
    assert "sound" in fit.chosen
    lp = fit.log_probs(_inputs(feats, present))["sound"]
    assert np.isnan(lp[present["sound"] == 0]).all() and np.isfinite(lp[present["sound"] == 1]).all()
    pred = fit.predict(_inputs(feats, present))
    assert (pred == y)[present["sound"] == 1].mean() > 0.9


@pytest.mark.parametrize("classes,wide", [(2, False), (3, True), (4, False)])
def test_the_pipeline_folds_into_one_linear_layer(classes, wide):
    rng = np.random.default_rng(classes)
    n, d = 60, (400 if wide else 20)
    x, y = rng.normal(size=(n, 1, d)), np.arange(n) % classes
    x[:, 0, 3] = 1e-9 * rng.normal(size=n)                          # near-constant: masked, never amplified
    est = H.fit_rows(H.head_pipeline(n, d), x, y)
    assert ("rows" in est.named_steps) == wide
    form = H.linear_form(est, d, classes + 1)                       # one class the data never had
    head = LinearHead(classes + 1, d)
    with torch.no_grad():
        for k in ("mu", "sigma", "keep"):
            getattr(head, k).copy_(torch.from_numpy(form[k]))
        head.fc.weight.copy_(torch.from_numpy(form["weight"]))
        head.fc.bias.copy_(torch.from_numpy(form["bias"]))
    test = rng.normal(size=(10, d))
    with torch.no_grad():
        got = torch.log_softmax(head(torch.from_numpy(test).float()).double(), 1).numpy()
    want = est.predict_log_proba(test)
    np.testing.assert_allclose(got[:, :classes], want, atol=1e-4)
    assert form["keep"][3] == 0 and (got[:, classes] < -20).all()


def test_per_frame_pooling_candidates_and_the_one_se_refit():
    rng = np.random.default_rng(0)
    n, t, f = 48, 4, 6
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 2, t, f))
    ramp = np.linspace(-1, 1, t)
    x[:, :, :, 4] += np.where(y[:, None, None] == 1, ramp, -ramp) * 2   # the class is a slope in feature 4
    folds = grouped_folds(y, np.arange(n) % 6, 3)
    gs = H.search(H.pool_views(x.reshape(n, 2, t * f), t), y, folds, per_frame=(t, f), appearance_dims=(2, f))
    best = gs.cv_results_["mean_test_score"][gs.best_index_]
    assert gs.best_params_["pool__dims"] == f and best > 0.9   # only the wider slice sees feature 4
    scores = {"mean_test_score": np.array([0.80, 0.82, 0.85]), "split0_test_score": np.array([0.8, 0.8, 0.9]),
              "split1_test_score": np.array([0.8, 0.84, 0.8])}
    assert H.one_se_refit(scores) == 0          # 0.80 is within one SE (0.05) of 0.85: the simplest wins
