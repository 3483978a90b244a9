"""Does ``vidcat suggest`` pick better clips to label than chance? Simulated labelling on a real set.

    python benchmarks/suggest.py [--root DIR] [--only SET ...] [--streams appearance,motion] [--repeats 5]

On each outer fold of the set's grouped protocol, the outer test clips are held out and the training clips
are the unlabelled pool. Labelling starts from a seed set (one clip per class, drawn at random) and grows by
``--batch`` clips per round until the pool is labelled, either the clips
:func:`vidcat.featurefit.suggest.suggest_clips` picks (margin uncertainty of the fused probabilities, spread
over the heads' pooled inputs) or clips drawn at random. Each round refits the chosen streams' heads
(settings fixed per set, :mod:`fixed_default`) on the labelled clips, fuses them by the plain sum of their
centred log-probabilities (as ``vidcat train``'s learning curve does: a stacker needs out-of-fold scores a
handful of labels cannot give) and scores the held-out clips. Accuracy is pooled over the outer folds per
number of labels and averaged over ``--repeats`` seeds.

The target: reach the accuracy of random labelling with every pool label while labelling at most 60 % of
the pool. Writes ``benchmarks/results/suggest.{md,json}`` and ``suggest_<set>.png`` (both curves).
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
from fixed_default import choose_settings  # noqa: E402
from real_data import features, outer_folds  # noqa: E402

from vidcat.featurefit import fusion as FU  # noqa: E402
from vidcat.featurefit import heads as H  # noqa: E402
from vidcat.featurefit.suggest import suggest_clips  # noqa: E402


def fit_predict(settings, inputs: dict, y: np.ndarray, labelled: np.ndarray, rows: np.ndarray, nc: int):
    """``(log-probabilities (len(rows), K), pooled inputs (len(rows), D))`` of the chosen streams refitted on
    the ``labelled`` clips, fused by the sum of their centred log-probabilities."""
    total, space = np.zeros((len(rows), nc)), []
    for name in settings.chosen:
        inp, est = inputs[name], settings.heads[name].estimator
        space.append(est.named_steps["pool"].transform(inp.x[rows, 0]))
        pres = labelled[inp.present[labelled] > 0]
        if len(np.unique(y[pres])) < 2:
            continue
        fitted = H.fit_rows(est, inp.x[pres], y[pres])
        total += FU.centred(H.log_proba(fitted, inp.x[rows, 0], nc)) * (inp.present[rows, None] > 0)
    return total, np.concatenate(space, 1)


def curve(settings, inputs, y, tr, te, nc, how: str, batch: int, rng) -> list[tuple[int, int]]:
    """``[(labels used, correct held-out clips)]`` of one labelling run on one outer fold."""
    seed = np.array([rng.choice(tr[y[tr] == c]) for c in np.unique(y[tr])])
    labelled, out = list(seed), []
    while True:
        lab = np.array(labelled)
        z, _ = fit_predict(settings, inputs, y, lab, te, nc)
        out.append((len(lab), int((z.argmax(1) == y[te]).sum())))
        pool = np.setdiff1d(tr, lab)
        if not len(pool):
            return out
        n = min(batch, len(pool))
        if how == "random":
            labelled += list(rng.choice(pool, n, replace=False))
            continue
        zp, xp = fit_predict(settings, inputs, y, lab, pool, nc)
        p = np.exp(zp - zp.max(1, keepdims=True))
        picks = suggest_clips(p / p.sum(1, keepdims=True), xp, n=n)
        labelled += [int(pool[s.index]) for s in picks]


def score_set(entry, streams, cache, batch: int, repeats: int) -> dict:
    inputs, _, y, groups, nc, _ = features(entry, streams, cache)
    folds = outer_folds(y, groups, entry["protocol"])
    t0 = time.process_time()
    settings = choose_settings(inputs, y, groups)
    acc = {"suggest": {}, "random": {}}
    for r in range(repeats):
        for how in acc:
            rng = np.random.default_rng(r)
            runs = [curve(settings, inputs, y, np.asarray(tr), np.asarray(te), nc, how, batch, rng) for tr, te in folds]
            for step in range(max(len(c) for c in runs)):      # pooled over folds at each round
                pts = [c[min(step, len(c) - 1)] for c in runs]
                frac = float(np.mean([n / len(tr) for (n, _), (tr, _) in zip(pts, folds)]))
                acc[how].setdefault(step, []).append((frac, sum(k for _, k in pts) / sum(len(te) for _, te in folds)))
    curves = {how: [(float(np.mean([f for f, _ in v])), float(np.mean([a for _, a in v]))) for _, v in sorted(d.items())]
              for how, d in acc.items()}
    full = curves["random"][-1][1]
    reach = next((f for f, a in curves["suggest"] if a >= full - 1e-9), None)
    row = {"set": entry["name"], "streams": list(settings.chosen), "classes": nc, "batch": batch, "repeats": repeats,
           "curves": curves, "all_labels_accuracy": full, "suggest_reaches_it_at": reach,
           "target_met": reach is not None and reach <= 0.6, "cpu_min": (time.process_time() - t0) / 60}
    print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
    return row


def plot(row: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for how, style in (("suggest", "o-"), ("random", "s--")):
        f, a = zip(*row["curves"][how])
        ax.plot(np.array(f) * 100, a, style, label=how, markersize=3)
    ax.axhline(row["all_labels_accuracy"], color="grey", lw=0.8, label="all labels")
    ax.axvline(60, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="pool labelled (%)", ylabel="held-out top-1", title=f"{row['set']}: suggest vs random")
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    corpus_arguments(ap)
    ap.add_argument("--batch", type=int, default=None, help="clips labelled per round (default: 5 %% of the pool, >= 1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "suggest"))
    a = ap.parse_args(argv)
    streams = a.streams
    rows = []
    for entry in load_corpus(a.root or default_root()):
        if a.only and entry["name"] not in a.only:
            continue
        batch = a.batch or max(1, round(0.05 * entry["protocol"].get("n_clips", 20)))
        rows.append(score_set(entry, streams, a.cache, batch, a.repeats))
        plot(rows[-1], Path(a.out).with_name(f"suggest_{entry['name']}.png"))
    Path(a.out + ".json").write_text(json.dumps(rows, indent=1))
    print("| set | batch | all-labels top-1 (random) | suggest reaches it at | target (<= 60 %) met |\n|---|---|---|---|---|")
    for r in rows:
        at = "never" if r["suggest_reaches_it_at"] is None else f"{100 * r['suggest_reaches_it_at']:.0f} %"
        print(f"| {r['set']} | {r['batch']} | {r['all_labels_accuracy']:.3f} | {at} | {r['target_met']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
