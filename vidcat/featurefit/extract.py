"""Each stream's features for every clip view, computed once and kept in the store.

Clips come from the one data path (:class:`vidcat.data.dataset.VideoClips` with the model's resolved
:class:`~vidcat.config.DataConfig`), so the inputs a training feature was made from are exactly what
``predict``, ``eval``, ``serve`` and ``export`` feed the model. View 0 is the deterministic test view;
views 1.. are training augmentations (random TSN positions and crop) drawn from an rng seeded by the
file's *content*, so a view -- and its store key -- does not depend on where the file sits in a data set.
Clip workers (:mod:`vidcat.featurefit.pool`, one per core, shared by every stream of a run) each take a whole
clip: decode it once for all its views, run the data loaders (pose, sound, words), then the stream's module;
the main process writes each finished clip at once, so a killed run resumes with what it finished. Entries
are verified on read (:class:`vidcat.io.store.Store`): a bad one is recomputed.

Each stream reports its CPU seconds (this process and what its clips took in the workers), and how much of it
was loading, so a run can say what every stream cost.
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import Dataset, Item
from vidcat.errors import VideoError
from vidcat.featurefit.pool import ClipPool, own_cpu, torch_threads
from vidcat.io.progress import progress
from vidcat.io.store import Store, content_key

FEATURE_VERSION = 3
NAMESPACE = "features"
VIDEO_KEYS = ("frames", "sampler", "size", "short_side", "stride", "mean", "std", "crop_scale")


@dataclass
class StreamFeatures:
    """One stream's ``feats`` (N, V, D) float32 and ``present`` (N, V) of the clips at dataset positions
    ``index``; per-frame streams store (T x F) flattened in D. ``skipped``: unreadable clips (path, why)."""

    name: str
    feats: np.ndarray
    present: np.ndarray
    index: list[int]
    skipped: list = field(default_factory=list)
    damaged: list = field(default_factory=list)
    computed: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_per_clip: float = 0.0      # measured when the entries were computed, this run or an earlier one
    loader_cpu_seconds: float = 0.0  # the part of cpu_seconds spent loading (decode, sampling, data loaders)
    workers: int = 0               # clip worker processes it ran with (0: all in this process)


def _cost_key(store: Store, stream, data: DataConfig, views: int) -> str:
    d = data.as_dict()
    return store.key({"cost": stream.spec(), "views": views,
                      "data": {k: d[k] for k in VIDEO_KEYS + tuple(getattr(stream, "data_keys", ())) if k in d}})


def cost_record(store: Store, stream, data: DataConfig, views: int) -> np.ndarray:
    """``[CPU seconds, clips, loading CPU seconds]`` the stream ever took with these settings (zeros if none)."""
    old = store.get(_cost_key(store, stream, data, views))
    flat, out = np.asarray(old if old is not None else (), np.float64).ravel(), np.zeros(3)
    if flat.size in (2, 3):          # [cpu, clips] before the loading part was kept; another layout: afresh
        out[: flat.size] = flat
    return out


def record_cost(store: Store, stream, data: DataConfig, views: int, cpu: float, clips: int,
                loader_cpu: float = 0.0) -> float:
    """Add this run's CPU seconds (and the loading part) to the stream's running cost record in the store; the
    CPU seconds per clip over every clip it ever computed (so a run served from the store still knows what the
    stream costs)."""
    total = cost_record(store, stream, data, views) + np.array([cpu, clips, loader_cpu], np.float64)
    if clips:
        store.put(_cost_key(store, stream, data, views), total)
    return float(total[0] / total[1]) if total[1] else 0.0


def stream_data(data: DataConfig, stream) -> DataConfig:
    """The data settings a stream reads with: the model's, limited to the stream's modalities."""
    return replace(data, modalities=tuple(stream.reads))


def view_keys(store: Store, path: str, stream, data: DataConfig, views: int) -> list[str]:
    """Store keys of ``views`` views of one file for ``stream`` (raises OSError when the file cannot be read)."""
    d = data.as_dict()
    keep = VIDEO_KEYS + tuple(getattr(stream, "data_keys", ()))
    spec = {"file": content_key(path), "stream": stream.spec(), "version": FEATURE_VERSION,
            "data": {k: d[k] for k in keep if k in d}}
    return [store.key({**spec, "view": v}) for v in range(views)]


def clip_seed(path: str) -> int:
    """The content seed of a file's augmented views."""
    return int(hashlib.sha256(content_key(path).encode()).hexdigest()[:15], 16)


