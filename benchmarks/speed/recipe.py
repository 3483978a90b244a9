"""``vidcat bench recipe``: what the default model's feature extraction costs, stage by stage, against the
work-conserving bound of this machine.

    vidcat bench recipe [FILES...] --clips 12 --train-views 3

On real clips (default: ``../shared/data``), with the streams ``vidcat train`` plans for them, in one process:

* **stage costs** (this process, one thread, CPU time): decode + sample + resize of the appearance views, the
  frozen backbone, and the motion stream (loading + descriptor), in CPU ms per frame;
* **the pipeline**, exactly as ``vidcat train`` runs it (every planned stream through one set of clip workers,
  empty store): wall time and CPU (this process and its workers) per stream; pose, audio and text report CPU
  seconds per clip (pose keypoints come from vidcat's pose cache where an earlier run computed them);
* **the bound**: cores / (decode + backbone CPU per frame), the frames/s a pipeline that wastes nothing would
  reach, and ``pipeline_vs_bound``; ``overhead`` = the appearance pipeline's CPU per frame / the backbone's;
  ``steady_*`` leave out what each process pays once (``worker_setup_cpu_s``: a runtime picked and compiled on
  its first clip), which a small run cannot amortise;
* **before**: the appearance stream as it ran before clip workers (2 loader processes beside 2 torch threads,
  a DataLoader per stream), for ``contention``;
* the old keys: the backbone alone on random frames (eager / channels_last x batch 8 / 32), decode alone
  (the clip workers loading only), and the plain sequential loop (per clip: each view decoded alone, then the
  eager fp32 backbone), with the features' agreement to it.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from vidcat.config import BenchRecipeConfig, DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import Dataset, Item, find_videos
from vidcat.errors import VidcatError
from vidcat.featurefit.extract import ClipViews, clip_seed, default_workers, run_stream, stream_data
from vidcat.featurefit.pool import ClipPool, own_cpu, torch_threads
from vidcat.io.ray_cluster import local_cpus

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _files(cfg: BenchRecipeConfig) -> list[str]:
    roots = [Path(p) for p in cfg.files] or [SHARED / "ud810-actions", SHARED / "arid-dark"]
    out = []
    for r in roots:
        out += [str(p) for p in (find_videos(r) if r.is_dir() else [r])]
    if not out:
        raise VidcatError("bench recipe: no videos found (give FILES, or put ../shared/data beside the project)")
    return sorted(out)[: cfg.clips]


def default_streams(ds: Dataset, cfg: BenchRecipeConfig) -> tuple:
    """``(data settings, plan)`` of the streams ``vidcat train`` plans for these clips (``--streams``: those)."""
    from vidcat.featurefit.plan import plan_streams
    from vidcat.featurefit.recipe import planned_modules
    from vidcat.models.build import setup_model

    setup = setup_model("streams", DataConfig(frames=cfg.frames, size=cfg.size), ["a", "b"])
    plan = plan_streams(ds.items, setup.data, tuple(cfg.streams) or None, log=lambda s: None)
    data, _ = planned_modules(setup, plan)
    return setup, plan, data


def fresh_modules(setup, plan) -> dict:
    """The planned streams' modules, newly built (no runtime session carried over from an earlier run; their
    exported graphs from the default cache, as a user's second run finds them)."""
    from vidcat.featurefit.recipe import planned_modules

    return planned_modules(setup, plan)[1]


@torch.no_grad()
def stage_costs(ds: Dataset, data: DataConfig, modules: dict, views: int) -> dict:
    """CPU ms per frame, here on one thread: decode/resize and backbone of the appearance views, the motion
    stream whole (loading + descriptor)."""
    out = {}
    with torch_threads(1):
        for name in [n for n in ("appearance", "motion") if n in modules]:
            m, v = modules[name].eval(), views if name == "appearance" else 1
            cv = ClipViews(VideoClips(ds, stream_data(data, m)), [(i, list(range(v))) for i in range(len(ds))])
            c0 = own_cpu()
            batches = [s["batch"] for s in (cv[j] for j in range(len(cv))) if "batch" in s]
            load = own_cpu() - c0
            run_stream(m, batches[0])                  # a runtime builds its session on the first call
            c0 = own_cpu()
            for b in batches:
                run_stream(m, b)
            frames = len(batches) * v * data.frames
            out[name] = {"load_ms": 1000 * load / frames, "module_ms": 1000 * (own_cpu() - c0) / frames}
    return out


def pipeline(ds: Dataset, data: DataConfig, modules: dict, views: int, workers: int, tmp: str) -> dict:
    """Every planned stream through one set of clip workers into an empty store, as ``vidcat train`` does."""
    from vidcat.featurefit.recipe import extract_all

    cfg = SimpleNamespace(cache=tmp, ray=False, address=None, strict=False, workers=workers, threads=0)
    c0, t0 = own_cpu(), time.perf_counter()
    sets = extract_all(ds, data, modules, cfg, log=lambda s: None)
    return {"sets": sets, "wall": time.perf_counter() - t0, "cpu": own_cpu() - c0}


