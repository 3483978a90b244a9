"""Two-stream recognition on the synthetic `motion` benchmark: RGB vs optical flow vs codec motion
vectors, alone and fused, every run through the normal CLI with the same budget.

    .venv/bin/python benchmarks/two_stream.py [--runs rgb,flow,...] [--epochs 6] [--size 32] [--threads 1]

Steps (each skipped when its output already exists, so a stopped run resumes):
1. ``vidcat synth data/two_stream --kind motion --per-class 40 --seed 0`` (160 train / 40 val / 40 test).
2. ``vidcat flow`` caches DIS-fast flow and codec motion vectors at the decode short side (timed).
3. ``vidcat train`` for each run in :data:`RUNS` (``tsn`` ResNet-18, 8 TSN segments), then
   ``vidcat eval`` on the test split; ``vidcat fuse`` fuses the separately trained RGB and motion
   streams (weights tuned on val) and is evaluated the same way.
4. ``vidcat bench flow`` figures (``bench_flow`` with mv / DIS-fast / DIS-medium) on
   ``../shared/data/media/mmaction2_demo.mp4`` when present.

Writes ``benchmarks/results/two_stream.md`` (+ ``.json``), rewritten after every run.

The class is the direction of motion: one frame (or an order-free average of frames, which is what
TSN's consensus is) cannot tell it, so the RGB stream should sit near chance (0.25), while a single
flow field per segment shows it. Inputs are 32x32 (decoded at short side 37, flow computed there):
64 px two-stream ResNet-18 training took ~4x longer on this shared 2-core machine. With flow in
[-1, 1] (+-20 px bound) the first BatchNorm sees tiny variances, so its running statistics need on
the order of 100+ steps to settle: batch 8 x 6 epochs = 120 steps.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIDCAT = [sys.executable, "-m", "vidcat.cli"]
DEMO = ROOT.parent / "shared" / "data" / "media" / "mmaction2_demo.mp4"

# name -> (model, modalities, extra train args, note); separately trained fusions come after their streams
RUNS = {
    "rgb": ("tsn", "rgb", [], "spatial stream alone"),
    "flow": ("tsn", "flow", [], "temporal stream alone, DIS-fast flow, in_channels=2 (auto)"),
    "mv": ("tsn", "mv", [], "temporal stream alone, codec motion vectors"),
    "ts_flow_late": ("two_stream", "rgb,flow", ["--model-arg", "fusion=late"], "joint, score average 0.5/0.5"),
    "ts_flow_weighted": ("two_stream", "rgb,flow", ["--model-arg", "fusion=weighted"],
                         "joint, learned weights then tuned on val"),
    "ts_flow_concat": ("two_stream", "rgb,flow", ["--model-arg", "fusion=concat"], "joint, MLP on concatenated features"),
    "ts_flow_conv": ("two_stream", "rgb,flow", ["--model-arg", "fusion=conv"], "joint, 1x1 conv on stacked conv maps"),
    "ts_mv_weighted": ("two_stream", "rgb,mv", ["--model-arg", "fusion=weighted"], "joint, learned weights then tuned on val"),
    "fuse_flow": ("fuse", "rgb+flow", [], "separately trained rgb + flow, `vidcat fuse` (w tuned on val)"),
    "fuse_mv": ("fuse", "rgb+mv", [], "separately trained rgb + mv, `vidcat fuse` (w tuned on val)"),
}


def sh(cmd: list[str], log: Path | None = None) -> str:
    """Run a vidcat command; stdout returned, stderr to ``log``; raise with its tail on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(r.stderr)
    if r.returncode:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r.stdout


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def prepare(data: Path, cache: Path, per_class: int, short_side: int) -> dict:
    """Synthesize the data and fill the motion cache; the first (timed) fill is kept in prep.json."""
    record = cache / f"prep-{short_side}.json"
    if record.exists():
        return json.loads(record.read_text())
    timings = {}
    if not (data / "test.csv").exists():
        sh([*VIDCAT, "synth", str(data), "--kind", "motion", "--per-class", str(per_class), "--seed", "0", "--quiet"])
    for method in ("dis_fast", "mv"):
        s = last_json(sh([*VIDCAT, "flow", str(data), "--method", method, "--cache", str(cache), "--size",
                          str(short_side), "--quiet"]))
        timings[method] = {"videos": s["total"], "computed": s["computed"], "seconds": s["seconds"]}
    record.write_text(json.dumps(timings))
    return timings


