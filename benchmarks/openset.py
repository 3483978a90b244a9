""""None of these" on real sets: each class in turn is left out of training; do its clips come out ``unknown``?

    python benchmarks/openset.py [--root DIR] [--only SET ...] [--streams appearance,motion] [--min-classes 4]

For every corpus set with at least ``--min-classes`` classes, by the set's grouped protocol (``protocol.json``):
for each class c and each outer fold, the default is refitted on the outer training clips of the other
classes -- the set's chosen streams, head settings and stacker kind fixed (:mod:`fixed_default`: chosen
once on all clips, to stay affordable) -- and learns its rule as ``vidcat train`` does
(:func:`vidcat.featurefit.unknown.fit_open_set`: family by the held-out-class simulation on its own training
classes, calibration, threshold at ``--min-precision``). Its scores of the outer test clips then give:

* AUROC of c's clips against the known test clips, per family and for the family the rule chose, pooled over
  the outer folds and averaged over the classes;
* at the threshold: precision of the accepted predictions (an accepted clip of c counts as wrong), coverage
  of the known clips, and the share of c's clips flagged.

Writes ``benchmarks/results/openset.{md,json}``.
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
from fixed_default import choose_settings, refit  # noqa: E402
from real_data import features, outer_folds  # noqa: E402

from scipy.special import logsumexp, softmax  # noqa: E402

from vidcat.featurefit.calibration import fit_calibration  # noqa: E402
from vidcat.featurefit.rule import rule_from  # noqa: E402
from vidcat.featurefit.openset import FAMILIES, LOGIT_FAMILIES  # noqa: E402
from vidcat.featurefit.unknown import (distance_model, distance_scores, family_scores, fit_open_set,  # noqa: E402
                                       space_and_blocks)


def one_fold(settings, inputs, y, groups, held: int, tr, te, target: dict) -> dict | None:
    """Scores of one outer fold with class ``held`` left out: per family and the rule's, known and held-out."""
    keep = np.array([c for c in range(int(y.max()) + 1) if c != held])
    remap = np.full(int(y.max()) + 1, -1)
    remap[keep] = np.arange(len(keep))
    trk = tr[y[tr] != held]
    sub = {n: i.take(trk) for n, i in inputs.items()}
    fit, folds = refit(settings, sub, remap[y[trk]], groups[trk])
    if fit is None or len(np.unique(remap[y[trk]])) < 2:
        return None
    ok = np.isfinite(fit.oof_logits).all(1)
    cal = fit_calibration(fit.oof_logits[ok], remap[y[trk]][ok], groups[trk][ok])
    _, entry = fit_open_set(fit, sub, remap[y[trk]], folds, cal, target)
    test = {n: i.take(te) for n, i in inputs.items()}
    train_raw, train_present, widths = space_and_blocks(fit, sub)
    raw, present, _ = space_and_blocks(fit, test)
    z = cal.logits(fit.logits(test))
    scores = {f: family_scores(f, z) for f in LOGIT_FAMILIES}
    for f in FAMILIES:
        if f not in LOGIT_FAMILIES:
            c, means = distance_model(train_raw, train_present, widths, remap[y[trk]], f)
            scores[f] = distance_scores(c, means, raw, present, widths)
    out = {"scores": scores, "unknown": y[te] == held, "correct": z.argmax(1) == remap[y[te]]}
    if entry is not None:
        rule = rule_from(entry)
        evidence = {"energy": -logsumexp(z, axis=1), "space": raw, "present": present}
        out.update(rule=rule.family, accepted=rule.scores(softmax(z, axis=1), evidence) <= rule.threshold)
    return out


def auroc(neg, pos) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos])) if len(neg) and len(pos) else None


