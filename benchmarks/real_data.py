"""Every candidate pipeline over every real set of the development corpus, by each set's grouped protocol.

    python benchmarks/corpus.py                       # lay the corpus out once (see that script)
    python benchmarks/real_data.py [--root DIR] [--only SET ...] [--configs lite0_8x160 ...]

For each set and each frozen representation (backbone x frames x size, :data:`CONFIGS`) the per-frame
``frame_head`` features of every clip (centre view + augmented views) are extracted through vidcat's own
data path and store (:mod:`vidcat.transfer.extract`, cached: re-runs take seconds). Then, on the set's
outer folds (leave one group out, or stratified grouped k-fold), every pipeline is scored:

* ``default``: what ``vidcat train`` does on the outer training clips -- grouped-CV selection among
  :data:`vidcat.transfer.select.CANDIDATES` (1-SE rule), refit, predict the outer test clips;
* each single candidate of the family, fixed;
* each candidate trained on centre views only (``, centre view only``): what the augmented views buy.

The table gives top-1 with the Wilson 95 % interval, CPU minutes (extraction of the first run + fitting)
and each pipeline's mean rank across sets; ``benchmarks/results/real_data.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import default_root, load_corpus  # noqa: E402

from vidcat.config import DataConfig  # noqa: E402
from vidcat.data.manifest import item_groups, load_dataset  # noqa: E402
from vidcat.io.store import Store  # noqa: E402
from vidcat.models.frame_head import LITE_NORM, frame_head  # noqa: E402
from vidcat.transfer import select as S  # noqa: E402
from vidcat.transfer.extract import NAMESPACE, extract  # noqa: E402

CONFIGS = {  # name: (backbone, frames, size)
    "lite0_8x160": ("efficientnet_lite0", 8, 160),
    "lite0_8x224": ("efficientnet_lite0", 8, 224),
    "lite0_16x160": ("efficientnet_lite0", 16, 160),
    "lite2_8x260": ("efficientnet_lite2", 8, 260),
}
VIEWS = 3


def outer_folds(labels, groups, protocol: dict, seed: int = 0):
    if protocol.get("protocol") == "logo":
        return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in np.unique(groups)]
    return S.grouped_folds(labels, groups, int(protocol.get("folds", 5)), seed)


def features(entry: dict, config: str, cache: str | None):
    """(feats, labels, groups, CPU seconds of extraction in this run, clips computed)."""
    backbone, frames, size = CONFIGS[config]
    ds = load_dataset(entry["manifest"])
    data = DataConfig(frames=frames, size=size, short_side=size, sampler="tsn", stride=1, modalities=("video",),
                      **LITE_NORM)
    model = frame_head(len(ds.classes), pretrained=True, backbone=backbone)
    t0 = time.process_time()
    fs = extract(ds, data, model, views=VIEWS, store=Store(NAMESPACE, root=cache))
    cpu = time.process_time() - t0
    labels = np.array([ds.classes.index(ds.items[i].labels[0]) for i in fs.index])
    groups = np.unique(np.array(item_groups(ds, None))[fs.index], return_inverse=True)[1]
    return fs.feats, labels, groups, cpu, fs.computed, len(ds.classes)


def score_pipelines(feats, labels, groups, folds, nc, cands=S.CANDIDATES, stages=("fixed", "default")) -> dict:
    """{pipeline: correct (N,) bool over the outer test clips, pipeline + " :cpu": CPU seconds, ...}."""
    out = {":fixed_cpu": 0.0}
    if "fixed" in stages:
        t0 = time.process_time()
        for c, (_, oof) in S.score(S._blocks(feats, cands), labels, folds, cands, nc).items():
            out[c.name] = oof
        out[":fixed_cpu"] = (time.process_time() - t0) / max(len(cands), 1)
    if "centre" in stages:                   # the family again, trained on centre views only
        for c, (_, oof) in S.score(S._blocks(feats[:, :1], cands), labels, folds, cands, nc).items():
            out[c.name + ", centre view only"] = oof
    for name in ("default",) if "default" in stages else ():
        t0, oof, chosen = time.process_time(), np.zeros(len(labels), bool), []
        for tr, te in folds:
            sel = S.select(feats[tr], labels[tr], groups[tr], nc, cands=cands, nested=False)
            head = S.fit_head(feats[tr], labels[tr], sel.best, nc)
            with torch.no_grad():
                oof[te] = head(torch.from_numpy(feats[te, 0])).argmax(1).numpy() == labels[te]
            chosen.append(sel.best.name)
        out[name] = oof
        out[name + " :chosen"] = chosen
        out[name + " :cpu"] = time.process_time() - t0
    return out


def run(root, only, configs, cache, stages) -> list[dict]:
    rows = []
    for entry in load_corpus(root):
        if only and entry["name"] not in only:
            continue
        for config in configs:
            feats, labels, groups, cpu, computed, nc = features(entry, config, cache)
            folds = outer_folds(labels, groups, entry["protocol"])
            res = score_pipelines(feats, labels, groups, folds, nc, stages=stages)
            for name, oof in res.items():
                if name.startswith(":") or " :" in name:
                    continue
                k, n = int(oof.sum()), len(oof)
                lo, hi = S.wilson(k, n)
                fit_cpu = res.get(name + " :cpu", res[":fixed_cpu"])
                rows.append({"set": entry["name"], "config": config, "pipeline": name, "top1": k / n, "k": k,
                             "n": n, "lo": lo, "hi": hi, "extract_cpu_min": cpu / 60, "fit_cpu_min": fit_cpu / 60,
                             "computed": computed, "groups": int(len(np.unique(groups))), "folds": len(folds),
                             "chosen": res.get(name + " :chosen")})
            print(json.dumps([r for r in rows if r["set"] == entry["name"] and r["config"] == config]), flush=True)
    return rows


def mean_ranks(rows) -> dict:
    """Mean rank (1 = best) of each (config, pipeline) across sets (ties share the mean rank)."""
    from scipy.stats import rankdata

    sets = sorted({r["set"] for r in rows})
    keys = sorted({(r["config"], r["pipeline"]) for r in rows})
    table = {(r["set"], r["config"], r["pipeline"]): r["top1"] for r in rows}
    ranks = {k: [] for k in keys}
    for s in sets:
        have = [k for k in keys if (s, *k) in table]
        for k, rk in zip(have, rankdata([-table[(s, *k)] for k in have])):
            ranks[k].append(float(rk))
    return {k: float(np.mean(v)) for k, v in ranks.items() if len(v) == len(sets)}


def markdown(rows) -> str:
    ranks = mean_ranks(rows)
    sets = sorted({r["set"] for r in rows})
    lines = ["| config | pipeline | " + " | ".join(sets) + " | mean top-1 | mean rank | CPU min (extract + fit) |",
             "|---" * (len(sets) + 5) + "|"]
    by = {(r["set"], r["config"], r["pipeline"]): r for r in rows}
    for key in sorted(ranks, key=ranks.get):
        cells, cpu = [], 0.0
        for s in sets:
            r = by[(s, *key)]
            cells.append(f"{r['top1']:.3f} ({r['lo']:.2f}-{r['hi']:.2f})")
            cpu += r["extract_cpu_min"] + r["fit_cpu_min"]
        mean = np.mean([by[(s, *key)]["top1"] for s in sets])
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + f" | {mean:.3f} | {ranks[key]:.2f} | {cpu:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=None, help="corpus root (default: $VIDCAT_CORPUS or ~/.cache/vidcat/corpus)")
    ap.add_argument("--only", nargs="*", default=None, help="set names")
    ap.add_argument("--configs", nargs="*", default=["lite0_8x160"], choices=sorted(CONFIGS))
    ap.add_argument("--cache", default=None, help="feature store root (default: vidcat's cache root)")
    ap.add_argument("--stages", nargs="*", default=["fixed", "centre", "default"], choices=["fixed", "centre", "default"],
                    help="fixed: every candidate alone; centre: the same trained on centre views only; default: "
                         "the per-set selection vidcat train runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "real_data"))
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    rows = run(a.root or default_root(), a.only, a.configs, a.cache, a.stages)
    Path(a.out + ".json").write_text(json.dumps(rows, indent=1))
    md = markdown(rows)
    Path(a.out + ".md").write_text("# Real footage: every pipeline over every corpus set\n\n"
                                   f"Command: `python benchmarks/real_data.py --configs {' '.join(a.configs)}`\n\n"
                                   + md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
