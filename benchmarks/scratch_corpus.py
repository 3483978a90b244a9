"""tiny3d trained from scratch on every corpus set, by grouped cross-validation (the no-pretraining row).

    python benchmarks/scratch_corpus.py [--only SET ...] [--epochs 12] [--folds 5]

Each set's own groups (the manifest's ``group`` column) are never split; leave-one-group-out sets are run
with ``--folds`` stratified grouped folds instead (a from-scratch model per signer would cost 10-12
trainings a set on 2 cores). Pooled top-1 with a Wilson 95 % interval and CPU minutes ->
``benchmarks/results/scratch_corpus.md``.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import default_root, load_corpus  # noqa: E402

from vidcat.config import CVConfig, DataConfig, TrainConfig  # noqa: E402
from vidcat.engine.crossval import cross_validate  # noqa: E402
from vidcat.metrics import wilson  # noqa: E402


def cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=None)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--runs", default="runs/scratch_corpus")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scratch_corpus.md"))
    a = ap.parse_args(argv)
    rows = []
    for entry in load_corpus(a.root or default_root()):
        if a.only and entry["name"] not in a.only:
            continue
        proto = entry["protocol"]
        folds = None if proto.get("protocol") == "logo" and proto.get("n_groups", 99) <= 5 else a.folds
        c0 = cpu_s()
        out = Path(a.runs) / entry["name"]
        cfg = TrainConfig(source=str(entry["manifest"]), out=str(out), model="tiny3d", epochs=a.epochs,
                          val_split=0.0, workers=1, progress=False, resume="auto",
                          data=DataConfig(frames=8, size=64, clip_cache=str(out / "clips")))
        s = cross_validate(cfg, CVConfig(folds=folds))
        n = sum(f["n_scored"] for f in s["folds"])
        k = int(round(sum(f["top1"] * f["n_scored"] for f in s["folds"])))
        lo, hi = wilson(k, n)
        rows.append({"set": entry["name"], "protocol": s["protocol"], "folds": s["n_folds"], "top1": k / n, "k": k,
                     "n": n, "lo": lo, "hi": hi, "cpu_min": (cpu_s() - c0) / 60})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["# tiny3d from scratch on the corpus", "",
             f"Command: `python benchmarks/scratch_corpus.py --epochs {a.epochs} --folds {a.folds}` (8 frames at 64², "
             "no validation split: the last epoch is scored)", "",
             "| set | protocol | top-1 | 95% CI | CPU min |", "|---|---|---|---|---|"]
    lines += [f"| {r['set']} | {r['protocol']} ({r['folds']} folds) | {r['top1']:.3f} ({r['k']}/{r['n']}) | "
              f"{r['lo']:.2f}-{r['hi']:.2f} | {r['cpu_min']:.1f} |" for r in rows]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
