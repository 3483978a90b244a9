"""Per-frame features of ``frame_head`` for every clip view, computed once and kept in the store.

The clips come from the one data path (:class:`vidcat.data.dataset.VideoClips` with the model's resolved
:class:`~vidcat.config.DataConfig`), so the frames a training feature was made from are exactly the frames
``predict``, ``eval``, ``serve`` and ``export`` feed the model. View 0 is the deterministic test view
(TSN centre frames, centre crop); views 1.. are training augmentations (random TSN positions and crop)
drawn from an rng seeded by the file's *content*, so a view's pixels -- and its store key -- do not depend
on where the file sits in a dataset. Loader processes decode (one container open per clip for all its
missing views) while the main process runs the backbone on whole clips; each finished clip is written at
once, so a killed run resumes with what it finished. Entries are verified on read
(:class:`vidcat.io.store.Store`): a bad one is recomputed with one line.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips
from vidcat.data.manifest import Dataset
from vidcat.errors import VideoError
from vidcat.io.progress import progress
from vidcat.io.store import Store, content_key

FEATURE_VERSION = 2
NAMESPACE = "features"


@dataclass
class FeatureSet:
    """``feats`` (N, V, T, F) float32 of the readable clips (dataset positions ``index``), and what was
    skipped (unreadable) or damaged (used, flagged)."""

    feats: np.ndarray
    index: list[int]
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    computed: int = 0
    seconds: float = 0.0


class ViewClips(torch.utils.data.Dataset):
    """The missing views of each clip, decoded through one open reader: ``{"i", "views", "video"}``."""

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
                out = [self.clips.read_views(reader, item, v > 0, np.random.default_rng([seed, v]) if v else None)
                       ["video"] for v in views]
                warning = getattr(reader, "warning", None)
        except VideoError as e:
            return {"i": i, "views": views, "error": e.reason}
        except OSError as e:
            return {"i": i, "views": views, "error": f"cannot read file ({e.strerror or type(e).__name__})"}
        return {"i": i, "views": views, "video": torch.stack(out), "warning": warning}


def view_keys(store: Store, path: str, encoder: dict, data: DataConfig, views: int) -> list[str]:
    """Store keys of ``views`` views of one file (raises OSError when the file cannot be read)."""
    spec = {"file": content_key(path), "encoder": encoder, "version": FEATURE_VERSION,
            "data": {k: data.as_dict()[k] for k in ("frames", "sampler", "size", "short_side", "stride",
                                                     "mean", "std", "crop_scale")}}
    return [store.key({**spec, "view": v}) for v in range(views)]


def encoder_id(model) -> dict:
    """What identifies the frozen part of a ``frame_head`` model in a cache key."""
    info = model.backbone_info
    return {"name": info.name, "weights": info.weights_sha256, "pooling": info.pooling, "motion": "energy-v1"}


def _one_line(log, strict, path, reason, prefix="skipped"):
    if strict:
        raise VideoError(path, reason)
    log(f"vidcat: {prefix} {path}: {reason}")


@torch.no_grad()
def extract(dataset: Dataset, data: DataConfig, model, views: int = 1, store: Store | None = None,
            strict: bool = False, workers: int | None = None, log=None, ray: str | bool | None = None) -> FeatureSet:
    """Features (N, views, T, F) of every readable clip of ``dataset``; from the store where there.

    ``ray``: compute the missing entries as a Ray Data job instead (True: ``$RAY_ADDRESS`` or a local Ray;
    a string: that cluster's address); its workers write the same store entries, so the store root must
    be reachable from them (a shared filesystem on a real cluster)."""
    log = log or (lambda s: print(s, file=sys.stderr))
    store = store or Store(NAMESPACE)
    t0, enc = time.perf_counter(), encoder_id(model)
    keys, todo, skipped = {}, [], {}
    got: dict[int, list] = {}
    for i, item in enumerate(dataset.items):
        try:
            keys[i] = view_keys(store, item.path, enc, data, views)
        except OSError as e:
            skipped[i] = f"cannot read file ({e.strerror or type(e).__name__})"
            _one_line(log, strict, item.path, skipped[i])
            continue
        got[i] = [store.get(k) for k in keys[i]]
        missing = [v for v, g in enumerate(got[i]) if g is None]
        if missing:
            todo.append((i, missing))
    damaged = {}
    if todo and ray:
        _fill_ray(dataset, data, model, todo, keys, got, store, skipped, damaged, strict, log,
                  None if ray is True else ray)
    elif todo:
        _fill(dataset, data, model, todo, keys, got, store, skipped, damaged, strict, workers, log)
    index = [i for i in got if i not in skipped]
    feats = np.stack([np.stack(got[i]) for i in index]) if index else np.zeros((0, views, data.frames, 0), np.float32)
    return FeatureSet(feats, index, [dataset.items[i].path for i in index],
                      [(dataset.items[i].path, r) for i, r in sorted(skipped.items())],
                      [(dataset.items[i].path, w) for i, w in sorted(damaged.items())],
                      len(todo), time.perf_counter() - t0)


def default_workers() -> int:
    """Decode processes beside the backbone: as many as cores, at most 4 (the backbone is the bottleneck)."""
    return max(1, min(4, os.cpu_count() or 1))


def _fill(dataset, data, model, todo, keys, got, store, skipped, damaged, strict, workers, log):
    clips = VideoClips(dataset, data, train=False)
    workers = default_workers() if workers is None else workers
    loader = torch.utils.data.DataLoader(ViewClips(clips, todo), batch_size=None, num_workers=workers,
                                         prefetch_factor=4 if workers else None)
    model.eval()
    for s in progress(loader, total=len(todo), desc="features", unit="clip", leave=False):
        i, path = s["i"], dataset.items[s["i"]].path
        if "error" in s:
            skipped[i] = s["error"]
            _one_line(log, strict, path, s["error"])
            continue
        if s.get("warning"):
            damaged[i] = s["warning"]
        f = model.frame_features(s["video"]).numpy()
        for v, row in zip(s["views"], f):
            store.put(keys[i][v], row)
            got[i][v] = row


class RayFeatureWorker:
    """A Ray actor: decodes a row's missing views and writes their store entries (the driver reads them)."""

    def __init__(self, model, data: DataConfig, store_root: str, views: int):
        torch.set_num_threads(1)
        self.model, self.data, self.views = model.eval(), data, views
        self.store = Store(NAMESPACE, root=store_root)

    def __call__(self, row: dict) -> dict:
        from vidcat.data.manifest import Item

        ds = Dataset([Item(row["path"], [])], [])
        s = ViewClips(VideoClips(ds, self.data), [(0, list(row["views"]))])[0]
        if "error" in s:
            return {**row, "error": s["error"], "warning": ""}
        keys = view_keys(self.store, row["path"], encoder_id(self.model), self.data, self.views)
        with torch.no_grad():
            for v, f in zip(s["views"], self.model.frame_features(s["video"]).numpy()):
                self.store.put(keys[v], f)
        return {**row, "error": "", "warning": s.get("warning") or ""}


def _fill_ray(dataset, data, model, todo, keys, got, store, skipped, damaged, strict, log, address):
    import ray as ray_module

    from vidcat.io.ray_cluster import init_ray, local_cpus

    started = not ray_module.is_initialized()
    ray = init_ray(address) if started else ray_module
    try:
        actors = max(1, int(ray.cluster_resources().get("CPU", local_cpus())) - 1)   # one CPU left for reading
        rows = ray.data.from_items([{"i": i, "path": dataset.items[i].path, "views": v} for i, v in todo],
                                   override_num_blocks=min(len(todo), 64))
        out = rows.map(RayFeatureWorker, fn_constructor_kwargs={
            "model": model, "data": data, "store_root": str(store.root.parent), "views": len(keys[todo[0][0]])},
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


def clip_seed(path: str) -> int:
    """The content seed of a file's augmented views (also what :class:`ViewClips` uses)."""
    return int(hashlib.sha256(content_key(path).encode()).hexdigest()[:15], 16)
