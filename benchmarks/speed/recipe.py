"""``vidcat bench recipe``: frames/s of the default model's feature extraction against its two limits.

    vidcat bench recipe [FILES...] --clips 24 --train-views 3

In one process, on real clips (default: ``../shared/data``): (a) the frozen backbone alone on random frames
at its best variant and batch size, (b) decode + sample + resize alone for the recipe's views (the same
loader processes as training), (c) the full extraction exactly as ``vidcat train`` runs it (empty store),
and (d) the plain sequential loop it replaced (one clip at a time: decode, then the eager fp32 backbone,
default threads). Prints JSON with ``backbone_fps``, ``decode_fps``, ``pipeline_fps``, ``sequential_fps``,
the ratios (c)/min(a, b) and (c)/(d), ``cpu_utilisation`` (0-1 of all cores over the pipeline run), and
the features' agreement with the eager sequential path (minimum cosine).
"""
from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidcat.config import BenchRecipeConfig, DataConfig
from vidcat.data.dataset import VideoClips
from vidcat.data.manifest import Dataset, Item, find_videos
from vidcat.errors import VidcatError
from vidcat.io.store import Store

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _files(cfg: BenchRecipeConfig) -> list[str]:
    roots = [Path(p) for p in cfg.files] or [SHARED / "ud810-actions", SHARED / "arid-dark"]
    out = []
    for r in roots:
        out += [str(p) for p in (find_videos(r) if r.is_dir() else [r])]
    if not out:
        raise VidcatError("bench recipe: no videos found (give FILES, or put ../shared/data beside the project)")
    return sorted(out)[: cfg.clips]


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@torch.no_grad()
def backbone_fps(model, size: int, seconds: float = 3.0) -> dict:
    """Best frames/s of the backbone alone over variants x batch sizes (random frames)."""
    best, rows = {"fps": 0.0}, []
    for variant in ("eager", "channels_last"):
        fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
        net = model.backbone.to(memory_format=fmt)
        for batch in (8, 32):
            x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
            net(x)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                net(x)
                n += batch
            rows.append({"variant": variant, "batch": batch, "fps": round(n / (time.perf_counter() - t0), 1)})
            best = max(best, rows[-1], key=lambda r: r["fps"])
    model.backbone.to(memory_format=torch.channels_last)
    return {"best": best, "variants": rows}


def _all_views(ds: Dataset, data: DataConfig, views: int):
    """The extraction's own per-clip dataset, asked for every view of every clip."""
    from vidcat.transfer.extract import ViewClips

    return ViewClips(VideoClips(ds, data), [(i, list(range(views))) for i in range(len(ds))])


def decode_fps(ds: Dataset, data: DataConfig, views: int, workers: int) -> float:
    """Frames/s of decode + sample + resize alone, through the extraction's own loader."""
    loader = torch.utils.data.DataLoader(_all_views(ds, data, views), batch_size=None, num_workers=workers)
    t0, n = time.perf_counter(), 0
    for s in loader:
        n += int(np.prod(s["video"].shape[:2])) if "video" in s else 0
    return n / (time.perf_counter() - t0)


@torch.no_grad()
def sequential(ds: Dataset, data: DataConfig, model, views: int) -> tuple[float, np.ndarray]:
    """The loop ``vidcat train`` used to run: per clip, decode its views, then the eager fp32 backbone."""
    vc, n, out = _all_views(ds, data, views), 0, []
    net = model.backbone.to(memory_format=torch.contiguous_format)
    t0 = time.perf_counter()
    for j in range(len(vc)):
        s = vc[j]
        if "video" not in s:
            continue
        v, c, t, h, w = s["video"].shape
        out.append(net(s["video"].transpose(1, 2).reshape(v * t, c, h, w)).reshape(v, t, -1).numpy())
        n += v * t
    model.backbone.to(memory_format=torch.channels_last)
    return n / (time.perf_counter() - t0), np.stack(out)


def run_bench_recipe(cfg: BenchRecipeConfig) -> int:
    from vidcat.models.frame_head import LITE_NORM, frame_head
    from vidcat.transfer.extract import default_workers, extract

    files = _files(cfg)
    ds = Dataset([Item(p, ["x"]) for p in files], ["x"])
    data = DataConfig(frames=cfg.frames, size=cfg.size, short_side=cfg.size, sampler="tsn", stride=1,
                      modalities=("video",), **LITE_NORM)
    workers = default_workers() if cfg.workers is None else cfg.workers
    model = frame_head(2, pretrained=True, backbone=cfg.backbone).eval()
    bb = backbone_fps(model, cfg.size)
    dec = decode_fps(ds, data, cfg.train_views, workers)
    with tempfile.TemporaryDirectory(prefix="vidcat-bench-recipe-") as tmp:
        c0, t0 = _cpu(), time.perf_counter()
        fs = extract(ds, data, model, views=cfg.train_views, store=Store("features", root=tmp), workers=workers,
                     log=lambda s: None)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    frames = int(np.prod(fs.feats.shape[:3]))
    seq_fps, seq_feats = sequential(ds, data, model, cfg.train_views)
    d = seq_feats.shape[-1]
    a, b = fs.feats[..., :d].reshape(-1, d), seq_feats.reshape(-1, d)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    pipe = frames / wall
    res = {"clips": len(fs.index), "views": cfg.train_views, "frames": frames, "size": cfg.size, "workers": workers,
           "torch_threads": torch.get_num_threads(), "cores": os.cpu_count(),
           "backbone_fps": bb["best"]["fps"], "backbone_variant": bb["best"], "backbone_variants": bb["variants"],
           "decode_fps": round(dec, 1), "pipeline_fps": round(pipe, 1), "sequential_fps": round(seq_fps, 1),
           "pipeline_vs_limit": round(pipe / min(bb["best"]["fps"], dec), 3),
           "pipeline_vs_sequential": round(pipe / seq_fps, 3),
           "cpu_utilisation": round(cpu / wall / (os.cpu_count() or 1), 3),
           "feature_cosine_min": round(float(cos.min()), 6), "pipeline_seconds": round(wall, 2)}
    print(json.dumps(res, indent=1))
    return 0