class ClipViews(torch.utils.data.Dataset):
    """The missing views of each clip, collated: a batch per clip. A clip is decoded once, in one pass over
    the frames all its views need (:meth:`VideoClips.read_samples`)."""

    def __init__(self, clips: VideoClips, todo: list[tuple[int, list[int]]]):
        self.clips, self.todo = clips, todo

    def __len__(self):
        return len(self.todo)

    def __getitem__(self, j: int) -> dict:
        i, views = self.todo[j]
        item = self.clips.dataset.items[i]
        try:
            seed = clip_seed(item.path)
            with self.clips.open(item) as reader:
                samples = self.clips.read_samples(reader, item, [np.random.default_rng([seed, v]) if v else None
                                                                 for v in views])
                warning = getattr(reader, "warning", None)
        except VideoError as e:
            return {"i": i, "views": views, "error": e.reason}
        except OSError as e:
            return {"i": i, "views": views, "error": f"cannot read file ({e.strerror or type(e).__name__})"}
        return {"i": i, "views": views, "batch": collate(samples), "warning": warning}


def _one_line(log, strict, path, reason, prefix="skipped"):
    if strict:
        raise VideoError(path, reason)
    log(f"vidcat: {prefix} {path}: {reason}")


@torch.no_grad()
def run_stream(stream, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(features (V, D) float32, present (V,))`` of one clip's collated views."""
    feats, present = stream(batch)
    feats = feats.reshape(len(present), -1).float().cpu().numpy()
    return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0), present.float().cpu().numpy()


def _pack(feats: np.ndarray, present: float) -> np.ndarray:
    """One store entry: the feature vector with the present flag appended."""
    return np.concatenate([feats.astype(np.float32), np.float32([present])])


def clip_features(stream, data: DataConfig, item: Item, i: int, views: list[int]) -> dict:
    """One clip's job (in a clip worker, or here): its missing ``views`` loaded (:class:`ClipViews`, one decode)
    and run through ``stream``. ``{"i", "views", "feats" (V, D), "present" (V,), "warning", "cpu",
    "loader_cpu"}`` (CPU seconds in all and loading), or ``"error"`` in place of the features."""
    c0 = own_cpu()
    s = ClipViews(VideoClips(Dataset([item], []), data), [(0, list(views))])[0]
    loaded = own_cpu() - c0
    out = {"i": i, "views": list(views), "warning": s.get("warning"), "loader_cpu": loaded}
    if "error" in s:
        return {**out, "error": s["error"], "cpu": loaded}
    feats, present = run_stream(stream, s["batch"])
    return {**out, "feats": feats, "present": present, "cpu": own_cpu() - c0}


def default_workers(workers: int | None = None) -> int:
    """Clip workers: ``workers`` if given, else one per core (none on one core: all work here)."""
    from vidcat.io.ray_cluster import local_cpus

    if workers is not None:
        return max(0, int(workers))
    cores = local_cpus()
    return cores if cores > 1 else 0


def extract_stream(dataset: Dataset, data: DataConfig, stream, views: int = 1, store: Store | None = None,
                   strict: bool = False, workers: int | None = None, log=None, ray=None,
                   only: list[int] | None = None, pool: ClipPool | None = None,
                   threads: int | None = None) -> StreamFeatures:
    """``stream``'s features (N, views, D) of every readable clip of ``dataset`` (or of positions ``only``);
    from the store where there. The missing ones are computed by the clip workers of ``pool`` (one holding
    ``stream``; default: this call's own, ``workers`` of them, :func:`default_workers`); with no workers, here
    with ``threads`` torch threads. ``ray``: as a Ray job instead (True: a local Ray or ``$RAY_ADDRESS``; a
    string: that cluster), whose workers write the same store entries."""
    log = log or (lambda s: print(s, file=sys.stderr))
    store = store or Store(NAMESPACE)
    t0, c0 = time.perf_counter(), own_cpu()
    data = stream_data(data, stream)
    keys, got, skipped, todo = _lookup(dataset, data, stream, views, store, only, strict, log)
    run = {"threads": threads, "loader_cpu": 0.0, "remote_cpu": 0.0, "address": ray}
    damaged: dict = {}
    own_pool = bool(todo) and not ray and (pool is None or not pool.holds(stream))
    pool = ClipPool(default_workers(workers), {stream.name: stream}) if own_pool else pool
    try:
        if todo:
            fill = _fill_ray if ray else _fill
            fill(dataset, data, stream, todo, keys, got, store, skipped, damaged, strict, log, run, pool)
        cpu = own_cpu() - c0 + run["remote_cpu"]    # before an own pool's processes end (no double count)
    finally:
        if own_pool:
            pool.close()
    index = [i for i in got if i not in skipped]
    packed = np.stack([np.stack(got[i]) for i in index]) if index else np.zeros((0, views, 1), np.float32)
    return StreamFeatures(stream.name, packed[..., :-1], packed[..., -1], index,
                          [(dataset.items[i].path, r) for i, r in sorted(skipped.items())],
                          [(dataset.items[i].path, w) for i, w in sorted(damaged.items())],
                          len(todo), cpu, time.perf_counter() - t0,
                          record_cost(store, stream, data, views, cpu if todo else 0.0, len(todo), run["loader_cpu"]),
                          run["loader_cpu"], pool.size if pool is not None and todo and not ray else 0)


