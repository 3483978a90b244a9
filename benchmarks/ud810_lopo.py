"""Leave-one-person-out on the 27 real ud810 clips (``../shared/data/ud810-actions``), the classic protocol.

    .venv/bin/python benchmarks/ud810_lopo.py                 # the chosen configuration (~2 min of 2 cores)
    .venv/bin/python benchmarks/ud810_lopo.py --configs all   # every configuration tried (~15 min)
    .venv/bin/python benchmarks/ud810_lopo.py --seeds 0,1,2   # the chosen one, three training seeds

Clips ``PS7A{action}P{person}T{trial}.avi``: 3 actions x 3 persons x 3 trials, 640x480, 2-3.6 s.
Labels come from the file name (``--label-regex 'PS7(A\\d)'``), groups too (``--group-regex 'P(\\d)'``):
each fold trains from scratch on 2 persons (18 clips) and tests on the third (9 clips).

Three inputs are compared: the original colour clips, a grayscale copy, and a motion-energy copy
(|gray(t) - gray(t-2)|, the idea behind the course's Motion History Images), both made once by
:func:`prepare` into ``runs/ud810_prep/{gray,diff}/`` under the same file names. With 2 persons to
learn from, clothing is the trap: one person's tan shirt flips a whole colour or gray fold, while
motion energy keeps the moving arms and little else.

Writes ``benchmarks/results/ud810_lopo.md`` (table of the configurations run; per-fold accuracies and
the summed 3x3 confusion matrix of the first) and ``runs/ud810_lopo/<config>/`` (``cv.json``,
``cv.png``, one folder per fold). The equivalent ``vidcat cv`` command is in the report.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vidcat  # noqa: E402
from vidcat.config import CVConfig, DataConfig  # noqa: E402
from vidcat.engine.crossval import cross_validate  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ud810-actions"
LABEL_RX, GROUP_RX = r"PS7(A\d)", r"P(\d)"

# name -> (input, model, training keywords: TrainConfig / DataConfig fields); input: raw (the AVIs), gray or
# diff (see prepare()). No inner validation split (val_split=0): each fold is scored with its last epoch.
# The first is the chosen configuration (run by default). Every tiny3d run: 16 frames, one per TSN
# segment (the whole 2-3.6 s action), random crops + horizontal flips (one-arm vs two-arm actions do
# not depend on the side), 40 epochs of 3 steps (18 clips, batch 6), AdamW 2e-3, cosine.
_T3D = dict(epochs=40, batch_size=6, sampler="tsn", frames=16, size=64, hflip=True, val_split=0.0)
CONFIGS = {
    "diff_tiny3d_16x64": ("diff", "tiny3d", _T3D),
    "gray_tiny3d_16x64": ("gray", "tiny3d", _T3D),
    "raw_tiny3d_16x64": ("raw", "tiny3d", _T3D),
    "raw_tiny3d_16x112": ("raw", "tiny3d", dict(_T3D, size=112)),
    "diff_tsm_8x64": ("diff", "tsm", dict(epochs=40, batch_size=6, lr=1e-3, sampler="tsn", frames=8, size=64,
                                          hflip=True, val_split=0.0)),
}
INPUTS = {"raw": "original colour AVI", "gray": "grayscale copy", "diff": "motion energy: abs(gray(t) - gray(t-2))"}
DATA_KEYS = set(DataConfig.__dataclass_fields__)


def data_kw(kw: dict) -> dict:
    """The DataConfig fields among a configuration's keywords."""
    return {k: v for k, v in kw.items() if k in DATA_KEYS}


def prepare(src: Path, dst: Path, mode: str = "gray", short_side: int = 128) -> Path:
    """A preprocessed copy of the clips (same file names, H.264 MP4, ``short_side`` px high), made once.

    ``gray``: luminance replicated to 3 channels. The persons wear a black T-shirt, a tan shirt and a
    dark jacket; in colour the tan shirt alone is a domain shift that can flip a whole fold.
    ``diff``: per-pixel |gray(t) - gray(t-2)|, a motion-energy video (the idea behind the course's
    Motion History Images) that keeps moving arms and drops clothing and background.
    """
    import cv2
    import numpy as np

    from vidcat.data.synth_media import mux_av
    from vidcat.io.video import VideoReader

    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.avi")):
        out = dst / (f.stem + ".mp4")
        if out.exists():
            continue
        with VideoReader(f) as r:
            fps, frames = r.info.fps, r.frames(short_side=short_side)
        gray = np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in frames]).astype(np.float32)
        if mode == "diff":
            d = np.abs(gray - np.concatenate([gray[:2], gray[:-2]]))
            gray = np.clip(d * 4, 0, 255)
        elif mode != "gray":
            raise ValueError(f"unknown preprocessing {mode!r}")
        mux_av(out, np.repeat(gray.astype(np.uint8)[..., None], 3, axis=3), fps, crf=18)
    return dst


def cli_line(prep: str, model: str, kw: dict) -> str:
    d = data_kw(kw)
    data = "../shared/data/ud810-actions" if prep == "raw" else f"runs/ud810_prep/{prep}"
    parts = [f"vidcat cv --data {data}", f"--label-regex '{LABEL_RX}'", f"--group-regex '{GROUP_RX}'", "--logo",
             f"--model {model}"]
    if d.pop("hflip", False):
        parts.append("--hflip")
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in d.items()]
    parts += [f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
              for k, v in kw.items() if k not in DATA_KEYS and k != "model_kwargs"]
    parts += [f"--model-arg {k}={v}" for k, v in kw.get("model_kwargs", {}).items()]
    return " ".join(parts + [f"--out runs/ud810_lopo/{prep}_{model}"])


