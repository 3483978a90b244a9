"""Pose alone vs appearance alone vs both, on the real ud810 clips, leave-one-person-out.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pose_real.py [--frames 32] [--workers 2]

Every clip gives two fixed vectors, then a logistic regression (standardised inputs, C=1) is trained per
fold on 2 persons (18 clips) and tested on the third (9 clips):

* **pose**: :func:`vidcat.io.pose.pose_features` -- mean, std and mean |Δ| over ``--frames`` evenly spread
  frames of the MediaPipe body landmarks (centred on the hips, scaled by the torso), 331 numbers;
* **appearance**: :func:`vidcat.inference.embeddings.extract_embeddings` of the default recipe's frozen ImageNet
  EfficientNet-Lite0 (``frame_head``, pretrained, 8 TSN frames at 160²);
* **pose + appearance**: late fusion of the two regressions' class probabilities, the pose weight tuned on
  the fold's training persons only (inner leave-one-person-out).

Accuracy is pooled over the 27 held-out predictions with a Wilson 95 % interval; CPU minutes are user +
system time of this process and its workers for extracting each representation. Also reports how often
MediaPipe finds a person on the dark ARID clips (``../shared/data/arid-dark``), where appearance is weak.
Writes ``benchmarks/results/pose.md``.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vidcat.transfer.select import wilson  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
UD810 = DATA / "ud810-actions"
ARID = DATA / "arid-dark"


def cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


FUSION_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)  # candidate weights of the first stream


def _proba(X, y, tr, te):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)).fit(X[tr], y[tr])
    return clf.predict_proba(X[te]), clf.classes_


def lopo(Xs: list, y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, list, list]:
    """Leave-one-group-out predictions. Two representations are late-fused: ``w * p_0 + (1 - w) * p_1``
    of their regressions' class probabilities, ``w`` tuned on the training groups only (inner
    leave-one-group-out), as ``vidcat fuse`` tunes stream weights on a validation set."""
    pred = np.empty_like(y)
    folds, weights = [], []
    for g in sorted(set(groups)):
        te, tr = np.flatnonzero(groups == g), np.flatnonzero(groups != g)
        if len(Xs) == 1:
            p, c = _proba(Xs[0], y, tr, te)
            pred[te] = c[p.argmax(1)]
        else:
            oof = [None, None]
            for h in sorted(set(groups[tr])):
                i_te = groups[tr] == h
                for s in range(2):
                    p, c = _proba(Xs[s], y, tr[~i_te], tr[i_te])
                    oof[s] = np.zeros((len(tr), p.shape[1])) if oof[s] is None else oof[s]
                    oof[s][i_te] = p
            truth = np.searchsorted(c, y[tr])
            w = max(FUSION_WEIGHTS, key=lambda w: (((w * oof[0] + (1 - w) * oof[1]).argmax(1) == truth).mean(),
                                                   -abs(w - 0.5)))
            (p0, c), (p1, _) = _proba(Xs[0], y, tr, te), _proba(Xs[1], y, tr, te)
            pred[te] = c[(w * p0 + (1 - w) * p1).argmax(1)]
            weights.append(w)
        folds.append((g, float((pred[te] == y[te]).mean())))
    return pred, folds, weights


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pose.md"))
    args = ap.parse_args(argv)
    from vidcat.io import pose

    files = sorted(UD810.glob("*.avi"))
    if not files:
        print(f"no clips in {UD810}", file=sys.stderr)
        return 1
    y = np.array([re.search(r"PS7(A\d)", f.name).group(1) for f in files])
    groups = np.array([re.search(r"P(\d)T", f.name).group(1) for f in files])

    t0, w0 = cpu_s(), time.time()
    fill = pose.extract_many(files, frames=args.frames, workers=args.workers)
    Xp = np.stack([pose.pose_features(f, frames=args.frames) for f in files])
    pose_cpu, pose_wall = (cpu_s() - t0) / 60, (time.time() - w0) / 60
    found = np.mean([v for v in fill.values() if isinstance(v, float)])

    from vidcat.inference.embeddings import extract_embeddings

    t0, w0 = cpu_s(), time.time()
    Xa, paths, _ = extract_embeddings("frame_head", [str(f) for f in files], pretrained=True)
    app_cpu, app_wall = (cpu_s() - t0) / 60, (time.time() - w0) / 60
    assert [Path(p).name for p in paths] == [f.name for f in files]

    rows = []
    for name, Xs, cpu, wall in (("pose (MediaPipe keypoint statistics)", [Xp], pose_cpu, pose_wall),
                                ("appearance (frozen EfficientNet-Lite0 embeddings)", [Xa], app_cpu, app_wall),
                                ("pose + appearance (late fusion, weight tuned on the training persons)", [Xp, Xa],
                                 pose_cpu + app_cpu, pose_wall + app_wall)):
        X = np.concatenate(Xs, 1)
        pred, folds, weights = lopo(Xs, y, groups)
        if weights:
            fusion_w = weights
        k = int((pred == y).sum())
        lo, hi = wilson(k, len(y))
        cm = {(a, b): int(((y == a) & (pred == b)).sum()) for a in sorted(set(y)) for b in sorted(set(y))}
        rows.append((name, X.shape[1], folds, k, len(y), lo, hi, cpu, wall, cm))

    arid = sorted(ARID.glob("*.mp4"))
    arid_found = None
    if arid:
        fr = pose.extract_many(arid, frames=16, workers=args.workers)
        vals = [v for v in fr.values() if isinstance(v, float)]
        arid_found = (float(np.mean(vals)), sum(v > 0 for v in vals), len(vals))

    import torch

    lines = ["# Pose stream on real footage: ud810 leave-one-person-out", "",
             f"27 real clips (3 actions x 3 persons x 3 trials); each fold fits a logistic regression (standardised "
             f"features, C=1) on 2 persons (18 clips) and predicts the third (9). Pose: `pose_features(path, "
             f"frames={args.frames})` (MediaPipe 0.10.21 BlazePose full, 33 landmarks, hip-centred and "
             f"torso-scaled; mean, std, mean |Δ| over time: 331 numbers); appearance: the default recipe's frozen "
             f"ImageNet EfficientNet-Lite0 frame features (`extract_embeddings('frame_head', pretrained=True)`, "
             f"8 TSN frames at 160², their penultimate embeddings fed to the same plain logistic regression -- not the "
             f"recipe's own trend pooling and head, which scores 0.889 (24/27) on the same protocol, see README). "
             f"Fusion: the two regressions' class probabilities mixed with the pose weight tuned by inner "
             f"leave-one-person-out on the fold's two training persons. A person was found in {found:.1%} of the sampled ud810 frames. "
             "Accuracy pooled over the 27 held-out clips, Wilson 95 % interval. CPU minutes: user + system time "
             "of extraction (this process and its pose workers; 2 shared cores, indicative); the classifier "
             "takes under a second.", "",
             "| representation | dim | top-1 per held-out person (P1, P2, P3) | pooled top-1 | Wilson 95 % CI | "
             "CPU min | wall min |", "|---|---:|---|---:|---|---:|---:|"]
    for name, d, folds, k, n, lo, hi, cpu, wall, _ in rows:
        lines.append(f"| {name} | {d} | {', '.join(f'{a:.2f}' for _, a in folds)} | **{k / n:.3f}** ({k}/{n}) | "
                     f"[{lo:.3f}, {hi:.3f}] | {cpu:.2f} | {wall:.2f} |")
    lines += ["", "Pose weight chosen per held-out person: " + ", ".join(map(str, fusion_w)) + ". (An untuned "
              "equal average gave 0.481: the appearance regression's near-certain probabilities decide.)"]
    for name, *_, cm in rows:
        labels = sorted({a for a, _ in cm})
        lines += ["", f"Summed confusion matrix, {name} (rows: true, columns: predicted):", "",
                  "| true \\ pred | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        lines += [f"| {a} | " + " | ".join(str(cm[(a, b)]) for b in labels) + " |" for a in labels]
    if arid_found:
        m, k, n = arid_found
        lines += ["", f"Dark footage (`arid-dark`, {n} clips, 16 frames each): MediaPipe found a person in "
                      f"{m:.1%} of the frames, in at least one frame of {k}/{n} clips. (11 classes, 1-4 clips each: "
                      "too few for a grouped accuracy.)"]
    lines += ["", f"Generated by `benchmarks/pose_real.py --frames {args.frames}` (torch {torch.__version__}, "
                  f"{os.cpu_count()} CPUs visible)."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