def held_out_class(settings, inputs, y, groups, folds, held: int, target: dict) -> dict | None:
    """One class left out over every outer fold: AUROC per family and of the chosen one, and the rule's counts."""
    parts = [p for tr, te in folds if (p := one_fold(settings, inputs, y, groups, held, np.asarray(tr), np.asarray(te), target))]
    if not parts:
        return None
    u = np.concatenate([p["unknown"] for p in parts])
    row = {f: auroc(*(lambda s: (s[~u], s[u]))(np.concatenate([p["scores"][f] for p in parts]))) for f in FAMILIES}
    ruled = [p for p in parts if "rule" in p]
    chosen = np.concatenate([p["scores"][p["rule"]] for p in ruled]) if ruled else None
    uu = np.concatenate([p["unknown"] for p in ruled]) if ruled else None
    row["chosen"] = auroc(chosen[~uu], chosen[uu]) if ruled else None
    row["families"] = sorted({p["rule"] for p in ruled})
    if ruled:
        acc = np.concatenate([p["accepted"] for p in ruled])
        good = np.concatenate([p["correct"] for p in ruled]) & ~uu
        row.update(accepted=int(acc.sum()), accepted_correct=int((acc & good).sum()), known=int((~uu).sum()),
                   known_accepted=int((acc & ~uu).sum()), unknown=int(uu.sum()), unknown_flagged=int((~acc & uu).sum()))
    return row


def score_set(entry, streams, cache, target: dict) -> dict:
    inputs, _, y, groups, nc, _ = features(entry, streams, cache)
    folds = outer_folds(y, groups, entry["protocol"])
    t0 = time.process_time()
    settings = choose_settings(inputs, y, groups)
    rows = {}
    for c in range(nc):
        r = held_out_class(settings, inputs, y, groups, folds, c, target)
        if r is not None:
            rows[c] = r
            print(json.dumps({"set": entry["name"], "held_out": c, **{k: v for k, v in r.items()}}), flush=True)
    return summarise(entry["name"], rows, settings, time.process_time() - t0)


def summarise(name: str, rows: dict, settings, cpu: float) -> dict:
    mean = {f: float(np.mean([r[f] for r in rows.values() if r[f] is not None])) for f in (*FAMILIES, "chosen")}
    tot = {k: sum(r.get(k, 0) for r in rows.values()) for k in ("accepted", "accepted_correct", "known",
                                                                  "known_accepted", "unknown", "unknown_flagged")}
    return {"set": name, "classes_held_out": len(rows), "streams": list(settings.chosen), "auroc": mean,
            "families_chosen": sorted({f for r in rows.values() for f in r["families"]}),
            "precision": tot["accepted_correct"] / max(tot["accepted"], 1), "coverage": tot["known_accepted"] / max(tot["known"], 1),
            "unknown_flagged": tot["unknown_flagged"] / max(tot["unknown"], 1), "counts": tot, "cpu_min": cpu / 60,
            "per_class": rows}


def markdown(results: list[dict], target: dict) -> str:
    lines = [f"Target: {target}. AUROC: held-out class vs known test clips, mean over the classes left out.", "",
             "| set | classes left out | streams | AUROC msp | energy | mahalanobis | cosine | chosen (families) | "
             "precision | coverage | held-out flagged | CPU min |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        a = r["auroc"]
        lines.append(f"| {r['set']} | {r['classes_held_out']} | {'+'.join(r['streams'])} | {a['msp']:.3f} | {a['energy']:.3f} "
                     f"| {a['mahalanobis']:.3f} | {a['cosine']:.3f} | {a['chosen']:.3f} ({', '.join(r['families_chosen'])}) "
                     f"| {r['precision']:.3f} | {r['coverage']:.3f} | {r['unknown_flagged']:.3f} | {r['cpu_min']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    corpus_arguments(ap)
    ap.add_argument("--min-classes", type=int, default=4)
    ap.add_argument("--min-precision", type=float, default=0.9)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "openset"))
    a = ap.parse_args(argv)
    streams = a.streams
    target, results = {"min_precision": a.min_precision, "coverage": None}, []
    for entry in load_corpus(a.root or default_root()):
        if a.only and entry["name"] not in a.only:
            continue
        n_classes = len(entry["protocol"].get("classes", []))
        if n_classes < a.min_classes:
            print(f"{entry['name']}: {n_classes} classes < --min-classes {a.min_classes}: skipped", flush=True)
            continue
        results.append(score_set(entry, streams, a.cache, target))
    Path(a.out + ".json").write_text(json.dumps({"target": target, "results": results}, indent=1, default=str))
    print(markdown(results, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
