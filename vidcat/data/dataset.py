"""The torch Dataset: item → decode → sample → transform → dict sample.

A sample is ``{"video": (C,T,H,W) float, "label": int | multi-hot, "path": str, ...}``; with
several test views every tensor gains a leading view axis (V, ...). A file that cannot be read
becomes ``{"path", "error"}``; :func:`collate` drops it from the batch and lists it under
``"skipped"`` so the training loop can report it (or fail under ``--strict``) and go on.
"""
from __future__ import annotations

import numpy as np
import torch

from vidcat.config import DataConfig
from vidcat.data import transforms as T
from vidcat.data.manifest import Dataset, Item
from vidcat.data.modalities import ClipContext, get_loader
from vidcat.data.sampling import sample_indices, view_positions
from vidcat.errors import VideoError
from vidcat.io.video import VideoReader


def encode_label(item: Item, classes: list[str], multilabel: bool):
    index = {c: i for i, c in enumerate(classes)}
    if multilabel:
        y = torch.zeros(len(classes))
        for lab in item.labels:
            y[index[lab]] = 1.0
        return y
    return index[item.labels[0]] if item.labels else -1


class VideoClips(torch.utils.data.Dataset):
    """Clips of the videos in ``dataset`` for ``cfg``.

    ``train`` draws random clip positions and crops; otherwise ``clips`` × ``crops`` deterministic
    test views (crops = 1 centre or 3 along the long side) are stacked on a leading axis.
    """

    def __init__(self, dataset: Dataset, cfg: DataConfig, train: bool = False, clips: int = 1,
                 crops: int = 1, threads: int = 1):
        if crops not in (1, 3):
            raise ValueError("crops must be 1 or 3")
        self.dataset, self.cfg, self.train = dataset, cfg, train
        self.clips, self.crops, self.threads = clips, crops, threads
        self.loaders = {m: get_loader(m) for m in cfg.modalities if m != "video"}

    def __len__(self):
        return len(self.dataset.items)

    @property
    def num_views(self) -> int:
        return 1 if self.train else self.clips * self.crops

    def __getitem__(self, i: int) -> dict:
        item = self.dataset.items[i]
        try:
            sample = self._load(item)
        except VideoError as e:
            return {"path": item.path, "error": e.reason}
        sample["label"] = encode_label(item, self.dataset.classes, self.dataset.multilabel)
        sample["path"] = item.path
        return sample

    def _load(self, item: Item) -> dict:
        cfg = self.cfg
        rng = np.random.default_rng([int(torch.randint(2**31 - 1, (1,))), len(item.path)]) if self.train else None
        positions = [0.5] if self.train else view_positions(self.clips)
        views: list[dict] = []
        with VideoReader(item.path, threads=self.threads) as reader:
            info = reader.info
            for pos in positions:
                idx = sample_indices(info.num_frames, cfg.sampler_config, self.train, rng, view=pos)
                frames = reader.frames(idx, short_side=cfg.decode_short_side)
                # one training crop for every spatial stream (RGB, flow, mv): they must coincide
                box = T.random_box(*frames.shape[1:3], rng, tuple(cfg.crop_scale)) if self.train else None
                ctx = ClipContext(item, info, start=float(idx.min() / info.fps),
                                  end=float((idx.max() + 1) / info.fps), indices=idx.tolist(), cfg=cfg,
                                  train=self.train, rng=rng, frames=frames, crop_box=box)
                extra = {}
                for loader in self.loaders.values():
                    extra.update(loader(ctx))
                for video in self.video_views(frames, rng, box):
                    views.append({"video": video, **extra})
        if len(views) == 1:
            return views[0]
        return {k: _stack([v[k] for v in views]) for k in views[0]}

    def video_views(self, frames: np.ndarray, rng, box=None) -> list[torch.Tensor]:
        cfg = self.cfg
        x = T.to_tensor(frames)
        if self.train:
            x = T.crop_resize(x, box or T.random_box(*x.shape[-2:], rng, tuple(cfg.crop_scale)), cfg.size)
            if cfg.hflip and rng.random() < 0.5:
                x = T.hflip(x)
            crops = [x]
        elif self.crops == 3:
            crops = T.three_crops(x, cfg.size)
        else:
            crops = [T.center_crop(x, cfg.size)]
        return [T.normalize(c, cfg.mean, cfg.std) for c in crops]


def _stack(values):
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values)
    if isinstance(values[0], (int, float)):
        return torch.tensor(values)
    return list(values)


def collate(samples: list[dict]) -> dict:
    """Stack good samples; list unreadable ones under ``"skipped"`` as (path, reason)."""
    good = [s for s in samples if "error" not in s]
    batch: dict = {"skipped": [(s["path"], s["error"]) for s in samples if "error" in s]}
    if good:
        for key in good[0]:
            batch[key] = _stack([s[key] for s in good])
    batch["size"] = len(good)
    return batch


def make_loader(clips: VideoClips, batch_size: int, shuffle: bool, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        clips, batch_size=batch_size, shuffle=shuffle, num_workers=workers, collate_fn=collate,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
        drop_last=False)
