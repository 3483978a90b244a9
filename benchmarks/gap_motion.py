"""Frame-only vs temporal models on the synthetic `motion` benchmark (the foundation's acceptance).

The class is the direction of motion and appearance is random, so a frame-order-free model (TSN
with average consensus) must sit near chance (0.25) while a temporal model learns it.

    .venv/bin/python benchmarks/gap_motion.py [--per-class 60] [--epochs 10] [--out runs/gap]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import vidcat
from vidcat.data.synthetic import SynthConfig, generate
from vidcat.models.registry import count_parameters, create_model

MODELS = {  # name -> train overrides (same data, same epochs, each model at a CPU-friendly size)
    "tsn": {"size": 32, "frames": 8},
    "tiny3d": {},
}


def run(per_class: int, epochs: int, out: Path, models=MODELS, seed: int = 0, batch_size: int = 8) -> list[dict]:
    data = out / "data"
    if not (data / "test.csv").exists():
        generate(data, SynthConfig(per_class=per_class, seed=seed), progress=False)
    rows = []
    for name, overrides in models.items():
        t = time.time()
        vidcat.train(data=data / "train.csv", out=out / name, model=name, epochs=epochs, workers=1,
                     progress=False, seed=seed, batch_size=batch_size, **overrides)
        res = vidcat.evaluate(out / name / "best.pt", data / "test.csv", workers=1, progress=False)
        rows.append({"model": name, "params": count_parameters(create_model(name, 4)), "top1": res["top1"],
                     "train_s": round(time.time() - t, 1), **overrides})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-class", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default="runs/gap")
    a = ap.parse_args()
    rows = run(a.per_class, a.epochs, Path(a.out), batch_size=a.batch_size)
    md = ["| model | params | input | top-1 (test) | train s |", "|---|---|---|---|---|"]
    md += [f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r.get('frames', 16)}x{r.get('size', 64)}² | "
           f"{r['top1']:.3f} | {r['train_s']} |" for r in rows]
    print("\n".join(md))
    print(json.dumps(rows))
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/gap_motion.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
