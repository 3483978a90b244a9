"""How fast is each motion method, alone and end to end? ``bench_flow(files) -> dict`` (also printed).

``pairs_per_s``: the motion step alone on frames already decoded (for ``mv``: painting vectors
already decoded, since a codec's vectors cannot be had without decoding). ``e2e_fps``: frames per
second from the file to the native-size motion field, exactly as the cache builder computes it
(``compute_motion``). ``decode_fps``: RGB decoding alone. All in one run, best of ``repeats``.
"""
from __future__ import annotations


import json
import os
import time

import cv2
import numpy as np

from vidcat.config import BENCH_FLOW_METHODS, BenchFlowConfig
from vidcat.errors import VidcatError
from vidcat.io.video import read_frames
from vidcat.io.motion.cache import compute_motion
from vidcat.io.motion.flow import compute_flow
from vidcat.io.motion.motion_vectors import _decode_mvs, expand_grids, mv_grids

SIZES = (112, 224, None)


def _pairs_task(method, frames, size, pairs, path):
    """(closure running the motion step alone, pairs it covers): ``compute_flow`` on decoded
    frames (gray conversion + flow + quantization), or for ``mv`` painting + quantizing vectors."""
    if method == "mv":
        _, mvs, types, geom = _decode_mvs(path, pairs)
        mvs, types = mvs[:pairs], types[:pairs]
        sz = None if size is None else (size, size)
        return (lambda: expand_grids(*mv_grids(mvs, types, geom, size=sz))), len(mvs)
    clip = frames[:pairs + 1]
    if size is not None:
        clip = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in clip])
    compute_flow(clip[:2], method)  # warm-up; also raises VidcatError for a missing optional method
    return (lambda: compute_flow(clip, method)), len(clip) - 1


def bench_flow(files, methods=BENCH_FLOW_METHODS, sizes=SIZES, pairs: int = 40, repeats: int = 3,
               verbose: bool = True) -> dict:
    """Benchmark motion methods on ``files``; returns (and prints as JSON) the numbers.

    Repeats are interleaved across methods (round-robin, best time kept), so load from other
    processes on a shared machine hits every method alike and the speed-up ratios stay fair.
    """
    files = [str(f) for f in ([files] if isinstance(files, (str, os.PathLike)) else files)]
    res = {"files": files, "cv2_threads": cv2.getNumThreads(), "cpus": os.cpu_count(),
           "repeats": repeats, "frames": 0, "native": [], "methods": {}}
    frames_by_file = {f: read_frames(f) for f in files}
    for fr in frames_by_file.values():
        res["frames"] += len(fr)
        res["native"].append(f"{fr.shape[2]}x{fr.shape[1]}")
    tasks = {("decode", "e2e"): (lambda: [read_frames(f) for f in files], res["frames"])}
    for m in methods:
        try:
            for s in sizes:
                key = "native" if s is None else f"{s}x{s}"
                parts = [_pairs_task(m, frames_by_file[f], s, pairs, f) for f in files]
                tasks[(m, key)] = (lambda parts=parts: [p() for p, _ in parts], sum(n for _, n in parts))
            tasks[(m, "e2e")] = (lambda m=m: [compute_motion(f, m) for f in files], res["frames"])
            res["methods"][m] = {"pairs_per_s": {}}
        except VidcatError as e:  # optional method not installed (tvl1, raft weights)
            res["methods"][m] = {"error": str(e)}
    best = {k: float("inf") for k in tasks}
    for _ in range(max(repeats, 1)):
        for k, (fn, _n) in tasks.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    for (m, key), (_fn, n) in tasks.items():
        rate = round(n / best[(m, key)], 1)
        if m == "decode":
            res["decode_fps"] = rate
        elif key == "e2e":
            res["methods"][m]["e2e_fps"] = rate
        else:
            res["methods"][m]["pairs_per_s"][key] = rate
    mv = res["methods"].get("mv", {}).get("e2e_fps")
    for ref in ("dis_fast", "dis_medium"):
        other = res["methods"].get(ref, {}).get("e2e_fps")
        if mv and other:
            res[f"mv_e2e_speedup_vs_{ref}"] = round(mv / other, 2)
    if verbose:
        print(json.dumps(res, indent=2))
    return res


def run_bench_flow(cfg: BenchFlowConfig) -> int:
    """Prints the JSON of :func:`bench_flow` (once)."""
    from benchmarks.speed import default_files

    files = list(cfg.files) or default_files()
    if not files:
        raise VidcatError("bench flow: give video files (no ../shared/data/media found)")
    bench_flow(files, methods=list(cfg.methods), pairs=cfg.pairs, repeats=cfg.repeat, verbose=True)
    return 0