def _lookup(dataset, data, stream, views, store, only, strict, log) -> tuple:
    """Store keys and entries of each clip's views, the clips that cannot be read, and what is missing."""
    keys, got, skipped, todo = {}, {}, {}, []
    for i in (range(len(dataset.items)) if only is None else only):
        path = dataset.items[i].path
        try:
            keys[i] = view_keys(store, path, stream, data, views)
        except OSError as e:
            skipped[i] = f"cannot read file ({e.strerror or type(e).__name__})"
            _one_line(log, strict, path, skipped[i])
            continue
        got[i] = [store.get(k) for k in keys[i]]
        missing = [v for v, g in enumerate(got[i]) if g is None]
        if missing:
            todo.append((i, missing))
    return keys, got, skipped, todo


def _lost(task) -> dict:
    return {"i": task[2], "views": task[3], "error": "its worker process died reading it", "cpu": 0.0,
            "loader_cpu": 0.0}


def _fill(dataset, data, stream, todo, keys, got, store, skipped, damaged, strict, log, run, pool):
    tasks = [(data, dataset.items[i], i, views) for i, views in todo]
    with torch_threads(run["threads"] if pool.size == 0 else None):
        for s in progress(pool.map(clip_features, stream.name, tasks, _lost), total=len(todo), desc=stream.name,
                          unit="clip", leave=False):
            i, path = s["i"], dataset.items[s["i"]].path
            run["loader_cpu"] += s["loader_cpu"]
            run["remote_cpu"] += s["cpu"] if pool.size else 0.0
            if "error" in s:
                skipped[i] = s["error"]
                _one_line(log, strict, path, s["error"])
                continue
            if s.get("warning"):
                damaged[i] = s["warning"]
            for v, row, p in zip(s["views"], s["feats"], s["present"]):
                got[i][v] = _pack(row, float(p))
                store.put(keys[i][v], got[i][v])


class RayStreamWorker:
    """A Ray actor: reads a row's missing views, runs the stream and writes the store entries."""

    def __init__(self, stream, data: DataConfig, store_root: str, views: int):
        torch.set_num_threads(1)
        self.stream, self.data, self.views = stream.eval(), data, views
        self.store = Store(NAMESPACE, root=store_root)

    def __call__(self, row: dict) -> dict:
        """The row with ``error``, ``warning``, and the CPU seconds it took (``cpu``; ``loader_cpu`` loading)."""
        s = clip_features(self.stream, self.data, Item(row["path"], []), 0, row["views"])
        cost = {"cpu": s["cpu"], "loader_cpu": s["loader_cpu"]}
        if "error" in s:
            return {**row, "error": s["error"], "warning": "", **cost}
        keys = view_keys(self.store, row["path"], self.stream, self.data, self.views)
        for v, f, p in zip(s["views"], s["feats"], s["present"]):
            self.store.put(keys[v], _pack(f, float(p)))
        return {**row, "error": "", "warning": s.get("warning") or "", **cost}


def _fill_ray(dataset, data, stream, todo, keys, got, store, skipped, damaged, strict, log, run, _pool):
    import ray as ray_module

    from vidcat.io.ray_cluster import init_ray, local_cpus

    address = run["address"]
    started = not ray_module.is_initialized()
    ray = init_ray(None if address is True else address) if started else ray_module
    try:
        actors = max(1, int(ray.cluster_resources().get("CPU", local_cpus())) - 1)   # one CPU left for reading
        rows = ray.data.from_items([{"i": i, "path": dataset.items[i].path, "views": v} for i, v in todo],
                                   override_num_blocks=min(len(todo), 64))
        out = rows.map(RayStreamWorker, fn_constructor_kwargs={
            "stream": stream, "data": data, "store_root": str(store.root.parent), "views": len(keys[todo[0][0]])},
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)
        for r in out.iter_rows():
            i, path = int(r["i"]), dataset.items[int(r["i"])].path
            run["remote_cpu"] += float(r["cpu"])
            run["loader_cpu"] += float(r["loader_cpu"])
            for v in r["views"] if not r["error"] else ():
                got[i][v] = store.get(keys[i][v])
            reason = r["error"] or ("a feature entry is missing after the Ray job (is the cache root shared?)"
                                    if any(g is None for g in got[i]) else "")
            if reason:
                skipped[i] = reason
                _one_line(log, strict, path, reason)
            elif r["warning"]:
                damaged[i] = r["warning"]
    finally:
        if started:
            ray.shutdown()
