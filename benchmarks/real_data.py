"""The default model over every real set of the development corpus, by each set's grouped protocol.

    python benchmarks/corpus.py                       # lay the corpus out once (see that script)
    python benchmarks/real_data.py [--root DIR] [--only SET ...] [--streams auto|appearance,pose,...] [--estimate]

For each set, every stream the default would plan (or ``--streams``) is extracted through vidcat's own data
path into the store (:mod:`vidcat.featurefit.extract`; cached, so re-runs take seconds). Then, on the set's
outer folds (leave one group out, or stratified grouped k-fold, ``protocol.json``), every pipeline is fitted
on the outer training clips and scored on the outer test clips:

* ``default``: what ``vidcat train`` does with the outer training clips -- each stream's head by grouped CV,
  every stream with signal (one-sided binomial test on its out-of-fold accuracy) kept, the stacker chosen by
  grouped CV and the 1-SE rule, refit -- then predicts the outer test clips;
* ``<stream> only``: the same procedure given that one stream.

With ``--estimate`` each outer fold also computes the estimate ``vidcat train`` would print for its training
clips (its own nested grouped CV), and the table compares the mean printed estimate with the held-out score.
Top-1 is pooled over the held-out clips with its Wilson 95 % interval; ``benchmarks/results/real_data.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import corpus_arguments, default_root, load_corpus  # noqa: E402

from vidcat.config import DataConfig  # noqa: E402
from vidcat.data.manifest import load_dataset  # noqa: E402
from vidcat.data.splits import codes, given_groups, grouped_folds  # noqa: E402
from vidcat.featurefit import recipe as R  # noqa: E402
from vidcat.featurefit.plan import plan_streams  # noqa: E402
from vidcat.featurefit.select import nested_correct  # noqa: E402
from vidcat.metrics import wilson  # noqa: E402
from vidcat.models.build import setup_model  # noqa: E402


def outer_folds(labels, groups, protocol: dict, seed: int = 0):
    k = None if protocol.get("protocol") == "logo" else int(protocol.get("folds", 5))
    return grouped_folds(labels, groups, k, seed)


def features(entry: dict, streams, cache: str | None):
    """(stream inputs, data settings, labels, groups, number of classes, per-stream costs)."""
    ds = load_dataset(entry["manifest"])
    setup = setup_model(None, DataConfig(), ds.classes)
    plan = plan_streams(ds.items, setup.data, tuple(streams) if streams else None, log=print)
    data, modules = R.planned_modules(setup, plan)
    cfg = SimpleNamespace(cache=cache, ray=False, address=None, strict=False, workers=0 if len(ds.items) < 40 else None)
    sets = R.extract_all(ds, data, modules, cfg, log=print)
    costs = R.stream_costs(sets, print)
    index = sets["appearance"].index
    labels = np.array([ds.classes.index(ds.items[i].labels[0]) for i in index])
    groups = codes(np.array(given_groups(ds, None))[index])
    return R.stream_inputs(sets, modules), data, labels, groups, len(ds.classes), costs


def estimate_per_fold(inputs, labels, groups, folds, nc) -> list[dict]:
    """The estimate ``vidcat train`` would print for each outer fold's training clips."""
    out = []
    for tr, _ in folds:
        sub = {n: i.take(tr) for n, i in inputs.items()}
        inner = grouped_folds(labels[tr], groups[tr], R.FOLDS)
        out.append(R.estimate(sub, labels[tr], groups[tr], inner, nc, 0, "stratified grouped k-fold")[0])
    return out


def default_correct(inputs, data, labels, groups, folds, nc, forced: bool) -> tuple[np.ndarray, list]:
    """(N,) correctness of the default, re-run on each outer fold's training clips as ``vidcat train`` runs it:
    costly streams only where the cheap ones leave room (unless ``--streams`` forced them), then the selection."""
    ok, used = np.zeros(len(labels), bool), []
    for tr, te in folds:
        sub = {n: i.take(tr) for n, i in inputs.items()}
        cheap = {n: i for n, i in sub.items() if not R.costly(n, data)}
        inner = grouped_folds(labels[tr], groups[tr], R.FOLDS, 1)
        keep = set(sub) if forced or len(cheap) == len(sub) or not inner else \
            set(sub) if R.has_room(cheap, labels[tr], inner, nc)[0] else set(cheap)
        used.append(sorted(keep))
        ok[te] = nested_correct({n: inputs[n] for n in keep}, labels, groups, [(tr, te)], nc, inner_k=R.FOLDS)[te]
    return ok, used


