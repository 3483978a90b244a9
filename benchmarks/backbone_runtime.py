"""Frozen frame encoder runtimes: speed and feature agreement on real frames.

    .venv/bin/python benchmarks/backbone_runtime.py [--data ../shared/data] [--reps 5] [--threads 2,1]
                                                     [--batches 8,24] [--out benchmarks/results/backbone_runtime.json]

The appearance stream's encoder (ImageNet EfficientNet-Lite0 + PositionPool, 160x160 frames) run by each
runtime of :mod:`vidcat.models.backbone_runtime` -- eager channels_last (the baseline), ONNX Runtime fp32,
ONNX Runtime static int8 (per-tensor QDQ; MinMax, Percentile and Entropy calibration; the shipped mix
with the first blocks float and an all-int8 variant; per-channel for comparison) and OpenVINO (f32, and
bf16 for comparison) -- on frames decoded from the sample clips through vidcat's own data path.

Agreement: per-frame cosine (min, mean) of the 3 x 1280 features to eager, on clips disjoint from the
int8 calibration clips. Speed: frames/s and CPU ms per frame (process CPU time: every runtime thread
counts) per (threads, batch), every runtime timed in the same process, interleaved, ``--reps`` rounds;
medians, and ratios to eager as the median of the per-round ratios (the box is shared and noisy: a
round's runtimes run seconds apart, so their ratio is steadier than the ratio of medians).

Prints JSON (and writes it to ``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from vidcat.models import backbone_runtime as BR  # noqa: E402

INT8_VARIANTS = {                       # name -> quantize_int8 settings (beside the shipped INT8)
    "ort_int8": {},
    "ort_int8_percentile": {"calibration": "percentile"},
    "ort_int8_entropy": {"calibration": "entropy"},
    "ort_int8_all": {"float_convs": 0},
    "ort_int8_perchannel": {"per_channel": True},
}
TIMED = ("eager", "ort_fp32", "ort_fp32_spin", "ort_int8", "ort_int8_all", "openvino", "openvino_bf16")


def clip_lists(data: Path) -> tuple[list[str], list[str]]:
    """(calibration clips, evaluation clips): disjoint, each spanning persons, darkness and codecs."""
    ud = sorted(str(p) for p in (data / "ud810-actions").glob("*.avi"))
    ar = sorted(str(p) for p in (data / "arid-dark").glob("*.mp4"))
    md = [str(data / "media" / n) for n in ("mmaction2_demo.mp4", "torchcodec_nasa_13013.mp4",
                                             "torchcodec_bt709_full_range.mp4", "torchcodec_h265_video.mp4")]
    return ud[0::9] + ar[0::8] + md[:2], ud[4::9] + ar[4::8] + md[2:]


def decoded_frames(paths: list[str]) -> torch.Tensor:
    """(N, 3, 160, 160) normalised frames of ``paths`` as the default model reads them (8 TSN frames)."""
    from vidcat.config import DataConfig
    from vidcat.data.dataset import VideoClips
    from vidcat.data.manifest import Dataset, Item
    from vidcat.models.registry import get_spec

    data = DataConfig(modalities=("video",)).resolved(get_spec("streams"))
    clips = VideoClips(Dataset([Item(p, ["x"]) for p in paths], ["x"]), data)
    return torch.cat([clips[i]["video"].transpose(0, 1) for i in range(len(paths))]).contiguous()


def build_graphs(module, calib: np.ndarray) -> tuple[dict, dict]:
    """Every graph benchmarked (fp32 and each int8 variant), and the seconds each build took."""
    graphs, seconds = {}, {}
    t = time.perf_counter()
    graphs["fp32"] = BR.export_onnx(module, (160, 160))
    seconds["export_fp32"] = time.perf_counter() - t
    for name, settings in INT8_VARIANTS.items():
        t = time.perf_counter()
        graphs[name] = BR.quantize_int8(graphs["fp32"], calib, settings)
        seconds[f"quantize_{name}"] = time.perf_counter() - t
    return graphs, {k: round(v, 1) for k, v in seconds.items()}


def runners(module, graphs: dict, threads: int) -> dict:
    """name -> callable(np frames) -> np features, each with ``threads`` threads."""
    torch.set_num_threads(threads)

    def eager(x):
        with torch.no_grad():
            return module(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).numpy()

    out = {"eager": eager, "ort_fp32": BR.ort_runner(graphs["fp32"], threads),
           "ort_fp32_spin": BR.ort_runner(graphs["fp32"], threads, spinning=True)}
    out.update({name: BR.ort_runner(graphs[name], threads) for name in INT8_VARIANTS})
    if BR.have_openvino():
        out["openvino"] = BR.openvino_runner(graphs["fp32"], threads)
        out["openvino_bf16"] = BR.openvino_runner(graphs["fp32"], threads, precision="bf16")
    return out


def agreement(run: dict, frames: np.ndarray, dims: int) -> dict:
    """Per runtime: cosine to eager per frame (min / mean) over all 3D features and over the average
    part; max |difference| of the average part, and of every feature in units of its spread over frames."""
    ref = run["eager"](frames)
    spread = ref.std(0) + 1e-6
    out = {}
    for name, f in run.items():
        got = f(frames)
        c, ca = BR.cosines(ref, got), BR.cosines(ref[:, :dims], got[:, :dims])
        out[name] = {"cos_min": float(c.min()), "cos_mean": float(c.mean()), "avg_cos_min": float(ca.min()),
                     "avg_cos_mean": float(ca.mean()), "avg_max_abs": float(np.abs(ref - got)[:, :dims].max()),
                     "max_abs_in_spreads": float((np.abs(ref - got) / spread).max()),
                     "passes_bar": bool(c.min() >= BR.AGREEMENT_COS)}
    return out


def time_round(run: dict, x: np.ndarray, min_frames: int = 24) -> dict:
    """One round: each runtime's (frames/s, CPU ms per frame) over at least ``min_frames`` frames."""
    calls = max(1, -(-min_frames // len(x)))
    out = {}
    for name in TIMED:
        if name not in run:
            continue
        t, c = time.perf_counter(), time.process_time()
        for _ in range(calls):
            run[name](x)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        out[name] = (calls * len(x) / wall, 1000 * cpu / (calls * len(x)))
    return out


def speed(module, graphs: dict, frames: np.ndarray, threads: int, batches, reps: int) -> list[dict]:
    """Interleaved rounds per batch size; medians and median per-round ratios to eager."""
    run, rows = runners(module, graphs, threads), []
    for batch in batches:
        x = np.ascontiguousarray(np.resize(frames, (batch,) + frames.shape[1:]))
        for f in run.values():
            f(x)                                   # warm-up: first-call allocations and kernel choice
        rounds = [time_round(run, x) for _ in range(reps)]
        for name in rounds[0]:
            fps = [r[name][0] for r in rounds]
            cpu = [r[name][1] for r in rounds]
            rows.append({"runtime": name, "threads": threads, "batch": batch, "fps": round(float(np.median(fps)), 2),
                         "cpu_ms_per_frame": round(float(np.median(cpu)), 2),
                         "fps_ratio": round(float(np.median([r[name][0] / r["eager"][0] for r in rounds])), 2),
                         "cpu_ratio": round(float(np.median([r["eager"][1] / r[name][1] for r in rounds])), 2),
                         "fps_rounds": [round(v, 1) for v in fps]})
    return rows


def machine() -> dict:
    import onnxruntime

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_avg": os.getloadavg(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if BR.have_openvino():
        import openvino

        info["openvino"] = openvino.__version__
    return info


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED, help="sample media folder (../shared/data)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--batches", default="8,24")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "backbone_runtime.json")
    a = ap.parse_args(argv)
    from vidcat.models.frame_encoder import load_backbone

    module, info = load_backbone("efficientnet_lite0", pooling="avgpos")
    module = module.to(memory_format=torch.channels_last)
    calib_paths, eval_paths = clip_lists(a.data)
    calib, frames = decoded_frames(calib_paths).numpy(), decoded_frames(eval_paths).numpy()
    graphs, build = build_graphs(module, calib)
    torch.set_num_threads(2)
    agree = agreement(runners(module, graphs, 2), frames, info.feat_dim // 3)
    rows = [r for t in (int(v) for v in a.threads.split(",")) for r in
            speed(module, graphs, frames, t, [int(b) for b in a.batches.split(",")], a.reps)]
    report = {"machine": machine(), "frames": {"size": 160, "calibration_clips": [Path(p).name for p in calib_paths],
              "evaluation_clips": [Path(p).name for p in eval_paths], "calibration_frames": len(calib),
              "evaluation_frames": len(frames)}, "bar": {"cos_min": BR.AGREEMENT_COS, "fps_ratio": 1.5},
              "int8": {"shipped": BR.INT8, "variants": INT8_VARIANTS}, "build_seconds": build,
              "agreement": agree, "speed": rows}
    report["machine"]["load_avg_end"] = os.getloadavg()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
