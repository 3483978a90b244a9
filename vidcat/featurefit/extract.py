"""Each stream's features for every clip view, computed once and kept in the store.

Clips come from the one data path (:class:`vidcat.data.dataset.VideoClips` with the model's resolved
:class:`~vidcat.config.DataConfig`), so the inputs a training feature was made from are exactly what
``predict``, ``eval``, ``serve`` and ``export`` feed the model. View 0 is the deterministic test view;
views 1.. are training augmentations (random TSN positions and crop) drawn from an rng seeded by the
file's *content*, so a view -- and its store key -- does not depend on where the file sits in a data set.
Loader processes decode and run the data loaders (pose, sound, words) while the main process runs the
stream's module on whole clips; each finished clip is written at once, so a killed run resumes with what it
finished. Entries are verified on read (:class:`vidcat.io.store.Store`): a bad one is recomputed.

Each stream reports its CPU seconds (this process and its loader processes), so a run can say what every
stream cost.
"""
from __future__ import annotations

import hashlib
import resource
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import Dataset
from vidcat.errors import VideoError
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


def record_cost(store: Store, stream, data: DataConfig, views: int, cpu: float, clips: int) -> float:
    """Add this run's CPU seconds to the stream's running cost record in the store; the CPU seconds per clip
    over every clip it ever computed (so a run served from the store still knows what the stream costs)."""
    d = data.as_dict()
    key = store.key({"cost": stream.spec(), "views": views,
                     "data": {k: d[k] for k in VIDEO_KEYS + tuple(getattr(stream, "data_keys", ())) if k in d}})
    old = store.get(key)
    if old is None or np.shape(old) != (2,):          # none yet, or another layout: start afresh
        old = np.zeros(2)
    total = old + np.array([cpu, clips], np.float64)
    if clips:
        store.put(key, total)
    return float(total[0] / total[1]) if total[1] else 0.0


def cpu_time() -> float:
    """CPU seconds of this process and its finished children (loader processes count)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


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
    """The missing views of each clip, decoded through one open reader and collated: a batch per clip."""

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
                samples = [self.clips.read_views(reader, item, v > 0, np.random.default_rng([seed, v]) if v else None)
                           for v in views]
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


def extract_stream(dataset: Dataset, data: DataConfig, stream, views: int = 1, store: Store | None = None,
                   strict: bool = False, workers: int | None = None, log=None, ray=None,
                   only: list[int] | None = None) -> StreamFeatures:
    """``stream``'s features (N, views, D) of every readable clip of ``dataset`` (or of positions ``only``);
    from the store where there. ``ray``: compute the missing entries as a Ray job (True: a local Ray or
    ``$RAY_ADDRESS``; a string: that cluster), whose workers write the same store entries."""
    log = log or (lambda s: print(s, file=sys.stderr))
    store = store or Store(NAMESPACE)
    t0, c0 = time.perf_counter(), cpu_time()
    data = stream_data(data, stream)
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
    damaged: dict = {}
    if todo:
        fill = _fill_ray if ray else _fill
        fill(dataset, data, stream, todo, keys, got, store, skipped, damaged, strict, workers, log, ray)
    index = [i for i in got if i not in skipped]
    packed = np.stack([np.stack(got[i]) for i in index]) if index else np.zeros((0, views, 1), np.float32)
    cpu = cpu_time() - c0
    return StreamFeatures(stream.name, packed[..., :-1], packed[..., -1], index,
                          [(dataset.items[i].path, r) for i, r in sorted(skipped.items())],
                          [(dataset.items[i].path, w) for i, w in sorted(damaged.items())],
                          len(todo), cpu, time.perf_counter() - t0,
                          record_cost(store, stream, data, views, cpu if todo else 0.0, len(todo)))


def default_workers() -> int:
    """Loader processes beside the stream's module: as many as cores, at most 4."""
    from vidcat.io.ray_cluster import local_cpus

    return max(1, min(4, local_cpus()))


def _fill(dataset, data, stream, todo, keys, got, store, skipped, damaged, strict, workers, log, _ray):
    clips = VideoClips(dataset, data, train=False)
    workers = default_workers() if workers is None else workers
    loader = torch.utils.data.DataLoader(ClipViews(clips, todo), batch_size=None, num_workers=workers,
                                         prefetch_factor=4 if workers else None)
    stream.eval()
    for s in progress(loader, total=len(todo), desc=stream.name, unit="clip", leave=False):
        i, path = s["i"], dataset.items[s["i"]].path
        if "error" in s:
            skipped[i] = s["error"]
            _one_line(log, strict, path, s["error"])
            continue
        if s.get("warning"):
            damaged[i] = s["warning"]
        feats, present = run_stream(stream, s["batch"])
        for v, row, p in zip(s["views"], feats, present):
            got[i][v] = _pack(row, float(p))
            store.put(keys[i][v], got[i][v])


class RayStreamWorker:
    """A Ray actor: reads a row's missing views, runs the stream and writes the store entries."""

    def __init__(self, stream, data: DataConfig, store_root: str, views: int):
        torch.set_num_threads(1)
        self.stream, self.data, self.views = stream.eval(), data, views
        self.store = Store(NAMESPACE, root=store_root)

    def __call__(self, row: dict) -> dict:
        from vidcat.data.manifest import Item

        ds = Dataset([Item(row["path"], [])], [])
        s = ClipViews(VideoClips(ds, self.data), [(0, list(row["views"]))])[0]
        if "error" in s:
            return {**row, "error": s["error"], "warning": ""}
        keys = view_keys(self.store, row["path"], self.stream, self.data, self.views)
        feats, present = run_stream(self.stream, s["batch"])
        for v, f, p in zip(s["views"], feats, present):
            self.store.put(keys[v], _pack(f, float(p)))
        return {**row, "error": "", "warning": s.get("warning") or ""}


def _fill_ray(dataset, data, stream, todo, keys, got, store, skipped, damaged, strict, _workers, log, address):
    import ray as ray_module

    from vidcat.io.ray_cluster import init_ray, local_cpus

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