def score(entry, inputs, data, labels, groups, nc, alone: bool, estimate: bool, forced: bool) -> list[dict]:
    folds = outer_folds(labels, groups, entry["protocol"])
    pipelines = {"default": inputs}
    if alone:
        pipelines.update({f"{n} only": {n: inputs[n]} for n in inputs if len(inputs) > 1})
    rows = []
    for name, inp in pipelines.items():
        t0 = time.process_time()
        if name == "default":
            ok, used = default_correct(inp, data, labels, groups, folds, nc, forced)
        else:
            ok, used = nested_correct(inp, labels, groups, folds, nc, inner_k=R.FOLDS), None
        k, n = int(ok.sum()), len(ok)
        lo, hi = wilson(k, n)
        row = {"set": entry["name"], "pipeline": name, "top1": k / n, "k": k, "n": n, "lo": lo, "hi": hi,
               "fit_cpu_min": (time.process_time() - t0) / 60, "groups": int(len(np.unique(groups))),
               "folds": len(folds), "protocol": entry["protocol"].get("protocol"), "streams_per_fold": used}
        if estimate and name == "default":
            row["estimates"] = estimate_per_fold(inputs, labels, groups, folds, nc)
            row.update(agreement(row))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def agreement(row: dict) -> dict:
    """Mean printed estimate against the held-out score, and whether they agree within their combined
    95 % uncertainty: |e - h| <= 1.96 sqrt(se_e^2 + se_h^2)."""
    ests = [e for e in row["estimates"] if e.get("top1") is not None]
    if not ests:
        return {}
    e = float(np.mean([x["top1"] for x in ests]))
    n_e = float(np.mean([x["n"] for x in ests]))
    se_e, se_h = math.sqrt(e * (1 - e) / n_e), math.sqrt(row["top1"] * (1 - row["top1"]) / row["n"])
    gap = abs(e - row["top1"])
    return {"estimate": round(e, 4), "gap": round(gap, 4), "agrees": bool(gap <= 1.96 * math.hypot(se_e, se_h))}


def markdown(rows, costs) -> str:
    lines = ["| set | pipeline | top-1 (95% CI) | held-out clips | printed estimate (agrees?) | fit CPU min | "
             "streams' CPU s/clip |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        est = f"{r['estimate']:.3f} ({'yes' if r['agrees'] else 'no'})" if "estimate" in r else ""
        c = costs.get(r["set"], {})
        cpu = ", ".join(f"{k} {v['cpu_s_per_clip']:.2f}" for k, v in c.items()) if r["pipeline"] == "default" else ""
        lines.append(f"| {r['set']} | {r['pipeline']} | {r['top1']:.3f} ({r['lo']:.2f}-{r['hi']:.2f}) | {r['k']}/{r['n']} "
                     f"| {est} | {r['fit_cpu_min']:.1f} | {cpu} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    corpus_arguments(ap)
    ap.add_argument("--alone", action="store_true", help="also score the procedure given each stream alone")
    ap.add_argument("--estimate", action="store_true", help="also the estimate vidcat train prints, per outer fold")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "real_data"))
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)       # a second torch thread only spins on a busy 2-core machine
    streams = a.streams
    rows, costs = [], {}
    for entry in load_corpus(a.root or default_root()):
        if a.only and entry["name"] not in a.only:
            continue
        inputs, data, labels, groups, nc, costs[entry["name"]] = features(entry, streams, a.cache)
        rows += score(entry, inputs, data, labels, groups, nc, a.alone, a.estimate, forced=bool(streams))
    Path(a.out + ".json").write_text(json.dumps({"rows": rows, "costs": costs}, indent=1))
    md = markdown(rows, costs)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