def run_one(name: str, a, data: Path, cache: Path, runs: Path) -> dict:
    model, mods, extra, note = RUNS[name]
    out = runs / name
    result_file = out / "test.json"
    if result_file.exists():
        return json.loads((out / "row.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if model == "fuse":
        motion = mods.split("+")[1]
        for dep in ("rgb", motion):
            if not (runs / dep / "best.pt").exists():
                raise SystemExit(f"{name} needs run {dep!r} first")
        fused = last_json(sh([*VIDCAT, "fuse", "--checkpoints", str(runs / "rgb" / "best.pt"), str(runs / motion / "best.pt"),
                              "--data", str(data / "val.csv"), "--out", str(out / "best.pt"), "--workers", "1"],
                             out / "fuse.log"))
        extra_info = {"w_rgb": fused["w_rgb"], "val_fused": fused["score"], "val_equal": fused["score_equal"]}
        train_s = 0.0
    else:
        cmd = [*VIDCAT, "train", "--data", str(data / "train.csv"), "--val", str(data / "val.csv"), "--model", model,
               "--modalities", mods, "--frames", str(a.frames), "--size", str(a.size), "--epochs", str(a.epochs),
               "--batch-size", str(a.batch_size), "--threads", str(a.threads), "--workers", "1", "--seed", "0",
               "--motion-cache", str(cache), "--out", str(out), "--quiet", *extra]
        sh(cmd, out / "train.log")
        train_s = time.time() - t0
        cfg = json.loads((out / "config.json").read_text())
        extra_info = {"best_val": cfg["best_score"]}
        tuned = cfg.get("fusion_tuning")  # weighted fusion: weights tuned on val after training
        if tuned:
            extra_info.update(w_rgb=tuned["w_rgb"], val_fused=tuned["score"], val_equal=tuned["score_equal"])
    sh([*VIDCAT, "eval", "--checkpoint", str(out / "best.pt"), "--data", str(data / "test.csv"), "--json",
        str(out / "test.json"), "--workers", "1", "--threads", str(a.threads), "--quiet"], out / "eval.log")
    ev = json.loads(result_file.read_text())
    row = {"run": name, "model": model, "modalities": mods, "note": note, "test_top1": ev["top1"],
           "streams": ev.get("streams", {}), "train_s": round(train_s, 1), **extra_info}
    (out / "row.json").write_text(json.dumps(row, indent=1))
    return row


def bench_figures() -> dict | None:
    if not DEMO.exists():
        return None
    from benchmarks.speed.flow import bench_flow

    return bench_flow([str(DEMO)], methods=["mv", "dis_fast", "dis_medium"], sizes=(224,), repeats=3, verbose=False)


def _motion(row: dict) -> str:
    return "mv" if "mv" in row["modalities"] else "flow"


def fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_table(path: Path, rows: dict, prep: dict, bench: dict | None, a) -> None:
    def stream(r, k):
        return r["streams"].get(k) if r else None

    rgb, flow, mv = (rows.get(k, {}).get("test_top1") for k in ("rgb", "flow", "mv"))
    lines = [
        "# Two-stream: RGB + optical flow / codec motion vectors (synthetic `motion`)", "",
        f"`benchmarks/two_stream.py`: `vidcat synth --kind motion --per-class {a.per_class} --seed 0` "
        f"({4 * a.per_class} train / {a.per_class} val / {a.per_class} test videos, 64x64, 24 frames, 12 fps, "
        "H.264 GOP 12 with B-frames). Every stream is `tsn` (ResNet-18, random init, average consensus) "
        f"on {a.frames} TSN segments of {a.size}x{a.size}, L=1 motion field per segment; same budget for all: "
        f"{a.epochs} epochs x batch {a.batch_size}, AdamW 2e-3, {a.threads} torch thread(s), on a 2-core CPU shared "
        "with other jobs (load average 7-10 during these runs, so `train s` is only indicative). "
        "Test top-1 on the held-out test split (1 view); chance = 0.25.", "",
        "| run | modalities | fusion | test top-1 | RGB stream | motion stream | w_rgb (val-tuned) | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (model, mods, _, note) in RUNS.items():
        r = rows.get(name)
        if not r:
            continue
        motion = "mv" if "mv" in mods else "flow"
        rs = stream(r, "rgb") if r["streams"] else (r["test_top1"] if mods == "rgb" else None)
        ms = stream(r, motion) if r["streams"] else (r["test_top1"] if mods in ("flow", "mv") else None)
        w = r.get("w_rgb")
        lines.append(f"| {name} | {mods} | {note} | **{fmt(r['test_top1'])}** | {fmt(rs)} | {fmt(ms)} | "
                     f"{'–' if w is None else f'{w:.2f}'} | {r['train_s'] or '–'} |")
    lines.append("")
    fused = [(n, r) for n, r in rows.items() if r and len(r["streams"]) == 2]
    if fused:
        own = [n for n, r in fused if r["test_top1"] >= max(r["streams"].values()) - 1e-9]
        alone = [n for n, r in fused if None not in (rgb, rows.get(_motion(r), {}).get("test_top1"))
                 and r["test_top1"] >= max(rgb, rows[_motion(r)]["test_top1"]) - 1e-9]
        lines.append(f"Fused >= the better of its own two streams in {len(own)}/{len(fused)} two-stream runs; "
                     f">= the better *standalone* stream (runs rgb / flow / mv above) in {len(alone)}/{len(fused)}"
                     + (f" (not: {', '.join(n for n, _ in fused if n not in alone)})" if len(alone) < len(fused) else "")
                     + ".")
        lines.append("")
    if None not in (rgb, flow, mv) and flow > rgb:
        lines.append(f"Motion vectors keep **{(mv - rgb) / (flow - rgb):.0%}** of DIS flow's gain over RGB "
                     f"(mv {mv:.3f} vs flow {flow:.3f} vs rgb {rgb:.3f}; target >= 70%).")
        lines.append("")
    lines.append("Motion extraction for this dataset (`vidcat flow --size 37`, one process, all 240 videos): " + ", ".join(
        f"{m} {p['seconds']:.1f} s" for m, p in prep.items()) + ".")
    if bench:
        m = bench["methods"]
        lines += ["", f"`vidcat bench flow` on `mmaction2_demo.mp4` ({bench['native'][0]}, {bench['frames']} frames; "
                  "end to end = file to native-size motion field, best of 3):", "",
                  "| method | e2e fps | pairs/s at 224² (motion step alone) | mv e2e speed-up |", "|---|---|---|---|"]
        for k in ("mv", "dis_fast", "dis_medium"):
            if "e2e_fps" in m.get(k, {}):
                sp = "1.00" if k == "mv" else f"{bench.get(f'mv_e2e_speedup_vs_{k}', float('nan')):.2f}x"
                lines.append(f"| {k} | {m[k]['e2e_fps']} | {m[k]['pairs_per_s'].get('224x224', '–')} | {sp} |")
        lines.append(f"\nRGB decode alone: {bench.get('decode_fps')} fps.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"rows": rows, "prep": prep, "bench": bench, "args": vars(a)}, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default=",".join(RUNS))
    p.add_argument("--data", default=str(ROOT / "data" / "two_stream"))
    p.add_argument("--out", default=str(ROOT / "runs" / "two_stream"))
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-bench", action="store_true", help="skip the bench flow figures")
    p.add_argument("--table", default=str(ROOT / "benchmarks" / "results" / "two_stream.md"))
    a = p.parse_args()
    data, runs = Path(a.data), Path(a.out)
    cache = data / "motion_cache"
    from vidcat.config import DataConfig

    prep = prepare(data, cache, a.per_class, DataConfig(size=a.size).decode_short_side)
    table = Path(a.table)
    old = json.loads(table.with_suffix(".json").read_text()) if table.with_suffix(".json").exists() else {}
    rows = {}
    bench = old.get("bench")
    for name in [n.strip() for n in a.runs.split(",") if n.strip()]:
        rows[name] = run_one(name, a, data, cache, runs)
        print(json.dumps(rows[name]), flush=True)
        write_table(table, {k: rows.get(k) or _row(runs, k) for k in RUNS if rows.get(k) or _row(runs, k)}, prep, bench, a)
    if not a.no_bench:
        bench = bench_figures()
    write_table(table, {k: rows.get(k) or _row(runs, k) for k in RUNS if rows.get(k) or _row(runs, k)}, prep, bench, a)
    print(table.read_text())


def _row(runs: Path, name: str) -> dict | None:
    f = runs / name / "row.json"
    return json.loads(f.read_text()) if f.exists() else None


if __name__ == "__main__":
    main()
