"""Unlabelled clips through the default model's streams: their features through the same extraction and store
as training (so a clip computed once is never computed again), and the fused calibrated logits of a fitted
``streams`` model on them. Used by ``--background`` (train), ``vidcat suggest`` and ``vidcat cluster``."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcat.data.manifest import Dataset, Item, read_csv, read_jsonl
from vidcat.errors import VidcatError
from vidcat.featurefit.extract import NAMESPACE, default_workers, extract_stream
from vidcat.featurefit.pool import ClipPool
from vidcat.io.store import Store


def unlabelled_items(source) -> list[Item]:
    """The clips of ``source`` with their labels dropped: a folder (searched recursively), a CSV/JSONL
    manifest or one video file."""
    from vidcat.io.video import find_videos

    src = Path(source)
    if not src.exists():
        raise VidcatError(f"{src}: no such file or folder")
    if src.is_dir():
        items = [Item(str(p)) for p in find_videos(src)]
    elif src.suffix.lower() == ".csv":
        items = [Item(it.path, [], it.text) for it in read_csv(src)]
    elif src.suffix.lower() in (".jsonl", ".json"):
        items = [Item(it.path, [], it.text) for it in read_jsonl(src)]
    else:
        items = [Item(str(src))]
    if not items:
        raise VidcatError(f"{src}: no videos found")
    return items


@dataclass
class PoolFeatures:
    """The centre-view features of the readable clips: ``paths`` (N,), per stream ``feats`` (N, D) and
    ``present`` (N,); ``skipped``: (path, why) of the clips the first stream could not read."""

    paths: list
    feats: dict
    present: dict
    skipped: list


def pool_features(items: list[Item], data, modules: dict, cache=None, strict: bool = False, workers=None,
                  log=None) -> PoolFeatures:
    """Each stream's centre-view features of ``items`` (views 1.. -- training augmentations -- are not needed
    here; view 0's store entry is the one training uses). A clip the first stream cannot read is skipped;
    one another stream cannot read counts as that stream absent."""
    log = log or (lambda s: print(s, file=sys.stderr))
    ds, store = Dataset(list(items), []), Store(NAMESPACE, root=cache)
    sets, index = {}, None
    for module in modules.values():
        if hasattr(module, "runtime_root"):
            module.runtime_root = cache
    with ClipPool(default_workers(workers), modules) as pool:        # one for every stream
        for name, module in modules.items():
            sets[name] = extract_stream(ds, data, module, views=1, store=store, strict=strict, log=log, only=index,
                                        workers=workers, pool=pool)
            index = sets[name].index if index is None else index
            if not index:
                raise VidcatError(f"none of the {len(items)} videos could be read")
    return _aligned(items, sets, index)


def _aligned(items, sets: dict, index: list) -> PoolFeatures:
    """Each stream's centre view at the positions ``index`` (the first stream's readable clips); zeros and
    absent where a stream could not read a clip."""
    feats, present = {}, {}
    for name, s in sets.items():
        pos = {i: j for j, i in enumerate(s.index)}
        feats[name] = np.zeros((len(index), s.feats.shape[-1]), np.float32)
        present[name] = np.zeros(len(index), np.float32)
        for j, i in enumerate(index):
            if i in pos:
                feats[name][j], present[name][j] = s.feats[pos[i], 0], s.present[pos[i], 0]
    return PoolFeatures([items[i].path for i in index], feats, present, next(iter(sets.values())).skipped)


def fused_outputs(model, pool: PoolFeatures, batch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fused logits (N, K), head space (N, D), presence (N, S))`` of a ``streams`` model on cached features:
    what its forward gives the clips (calibrated logits, since training folds the calibration into the
    stacker), the heads' pooled inputs and which streams each clip has (:mod:`vidcat.models.stream_space`)."""
    import torch

    from vidcat.models.stream_space import from_features

    shapes, logits, space, presence = model.feature_shapes(), [], [], []
    with torch.no_grad():
        for a in range(0, len(pool.paths), batch):
            feats = {s: torch.from_numpy(pool.feats[s][a:a + batch]).reshape((-1,) + tuple(shapes[s]))
                     for s in model.names}
            z, x, p = from_features(model, feats, {s: torch.from_numpy(pool.present[s][a:a + batch]) for s in model.names})
            logits.append(z.double().numpy())
            space.append(x.double().numpy())
            presence.append(p.double().numpy())
    return np.concatenate(logits), np.concatenate(space), np.concatenate(presence)


def pooled(pool: PoolFeatures, modules: dict, names=None, global_only: bool = False) -> np.ndarray:
    """(N, D) clip vectors of streams ``names`` side by side: per-frame streams mean-pooled over time (with
    ``global_only`` their global part only -- the average features, not the positional ones)."""
    parts = []
    for name in names or list(pool.feats):
        x, m = pool.feats[name], modules[name]
        if getattr(m, "per_frame", False):
            x = x.reshape(len(x), m.frames, -1).mean(1)
            x = x[:, : m.feat_dim // 3] if global_only else x
        parts.append(x.astype(np.float64))
    return np.concatenate(parts, 1)
