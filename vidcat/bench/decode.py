"""Decode benchmarks: clip reads with keyframe seeking vs decoding from the start (the naive
baseline), and whole-file decode throughput."""
from __future__ import annotations

import time

import av
import numpy as np

from vidcat.data.sampling import clip_indices
from vidcat.io.video import VideoReader


def _naive_clip(path: str, indices: np.ndarray, short_side: int) -> int:
    """Baseline: decode from the first frame up to the clip's last frame, converting every frame."""
    last = int(indices.max())
    with av.open(path) as c:
        for n, frame in enumerate(c.decode(video=0)):
            frame.to_ndarray(format="rgb24")
            if n >= last:
                break
    return last + 1


def bench_decode(files: list[str], repeat: int = 3, clip_frames: int = 16, short_side: int = 128) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for f in files:
        with VideoReader(f) as r:
            info = r.info
        clips = [clip_indices(info.num_frames, clip_frames, 2, True, rng) for _ in range(repeat * 3)]
        t = time.perf_counter()
        for idx in clips:
            with VideoReader(f, threads=1) as r:
                r.frames(idx, short_side=short_side)
        seek_s = (time.perf_counter() - t) / len(clips)
        t = time.perf_counter()
        for idx in clips:
            _naive_clip(f, idx, short_side)
        naive_s = (time.perf_counter() - t) / len(clips)
        t = time.perf_counter()
        with VideoReader(f) as r:
            n = len(r.frames(range(info.num_frames)))
        full_fps = n / (time.perf_counter() - t)
        out[f] = {"size": f"{info.width}x{info.height}", "frames": info.num_frames, "codec": info.codec,
                  "clip_ms": round(seek_s * 1e3, 2), "naive_clip_ms": round(naive_s * 1e3, 2),
                  "clip_speedup_vs_naive": round(naive_s / seek_s, 2), "full_decode_fps": round(full_fps, 1)}
    return out


def bench_loader(files: list[str], model: str = "tiny3d", batches: int = 6) -> dict:
    """Clips/s through the real Dataset/DataLoader with 0 workers (baseline) and 2 workers."""
    import torch

    from vidcat.config import DataConfig
    from vidcat.data.dataset import VideoClips, make_loader
    from vidcat.data.manifest import Dataset, Item
    from vidcat.models.registry import get_spec

    cfg = DataConfig.for_model(get_spec(model))
    ds = Dataset([Item(f, ["x"]) for f in files] * 8, ["x"])
    result = {}
    for workers in (0, 2):
        loader = make_loader(VideoClips(ds, cfg, train=True), 4, True, workers)
        t, n = time.perf_counter(), 0
        for i, b in enumerate(loader):
            n += b["size"]
            if i + 1 >= batches:
                break
        result[f"clips_per_s_workers{workers}"] = round(n / (time.perf_counter() - t), 1)
        del loader
    result["speedup_workers2_vs_0"] = round(result["clips_per_s_workers2"] / result["clips_per_s_workers0"], 2)
    result["torch_threads"] = torch.get_num_threads()
    return result