def fmt_input(kw: dict) -> str:
    d = data_kw(kw)
    s = f"{d.get('frames', '?')}x{d.get('size', '?')}²"
    if d.get("sampler") == "tsn":
        return s + ", TSN segments (whole clip)"
    return s + f", consecutive frames (stride {d.get('stride', 1)})"


def write_report(results: list[dict], path: Path, threads: int) -> None:
    best = results[0]
    s = best["summary"]
    lines = ["# ud810 actions: leave-one-person-out", "",
             f"27 real clips (3 actions x 3 persons x 3 trials, 640x480), labels `{LABEL_RX}` and groups `{GROUP_RX}` "
             "from the file names; each fold trains from scratch (no pretrained weights) on 2 persons (18 clips) and tests "
             "on the third (9 clips, one centre view). CPU: 2 cores, "
             f"{threads} torch thread(s), shared with other jobs (times indicative). "
             "Top-1 is mean ± std over the 3 folds (std ddof=0).", "",
             "| config | input video | model | clip | epochs | seed | top-1 per held-out person (P1, P2, P3) | mean ± std top-1 | wall time |",
             "|---|---|---|---|---:|---:|---|---:|---:|"]
    for r in results:
        sm = r["summary"]
        per = ", ".join(f"{x:.2f}" for x in sm["top1_per_fold"])
        lines.append(f"| `{r['name']}` | {INPUTS[r['prep']]} | {r['model']} | {fmt_input(r['kw'])} | {r['kw'].get('epochs')} | "
                     f"{r['seed']} | {per} | "
                     f"**{sm['top1_mean']:.3f} ± {sm['top1_std']:.3f}** | {r['seconds'] / 60:.1f} min |")
    if any(r["prep"] != "diff" for r in results):
        lines += ["", "Person 2 wears a tan shirt, persons 1 and 3 dark clothes: trained on the other two, a model that "
                  "sees the colour or grayscale clips puts all 9 person-2 clips in one class (A2: 0.33), whatever the action. "
                  "The motion-energy copy keeps the moving arms and little of the clothing, and every person is "
                  "recognised."]
    cm = s["confusion"]
    lines += ["", f"## `{best['name']}` (the chosen configuration)", "",
              f"Pooled accuracy {s['pooled_top1']:.3f} ({sum(cm[i][i] for i in range(len(cm)))}/{sum(map(sum, cm))}); "
              f"summed confusion matrix over the 3 folds (rows: true, columns: predicted):", "",
              "| true \\ pred | " + " | ".join(s["classes"]) + " |", "|---|" + "---:|" * len(s["classes"])]
    for c, row in zip(s["classes"], cm):
        lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "Per fold:", ""]
    for f in s["folds"]:
        lines.append(f"- held-out person {', '.join(f['test_groups'])}: top-1 {f['top1']:.3f} "
                     f"({f['n_test']} clips; trained on persons {', '.join(f['train_groups'])}, {f['seconds']:.0f} s)")
    lines += ["", "Reproduce (`benchmarks/ud810_lopo.py --prepare-only` writes the preprocessed copy first):", "", "```",
              cli_line(best["prep"], best["model"], best["kw"]), "```",
              "", f"Generated by `benchmarks/ud810_lopo.py` (torch {torch.__version__}).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=next(iter(CONFIGS)), help=f"comma-separated, or 'all': {', '.join(CONFIGS)}")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "ud810_lopo"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ud810_lopo.md"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds (one LOPO run each)")
    ap.add_argument("--prep-dir", default=str(ROOT / "runs" / "ud810_prep"), help="preprocessed copies go here")
    ap.add_argument("--prepare-only", action="store_true", help="write the gray and diff copies, then stop")
    ap.add_argument("--report-only", action="store_true", help="rebuild the report from the runs' cv.json files")
    a = ap.parse_args(argv)
    if not Path(a.data).is_dir():
        print(f"ud810 clips not found at {a.data} (../shared/data beside the project)", file=sys.stderr)
        return 2
    names = list(CONFIGS) if a.configs == "all" else [c.strip() for c in a.configs.split(",") if c.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
    preps = {"raw": Path(a.data)}
    if not a.report_only:
        for prep in sorted({CONFIGS[n][0] for n in names} - {"raw"}) if not a.prepare_only else ("gray", "diff"):
            preps[prep] = prepare(Path(a.data), Path(a.prep_dir) / prep, prep)
    if a.prepare_only:
        print(json.dumps({k: str(v) for k, v in preps.items()}))
        return 0
    results = []
    for name in names:
        prep, model, kw = CONFIGS[name]
        for seed in seeds:
            run_dir = Path(a.runs) / (name if seed == 0 else f"{name}_seed{seed}")
            t0 = time.time()
            if a.report_only:
                if not (run_dir / "cv.json").exists():
                    continue
                summary = json.loads((run_dir / "cv.json").read_text())
                seconds = summary["seconds"]
            else:
                train_cfg = vidcat.train_config(preps[prep], run_dir, model=model, seed=seed, workers=a.workers,
                                                threads=a.threads, progress=False, **kw)
                summary = cross_validate(train_cfg, CVConfig(group_regex=GROUP_RX, folds=None, label_regex=LABEL_RX))
                seconds = time.time() - t0
                print(f"{name} seed {seed}: top1 {summary['top1_mean']:.3f} ± {summary['top1_std']:.3f} per fold "
                      f"{[round(x, 3) for x in summary['top1_per_fold']]} ({seconds / 60:.1f} min)", flush=True)
            results.append({"name": name, "prep": prep, "model": model, "kw": kw, "seed": seed, "summary": summary,
                            "seconds": seconds})
            write_report(results, Path(a.out), a.threads)
    if not results:
        print("no results (run without --report-only first)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