def before(ds: Dataset, data: DataConfig, module, views: int) -> dict:
    """The appearance stream as extracted before clip workers: a DataLoader of 2 loader processes feeding
    the module in this process on 2 torch threads."""
    data = stream_data(data, module)
    cv = ClipViews(VideoClips(ds, data), [(i, list(range(views))) for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(cv, batch_size=None, num_workers=2, prefetch_factor=4)
    frames, c0, t0 = 0, own_cpu(), time.perf_counter()
    with torch_threads(2):
        for s in loader:
            if "batch" in s:
                run_stream(module.eval(), s["batch"])
                frames += len(s["views"]) * data.frames
    wall, cpu = time.perf_counter() - t0, own_cpu() - c0     # the loader's processes have ended: counted
    return {"workers": 2, "torch_threads": 2, "fps": round(frames / wall, 1),
            "cpu_ms_per_frame": round(1000 * cpu / frames, 2)}


@torch.no_grad()
def backbone_fps(model, size: int, seconds: float = 3.0) -> dict:
    """Best frames/s of the eager backbone alone over variants x batch sizes (random frames, this process's
    threads)."""
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


@torch.no_grad()
def runtime_speedup(module, size: int, frames: int, seconds: float = 3.0) -> tuple[str, float]:
    """The appearance module's runtime and its frames/s over eager channels_last (one clip's frames a batch)."""
    x = torch.randn(frames, 3, size, size)
    encoder = getattr(module, "encoder", None)
    if encoder is None:
        return "eager", 1.0
    encoder(x)
    runtime = getattr(encoder, "resolved", None) or "eager"
    if runtime == "eager":
        return runtime, 1.0

    def fps(fn) -> float:
        fn(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn(x)
            n += len(x)
        return n / (time.perf_counter() - t0)

    return runtime, round(fps(encoder) / fps(encoder.eager), 3)


@torch.no_grad()
def _first_clip_extra(module, views: int, frames: int, size: int) -> float:
    batch = {"video": torch.randn(views, 3, frames, size, size)}
    c0 = own_cpu()
    module(batch)
    first = own_cpu() - c0
    c0 = own_cpu()
    module(batch)
    return max(0.0, first - (own_cpu() - c0))


def setup_cpu(module, views: int, frames: int, size: int) -> float:
    """CPU seconds a clip worker spends on its first clip beyond a later one: what every worker pays once (its
    runtime's libraries loaded, a runtime picked, the graph compiled)."""
    with ClipPool(1, {module.name: module}) as pool:
        return next(pool.map(_first_clip_extra, module.name, [(views, frames, size)]))


def _load_only(module, data: DataConfig, item: Item, i: int, views: list[int]) -> dict:
    s = ClipViews(VideoClips(Dataset([item], []), data), [(0, list(views))])[0]
    return {"frames": int(np.prod(s["batch"]["video"].shape[:3:2])) if "batch" in s else 0}


def decode_fps(ds: Dataset, data: DataConfig, module, views: int, workers: int) -> float:
    """Frames/s of decode + sample + resize alone, by the clip workers."""
    data = stream_data(data, module)
    tasks = [(data, item, i, list(range(views))) for i, item in enumerate(ds.items)]
    with ClipPool(workers, {module.name: module}) as pool:
        pool.map(_load_only, module.name, tasks[:1]).__next__()      # workers started, not timed
        t0 = time.perf_counter()
        n = sum(r["frames"] for r in pool.map(_load_only, module.name, tasks))
    return n / (time.perf_counter() - t0)


@torch.no_grad()
def sequential(ds: Dataset, data: DataConfig, module, views: int) -> tuple[float, np.ndarray]:
    """The plain loop: per clip, each view decoded alone, then the eager fp32 backbone (default threads)."""
    clips, n, out = VideoClips(ds, stream_data(data, module)), 0, []
    net = module.backbone.to(memory_format=torch.contiguous_format)
    t0 = time.perf_counter()
    for item in ds.items:
        seed = clip_seed(item.path)
        with clips.open(item) as reader:
            samples = [clips.read_views(reader, item, v > 0, np.random.default_rng([seed, v]) if v else None)
                       for v in range(views)]
        x = collate(samples)["video"]
        v, c, t, h, w = x.shape
        out.append(net(x.transpose(1, 2).reshape(v * t, c, h, w)).reshape(v, t, -1).numpy())
        n += v * t
    module.backbone.to(memory_format=torch.channels_last)
    return n / (time.perf_counter() - t0), np.stack(out)


def _cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    d = b.shape[-1]
    a, b = a.reshape(-1, d), b.reshape(-1, d)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return round(float(cos.min()), 6)


def stream_rows(run: dict, clips: int) -> dict:
    """Per stream: wall seconds, CPU seconds per clip (all / loading) and the workers it ran with."""
    return {n: {"wall_s": round(s.wall_seconds, 2), "cpu_s_per_clip": round(s.cpu_seconds / max(clips, 1), 3),
                "loader_cpu_s_per_clip": round(s.loader_cpu_seconds / max(clips, 1), 3), "workers": s.workers}
            for n, s in run["sets"].items()}


def run_bench_recipe(cfg: BenchRecipeConfig) -> int:
    files, cores = _files(cfg), local_cpus()
    ds = Dataset([Item(p, ["x"]) for p in files], ["x"])
    workers = default_workers(cfg.workers)
    with tempfile.TemporaryDirectory(prefix="vidcat-bench-recipe-") as tmp:
        setup, plan, data = default_streams(ds, cfg)
        run = pipeline(ds, data, fresh_modules(setup, plan), cfg.train_views, workers, tmp)
        # before this process runs a runtime itself: a worker forked after that would inherit its threads' state
        setup_s = setup_cpu(fresh_modules(setup, plan)["appearance"], cfg.train_views, cfg.frames, cfg.size)
        modules = fresh_modules(setup, plan)
        app = modules["appearance"]
        stages = stage_costs(ds, data, modules, cfg.train_views)
        with torch_threads(1):
            runtime, speedup = runtime_speedup(app, cfg.size, cfg.train_views * cfg.frames)
        old = before(ds, data, fresh_modules(setup, plan)["appearance"], cfg.train_views)
        bb = backbone_fps(app, cfg.size)
        dec = decode_fps(ds, data, app, cfg.train_views, max(workers, 1))
        seq_fps, seq_feats = sequential(ds, data, app, cfg.train_views)
    res = summary(cfg, run, stages, old, cores, workers, len(ds.items), setup_s)
    res.update(backbone_fps=bb["best"]["fps"], backbone_variant=bb["best"], backbone_variants=bb["variants"],
               decode_fps=round(dec, 1), sequential_fps=round(seq_fps, 1),
               pipeline_vs_limit=round(res["pipeline_fps"] / min(bb["best"]["fps"], dec), 3),
               pipeline_vs_sequential=round(res["pipeline_fps"] / seq_fps, 3),
               feature_cosine_min=_cosine_min(run["sets"]["appearance"].feats, seq_feats),
               backbone_runtime=runtime, runtime_speedup=speedup, streams=stream_rows(run, len(ds.items)),
               planned=plan.streams, pose_keypoints="from vidcat's pose cache where an earlier run computed them")
    print(json.dumps(res, indent=1))
    return 0


def summary(cfg: BenchRecipeConfig, run: dict, stages: dict, old: dict, cores: int, workers: int,
            clips: int, setup_s: float) -> dict:
    """The headline numbers: stage CPU per frame, the bound, the appearance pipeline against it and against
    the extraction before clip workers; ``steady_*``: without the once-per-process setup (``setup_s`` each)."""
    a = run["sets"]["appearance"]
    frames = int(np.prod(a.feats.shape[:2])) * cfg.frames
    decode, backbone = stages["appearance"]["load_ms"], stages["appearance"]["module_ms"]
    pipe_fps, pipe_cpu = frames / a.wall_seconds, 1000 * a.cpu_seconds / frames
    steady = 1000 * max(a.cpu_seconds - max(workers, 1) * setup_s, 0.0) / frames
    old["steady_cpu_ms_per_frame"] = round(old["cpu_ms_per_frame"] - 1000 * setup_s / frames, 2)
    bound = 1000 * cores / (decode + backbone)
    motion = stages.get("motion", {})
    return {"clips": len(a.index), "views": cfg.train_views, "frames": frames, "size": cfg.size,
            "workers": workers, "torch_threads": 1 if workers else torch.get_num_threads(), "cores": cores,
            "os_cores": os.cpu_count(), "decode_cpu_ms_per_frame": round(decode, 2),
            "backbone_cpu_ms_per_frame": round(backbone, 2),
            "motion_cpu_ms_per_frame": round(motion.get("load_ms", 0) + motion.get("module_ms", 0), 2),
            "pipeline_cpu_ms_per_frame": round(pipe_cpu, 2), "overhead": round(pipe_cpu / backbone, 3),
            "worker_setup_cpu_s": round(setup_s, 2), "steady_cpu_ms_per_frame": round(steady, 2),
            "steady_overhead": round(steady / backbone, 3),
            "bound_fps": round(bound, 1), "pipeline_fps": round(pipe_fps, 1),
            "pipeline_vs_bound": round(pipe_fps / bound, 3),
            "cpu_utilisation": round(a.cpu_seconds / a.wall_seconds / cores, 3),
            "pipeline_seconds": round(a.wall_seconds, 2),
            "default_pipeline_seconds": round(run["wall"], 2),
            "default_cpu_s_per_clip": round(run["cpu"] / max(clips, 1), 3),
            "default_bound_clips_per_s": round(cores * clips / max(run["cpu"], 1e-9), 3),
            "default_clips_per_s": round(clips / run["wall"], 3),
            "contention": {"before": old, "after": {"workers": workers, "torch_threads": 1,
                                                    "fps": round(pipe_fps, 1), "cpu_ms_per_frame": round(pipe_cpu, 2),
                                                    "steady_cpu_ms_per_frame": round(steady, 2)},
                           "speedup": round(pipe_fps / old["fps"], 3)}}
