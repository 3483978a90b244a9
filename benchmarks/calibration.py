"""Are the default's probabilities honest on real sets? Expected calibration error of its held-out probabilities.

    python benchmarks/calibration.py [--root DIR] [--only SET ...] [--streams appearance,motion]

For every corpus set, by its grouped protocol: on each outer fold the default's whole selection is fitted on
the training clips (:func:`vidcat.featurefit.select.fit_streams`, as ``vidcat train`` runs it), and a
calibration (:func:`vidcat.featurefit.calibration.fit_calibration`) on two kinds of logits of those clips:
``inner``, the selection's own out-of-fold fused logits (heads refitted per fold, the selection made once), and
``nested``, the logits of the nested estimate (:func:`vidcat.featurefit.select.nested_logits`: the whole
selection re-run inside each fold, what ``vidcat train`` prints its expected top-1 from) where it fitted on
every fold, else the inner ones (:func:`vidcat.featurefit.recipe.calibration_logits`, as ``vidcat train``).
The outer test clips' fused logits are scored uncalibrated and with each. Reported, pooled over the held-out
clips: top-label ECE (15 equal-width bins), negative log-likelihood and top-1 (temperature scaling never
changes the argmax).
Writes ``benchmarks/results/calibration.{md,json}``.
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
from fixed_default import INNER_FOLDS  # noqa: E402
from real_data import features, outer_folds  # noqa: E402
from scipy.special import softmax  # noqa: E402

from vidcat.data.splits import grouped_folds  # noqa: E402
from vidcat.featurefit import recipe as R  # noqa: E402
from vidcat.featurefit.calibration import expected_calibration_error, fit_calibration, nll  # noqa: E402
from vidcat.featurefit.select import fit_streams, nested_logits  # noqa: E402


KINDS = ("inner", "nested")


def calibrated(z, y, groups):
    ok = np.isfinite(z).all(1)
    return fit_calibration(z[ok], y[ok], groups[ok])


def held_out_logits(inputs, y, groups, folds, nc) -> tuple[np.ndarray, dict, np.ndarray, dict]:
    """``(raw logits, {kind: calibrated logits}, labels, {kind: temperature per fold})`` of every outer test clip."""
    raw, cal, lab, temps = [], {k: [] for k in KINDS}, [], {k: [] for k in KINDS}
    for tr, te in folds:
        inner = grouped_folds(y[tr], groups[tr], INNER_FOLDS, 1)
        if not inner:
            continue
        train = {n: i.take(tr) for n, i in inputs.items()}
        fit = fit_streams(train, y[tr], inner, nc)
        nested = nested_logits(train, y[tr], groups[tr], inner, nc, seed=1)
        fitted = {"inner": fit.oof_logits, "nested": R.calibration_logits(fit, nested)[0]}
        z = fit.logits({n: i.take(te) for n, i in inputs.items()})
        raw.append(z)
        lab.append(y[te])
        for kind, logits in fitted.items():
            c = calibrated(logits, y[tr], groups[tr])
            cal[kind].append(c.logits(z))
            temps[kind].append(c.kind if c.kind == "vector" else round(c.temperature, 3))
    return np.concatenate(raw), {k: np.concatenate(v) for k, v in cal.items()}, np.concatenate(lab), temps


def score_set(entry, streams, cache) -> dict:
    inputs, _, y, groups, nc, _ = features(entry, streams, cache)
    folds = outer_folds(y, groups, entry["protocol"])
    t0 = time.process_time()
    raw, cal, lab, temps = held_out_logits(inputs, y, groups, folds, nc)
    row = {"set": entry["name"], "clips": int(len(lab)), "folds": len(folds), "classes": nc,
           "top1": float((raw.argmax(1) == lab).mean())}
    for kind, z in {"uncalibrated": raw, **cal}.items():
        p = softmax(z, 1)
        row[kind] = {"ece": expected_calibration_error(p, lab), "nll": nll(z, lab),
                     "mean_confidence": float(p.max(1).mean()), "temperatures": temps.get(kind)}
    row["cpu_min"] = (time.process_time() - t0) / 60
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| set | held-out clips | top-1 | ECE uncal. / inner / nested | NLL uncal. / inner / nested | "
             "mean confidence uncal. / inner / nested | T per fold, inner | T per fold, nested | CPU min |",
             "|---|---|---|---|---|---|---|---|---|"]
    kinds = ("uncalibrated",) + KINDS
    for r in rows:
        cells = [" / ".join(f"{r[k][m]:{f}}" for k in kinds) for m, f in
                 (("ece", ".3f"), ("nll", ".3f"), ("mean_confidence", ".2f"))]
        t = [", ".join(map(str, r[k]["temperatures"])) for k in KINDS]
        lines.append(f"| {r['set']} | {r['clips']} | {r['top1']:.3f} | {' | '.join(cells)} | {' | '.join(t)} | "
                     f"{r['cpu_min']:.1f} |")
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
