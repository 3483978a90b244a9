"""Are the default's probabilities honest on real sets? Expected calibration error of its held-out probabilities.

    python benchmarks/calibration.py [--root DIR] [--only SET ...] [--streams appearance,motion]

For every corpus set, by its grouped protocol: on each outer fold the default's whole selection is fitted on
the training clips (:func:`vidcat.featurefit.select.fit_streams`, as ``vidcat train`` runs it) and its
calibration on their out-of-fold fused logits (:func:`vidcat.featurefit.calibration.fit_calibration`, as
:func:`vidcat.featurefit.recipe.calibrate`); the outer test clips' fused logits are scored with and without
it. Reported, pooled over the held-out clips: top-label ECE (15 equal-width bins), negative log-likelihood and
top-1 (calibration never changes the argmax under temperature scaling). Writes
``benchmarks/results/calibration.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import corpus_arguments, default_root, load_corpus  # noqa: E402
from fixed_default import INNER_FOLDS, fused_logits  # noqa: E402
from real_data import features, outer_folds  # noqa: E402
from scipy.special import softmax  # noqa: E402

from vidcat.data.splits import grouped_folds  # noqa: E402
from vidcat.featurefit.calibration import expected_calibration_error, fit_calibration, nll  # noqa: E402
from vidcat.featurefit.select import fit_streams  # noqa: E402


def held_out_logits(inputs, y, groups, folds, nc) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """``(raw logits, calibrated logits, labels, calibrators)`` of every outer test clip."""
    raw, cal, lab, kinds = [], [], [], []
    for tr, te in folds:
        inner = grouped_folds(y[tr], groups[tr], INNER_FOLDS, 1)
        if not inner:
            continue
        fit = fit_streams({n: i.take(tr) for n, i in inputs.items()}, y[tr], inner, nc)
        ok = np.isfinite(fit.oof_logits).all(1)
        c = fit_calibration(fit.oof_logits[ok], y[tr][ok], groups[tr][ok])
        z = fused_logits(fit, {n: i.take(te) for n, i in inputs.items()})
        raw.append(z)
        cal.append(c.logits(z))
        lab.append(y[te])
        kinds.append(c.kind if c.kind == "vector" else round(c.temperature, 3))
    return np.concatenate(raw), np.concatenate(cal), np.concatenate(lab), kinds


def score_set(entry, streams, cache) -> dict:
    inputs, _, y, groups, nc, _ = features(entry, streams, cache)
    folds = outer_folds(y, groups, entry["protocol"])
    t0 = time.process_time()
    raw, cal, lab, kinds = held_out_logits(inputs, y, groups, folds, nc)
    p_raw, p_cal = softmax(raw, 1), softmax(cal, 1)
    row = {"set": entry["name"], "clips": int(len(lab)), "folds": len(folds), "classes": nc,
           "ece_uncalibrated": expected_calibration_error(p_raw, lab), "ece_calibrated": expected_calibration_error(p_cal, lab),
           "nll_uncalibrated": nll(raw, lab), "nll_calibrated": nll(cal, lab),
           "top1_uncalibrated": float((raw.argmax(1) == lab).mean()), "top1_calibrated": float((cal.argmax(1) == lab).mean()),
           "mean_confidence_uncalibrated": float(p_raw.max(1).mean()), "mean_confidence_calibrated": float(p_cal.max(1).mean()),
           "temperatures": kinds, "cpu_min": (time.process_time() - t0) / 60}
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| set | held-out clips | top-1 | ECE uncalibrated | ECE calibrated | NLL uncal. | NLL cal. | "
             "mean confidence uncal. / cal. | T per fold | CPU min |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['clips']} | {r['top1_calibrated']:.3f} | {r['ece_uncalibrated']:.3f} | "
                     f"{r['ece_calibrated']:.3f} | {r['nll_uncalibrated']:.3f} | {r['nll_calibrated']:.3f} | "
                     f"{r['mean_confidence_uncalibrated']:.2f} / {r['mean_confidence_calibrated']:.2f} | "
                     f"{', '.join(map(str, r['temperatures']))} | {r['cpu_min']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    corpus_arguments(ap)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration"))
    a = ap.parse_args(argv)
    streams = a.streams
    rows = [score_set(e, streams, a.cache) for e in load_corpus(a.root or default_root())
            if not a.only or e["name"] in a.only]
    Path(a.out + ".json").write_text(json.dumps(rows, indent=1))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
