"""Every model family on the same synthetic `motion` benchmark, each for a fixed short budget on this CPU.

    .venv/bin/python benchmarks/zoo_motion.py [--models tsn,tsm,...] [--per-class 40] [--threads 2]

Writes ``benchmarks/results/zoo_motion.md`` (rewritten after every model, so a stopped run still
leaves a table) and ``runs/zoo_motion/<model>/`` (checkpoints, history, test eval JSON). Data:
``vidcat synth --kind motion --per-class 40 --seed 0`` into ``data/zoo_motion`` (made when missing).

The class is the direction of motion and nothing in a single frame tells it, so the frame-order-free
``tsn`` (average consensus) must sit near chance (0.25) while temporal models (tsm, lrcn, 3D CNNs)
beat it. Each model gets a fixed epoch budget (table column "budget"); big 3D nets get a reduced
input (8 frames, one per TSN segment, at 32x32 or 64x64; X3D-XS its own 4 frames) so they train on
2 CPU cores at all. Models too slow to train here are listed with their forward time only.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vidcat  # noqa: E402
from vidcat.data.synthetic import SynthConfig, generate  # noqa: E402
from vidcat.models.registry import count_parameters, create_model, get_spec  # noqa: E402


@dataclass
class Entry:
    name: str
    frames: int
    size: int
    epochs: int = 0                  # 0 = not trained on CPU: forward time only
    batch: int = 16
    lr: float = 2e-3
    stride: int = 1
    sampler: str | None = None       # None = the model's own (tsn for tsn/tsm)
    note: str = ""
    kwargs: dict = field(default_factory=dict)
    tag: str = ""                    # a second entry of the same model: "tsn:consecutive"

    @property
    def key(self) -> str:
        return f"{self.name}:{self.tag}" if self.tag else self.name

    @property
    def input(self) -> str:
        s = f"{self.frames}x{self.size}²"
        if self.sampler == "tsn" or (self.sampler is None and get_spec(self.name).sampler == "tsn"):
            return s + " (TSN segments)"
        return s + (f" stride {self.stride}" if self.stride > 1 else "")


# Most important first: a run stopped early (or run with --models) still answers the main question.
ZOO = [
    Entry("tsn", 8, 64, epochs=15, sampler="tsn",
          note="avg consensus, frame-order-free: from frames spread over the whole video it can tell the axis "
               "of motion (horizontal/vertical) but not the direction, ceiling 0.50"),
    Entry("tsn", 8, 64, epochs=15, sampler="clip", tag="consecutive",
          note="avg consensus over 8 consecutive frames: chance (0.25)"),
    Entry("tsm", 8, 64, epochs=15, sampler="tsn", note="an earlier run on 8 consecutive frames (8 ep): 0.23, memorised"),
    Entry("lrcn", 8, 64, epochs=15, lr=1e-3, sampler="tsn", note="an earlier run on 16 consecutive frames (8 ep): 0.45"),
    Entry("tiny3d", 16, 64, epochs=30),
    Entry("r3d_18", 8, 32, epochs=10, sampler="tsn", note="reduced input"),
    Entry("r2plus1d_18", 8, 32, epochs=10, sampler="tsn", note="reduced input"),
    Entry("i3d_r18", 8, 64, epochs=10, sampler="tsn", note="reduced input"),
    Entry("x3d_xs", 4, 64, epochs=5, sampler="tsn", note="X3D-XS's 4 frames, reduced size"),
    Entry("c3d", 16, 112, note="fixed 16x112: ~3 s/clip per training step here"),
    Entry("mc3_18", 8, 32, note="reduced input"),
    Entry("s3d", 16, 64, note="reduced input"),
    Entry("i3d_r50", 8, 64, note="reduced input"),
    Entry("x3d_s", 13, 160, note="native input"),
    Entry("x3d_m", 16, 224, note="native input"),
    Entry("mvit_v2_s", 16, 224, note="fixed 16x224"),
    Entry("swin3d_t", 32, 224, note="native input; very slow on CPU"),
]


def forward_ms(name: str, frames: int, size: int, batch: int = 2, repeat: int = 3) -> float:
    """Best-of-``repeat`` eval-mode forward time per clip (ms) for a batch of ``batch`` random clips."""
    model = create_model(name, num_classes=4).eval()
    x = torch.randn(batch, 3, frames, size, size)
    best = float("inf")
    with torch.no_grad():
        model(x)  # warm-up (allocations, oneDNN kernels)
        n, t_end = 0, time.perf_counter() + 2.0
        while n < repeat or (n < 20 and time.perf_counter() < t_end):  # fast models: more tries, best of them
            t0 = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t0)
            n += 1
    return 1000 * best / batch


def run_entry(e: Entry, data: Path, runs: Path, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    row = {"model": e.key, "family": get_spec(e.name).family, "input": e.input, "note": e.note,
           "params_m": count_parameters(create_model(e.name, num_classes=4)) / 1e6}
    big = e.size >= 160 or e.name in ("c3d", "swin3d_t", "mvit_v2_s")
    row["ms_per_clip"] = forward_ms(e.name, e.frames, e.size, batch=1 if big else 2, repeat=2 if big else 3)
    if not e.epochs:
        row["budget"] = "not trained on CPU: ms/clip only"
        return row
    overrides = {"frames": e.frames, "size": e.size, "stride": e.stride}
    if e.sampler:
        overrides["sampler"] = e.sampler
    out = runs / e.key.replace(":", "_")
    t0 = time.time()
    summary = vidcat.train(data=data / "train.csv", out=out, model=e.name, val=str(data / "val.csv"),
                           epochs=e.epochs, batch_size=e.batch, lr=e.lr, workers=1, threads=threads, seed=0,
                           progress=False, model_kwargs=dict(e.kwargs), **overrides)
    row["train_s"] = time.time() - t0
    steps = e.epochs * math.ceil(len(open(data / "train.csv").readlines()[1:]) / e.batch)
    row["budget"] = f"{e.epochs} ep = {steps} steps (batch {e.batch}), {row['train_s']:.0f} s"
    row["val_top1"] = max((h.get("val_top1") or 0) for h in summary["history"])
    row["train_top1"] = summary["history"][-1]["train_top1"]  # last epoch: memorising shows as train >> test
    res = vidcat.evaluate(out / "best.pt", data / "test.csv", workers=1, progress=False, threads=threads,
                          json=str(out / "test_eval.json"))
    row.update(test_top1=res["top1"], n_test=res["n"], nonfinite=summary["nonfinite_steps"])
    return row


def write_table(rows: list[dict], path: Path, meta: dict) -> None:
    lines = [
        "# Model zoo on the synthetic `motion` benchmark (CPU)",
        "",
        f"Data: `vidcat synth --kind motion --per-class {meta['per_class']} --seed 0` "
        f"({meta['n_train']} train / {meta['n_val']} val / {meta['n_test']} test clips, 4 classes = direction of motion, "
        "64x64 source videos; chance = 0.25). Each model trains from scratch (no pretrained weights) for the fixed "
        "epoch budget shown (AdamW, warm-up + cosine, fp32), the best-val checkpoint is scored on the test split "
        "with one centre view. ms/clip: eval-mode forward at the input shown, best of ≥ 3 runs, batch 2 (batch 1 for "
        f"the big inputs), {meta['threads']} torch thread(s) on {meta['cpu']}; the CPU was shared with other jobs, so "
        "times are indicative. The big 3D nets get a reduced input (8 frames, one per TSN segment, at 32² or 64²) to "
        "fit the budget. \"TSN segments\": one frame from each of T equal segments of the 24-frame video (the "
        "whole motion); otherwise T consecutive frames. Train top-1 far above test top-1 means the model memorised "
        "the clips' random appearance instead of learning the motion.",
        "",
        "| model | family | input (T×S²) | params | ms/clip | budget | train top-1 (last epoch) | test top-1 | note |",
        "|---|---|---|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        top1 = f"**{r['test_top1']:.3f}**" if "test_top1" in r else "—"
        train1 = f"{r['train_top1']:.2f}" if "train_top1" in r else "—"
        lines.append(f"| `{r['model']}` | {r['family']} | {r['input']} | {r['params_m']:.2f} M | {r['ms_per_clip']:.0f} | "
                     f"{r['budget']} | {train1} | {top1} | {r['note']} |")
    trained = [r for r in rows if "test_top1" in r]
    temporal = [r for r in trained if get_spec(r["model"].split(":")[0]).temporal]
    order_free = [r for r in trained if r not in temporal]
    learned = [r for r in temporal if r["test_top1"] >= 0.75]
    memorised = [r for r in temporal if r["train_top1"] - r["test_top1"] >= 0.3 and r["test_top1"] < 0.75]
    underfit = [r for r in temporal if r not in learned and r not in memorised]
    pairs = lambda rs: ", ".join(f"`{r['model']}` ({r['train_top1']:.2f} / {r['test_top1']:.2f})" for r in rs)  # noqa: E731
    lines += [""]
    if order_free:
        lines.append(f"- Frame-order-free (train / test top-1): {pairs(order_free)}. Over consecutive frames they are at "
                     "chance; from frames spread over the whole clip they can see the axis of the motion "
                     "(horizontal or vertical: the confusion is left/right and up/down) but never its direction, "
                     "so their ceiling is 0.50.")
    if learned:
        lines.append(f"- Learned the direction of motion within the budget: {pairs(learned)}.")
    if memorised:
        lines.append(f"- Memorised the training clips instead: {pairs(memorised)}. With {meta['n_train']} clips of random "
                     "appearance, a network of tens of millions of parameters trained from scratch fits the clips before it "
                     "finds the motion; it needs far more data and steps (a GPU run) or pretrained weights "
                     "(`--pretrained`, a download this machine cannot make).")
    if underfit:
        lines.append(f"- Neither fitted the training clips nor learned the motion within the budget: {pairs(underfit)}.")
    total = sum(r.get("wall_s", 0) for r in rows)
    lines += ["", f"Generated by `benchmarks/zoo_motion.py` (sum of the per-model wall times: {total / 60:.0f} min; "
              f"torch {torch.__version__}).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "this CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", help="comma-separated subset (default: all, most important first)")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--data", default=str(ROOT / "data" / "zoo_motion"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "zoo_motion"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "zoo_motion.md"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every training budget")
    ap.add_argument("--fresh", action="store_true", help="drop the rows of models not rerun from the table")
    ap.add_argument("--table-only", action="store_true", help="rewrite the markdown from the last results JSON")
    a = ap.parse_args(argv)
    t_start = time.time()
    data = Path(a.data)
    if not (data / "test.csv").exists():
        generate(data, SynthConfig(kind="motion", per_class=a.per_class, seed=0), progress=False)
    counts = {s: len(open(data / f"{s}.csv").readlines()) - 1 for s in ("train", "val", "test")}
    entries = ZOO
    by_key = {e.key: e for e in ZOO}
    if a.models:
        wanted = [m.strip() for m in a.models.split(",") if m.strip()]
        entries = [by_key.get(m) or Entry(m, get_spec(m).frames, get_spec(m).size) for m in wanted]
    meta = dict(per_class=a.per_class, n_train=counts["train"], n_val=counts["val"], n_test=counts["test"],
                threads=a.threads, cpu=cpu_name())
    out, runs = Path(a.out), Path(a.runs)
    results_json = out.with_suffix(".json")
    # a partial rerun (--models) replaces those models' rows and keeps the others from the last run
    order = [e.key for e in ZOO]
    kept = {} if a.fresh or not results_json.exists() else \
        {r["model"]: r for r in json.loads(results_json.read_text())["rows"]}
    rows = []
    if a.table_only:
        entries = []
        meta = json.loads(results_json.read_text())["meta"]
        merged = sorted(kept.values(), key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
        for r in merged:
            if r["model"] in by_key:
                r["note"], r["input"] = by_key[r["model"]].note, by_key[r["model"]].input
        write_table(merged, out, meta)
        results_json.write_text(json.dumps({"meta": meta, "rows": merged}, indent=1, default=str))
    for e in entries:
        if a.epochs_scale != 1 and e.epochs:
            e.epochs = max(1, round(e.epochs * a.epochs_scale))
        t0 = time.time()
        try:
            row = run_entry(e, data, runs, a.threads)
        except Exception as ex:  # keep going: one model failing must not lose the table
            row = {"model": e.key, "family": get_spec(e.name).family, "input": e.input, "params_m": float("nan"),
                   "ms_per_clip": float("nan"), "budget": f"failed: {type(ex).__name__}: {ex}".splitlines()[0],
                   "note": e.note}
        row["wall_s"] = round(time.time() - t0, 1)
        print(json.dumps(row, default=str), flush=True)
        rows.append(row)
        kept[e.key] = row
        meta["total_s"] = time.time() - t_start
        for key, r in kept.items():  # notes/labels of rows kept from an earlier run follow the current ZOO
            if key in by_key:
                r["note"], r["input"] = by_key[key].note, by_key[key].input
        merged = sorted(kept.values(), key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
        write_table(merged, out, meta)
        results_json.write_text(json.dumps({"meta": meta, "rows": merged}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
