"""The torch Dataset: item → decode → sample → per-modality loaders → dict sample.

A sample is ``{"video": (C,T,H,W) float, "label": int | multi-hot, "path": str, ...}`` plus one entry
(and a ``<name>_mask``) per further modality; with
several test views every tensor gains a leading view axis (V, ...). A file that cannot be read
becomes ``{"path", "error"}``; :func:`collate` drops it from the batch and lists it under
``"skipped"`` so the training loop can report it (or fail under ``--strict``) and go on.
"""
from __future__ import annotations

import numpy as np
import torch

from vidcat.config import DataConfig, check_crops
from vidcat.data import transforms as T
from vidcat.data.clip_cache import open_clips
from vidcat.data.manifest import Dataset, Item
from vidcat.data.modalities import ClipContext, get_modality
from vidcat.data.sampling import sample_indices, view_positions
from vidcat.errors import VideoError
from vidcat.io.video import output_size


def encode_label(item: Item, classes: list[str], multilabel: bool):
    index = {c: i for i, c in enumerate(classes)}
    if multilabel:
        y = torch.zeros(len(classes))
        for lab in item.labels:
            y[index[lab]] = 1.0
        return y
    return index[item.labels[0]] if item.labels else -1


class VideoClips(torch.utils.data.Dataset):
    """Clips of the videos in ``dataset`` for ``cfg`` (a :class:`DataConfig`, normally resolved for a model).

    ``train`` draws one random clip position, crop and flip; otherwise ``clips`` x ``crops``
    deterministic test views are stacked on a leading axis. Every registered modality in
    ``cfg.modalities`` is loaded for each view through the same :class:`ClipContext`, so the
    spatial streams (RGB, flow, motion vectors) of a view always share one crop and flip.
    """

    def __init__(self, dataset: Dataset, cfg: DataConfig, train: bool = False, clips: int = 1,
                 crops: int = 1, threads: int = 1):
        check_crops(crops)
        cfg = cfg.filled()  # no-op for a config resolved for a model
        self.dataset, self.cfg, self.train = dataset, cfg, train
        self.clips, self.crops, self.threads = clips, crops, threads
        self.modalities = [get_modality(m) for m in cfg.modalities]

    def __len__(self):
        return len(self.dataset.items)

    def load_views(self, ctx: ClipContext, boxes=None) -> list[dict]:
        """Every modality of one clip position, one dict per crop box (default: the test crops).
        Audio and text load once and are shared by the crops; video, flow and mv use each box."""
        if boxes is None:
            boxes = T.test_boxes(*ctx.frames.shape[1:3], self.crops)
        shared = {}
        for m in self.modalities:
            if not m.spatial:
                shared.update(m.load(ctx))
        views = []
        for box in boxes:
            ctx.crop_box = box
            view = dict(shared)
            for m in self.modalities:
                if m.spatial:
                    view.update(m.load(ctx))
            views.append(view)
        return views

    @property
    def num_views(self) -> int:
        return 1 if self.train else self.clips * self.crops

    def __getitem__(self, i: int) -> dict:
        item = self.dataset.items[i]
        try:
            sample = self._load(item, i)
        except VideoError as e:
            return {"path": item.path, "error": e.reason}
        sample["label"] = encode_label(item, self.dataset.classes, self.dataset.multilabel)
        sample["path"] = item.path
        sample["index"] = i  # dataset position: torchrun's evaluation puts the ranks' rows back in order
        return sample

    seed: int = 0   # training randomness is a function of (seed, epoch, item): exact resume, any worker count
    epoch: int = 0

    def item_rng(self, i: int) -> np.random.Generator:
        """The training randomness of item ``i`` this epoch (positions, crop, flip)."""
        return np.random.default_rng([self.seed, self.epoch, i])

    def open(self, item: Item):
        """A reader of ``item`` (through the clip cache when one is configured)."""
        return open_clips(item.path, self.cfg.clip_cache, self.cfg.decode_short_side, threads=self.threads)

    def _load(self, item: Item, i: int) -> dict:
        with self.open(item) as reader:
            sample = self.read_views(reader, item, self.train, self.item_rng(i) if self.train else None)
            warning = getattr(reader, "warning", None)  # e.g. "truncated: decodable frames end at 47 of 100 expected"
        if warning:
            sample["warning"] = warning
        return sample

    def read_views(self, reader, item: Item, train: bool, rng) -> dict:
        """One sample from an open reader: a random training view (``train``, drawn from ``rng``) or the
        ``clips`` x ``crops`` test views stacked on a leading axis."""
        return self.read_samples(reader, item, [rng if train else None])[0]

    def read_samples(self, reader, item: Item, draws: list) -> list[dict]:
        """One sample per entry of ``draws`` from an open reader: the test views (None) or a random training
        view drawn from that rng. Every view's frame indices come first, then the frames any of them needs are
        decoded in one pass and each sample is built from them: a clip read for several views is decoded once,
        and each sample equals what :meth:`read_views` gives for it alone."""
        info = reader.info
        plans = [self.sample_plan(info, rng) for rng in draws]
        need = [self.frames_needed(info, idx) for plan in plans for idx in plan]
        want = np.unique(np.concatenate(need)) if need else np.zeros(0, np.int64)
        decoded = dict(zip(want.tolist(), reader.frames(want, short_side=self.cfg.decode_short_side))) \
            if want.size else {}
        return [self._build(item, info, rng, plan, decoded) for rng, plan in zip(draws, plans)]

    def sample_plan(self, info, rng) -> list[np.ndarray]:
        """Frame indices of each view position of one sample: one random position drawn from ``rng``, or
        (``rng`` None) the test positions."""
        sc, n = self.cfg.sampler_config, info.num_frames
        if rng is not None:
            return [sample_indices(n, sc, True, rng, view=0.5)]
        return [sample_indices(n, sc, False, None, view=pos) for pos in view_positions(self.clips)]

    def frames_needed(self, info, indices: np.ndarray) -> np.ndarray:
        """The frames the modalities need decoded for a view sampled at ``indices`` (none for sound, words
        and keypoints, which read the file themselves); a view that needs any frame has its own."""
        need = [np.asarray(m.frames(indices, self.cfg, info), np.int64) for m in self.modalities]
        if not any(n.size for n in need):
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate([np.asarray(indices, np.int64)] + need))

    def _build(self, item: Item, info, rng, plan: list, decoded: dict) -> dict:
        """The sample of one draw from the decoded frames (the same random draws, in the same order, as a
        sample decoded alone)."""
        cfg, train, views = self.cfg, rng is not None, []
        for idx in plan:
            frames = np.stack([decoded[int(i)] for i in idx]) if decoded else None
            h, w = frames.shape[1:3] if frames is not None else \
                output_size(info.width, info.height, cfg.decode_short_side)[::-1]
            if train:
                boxes = [T.random_box(h, w, rng, tuple(cfg.crop_scale))]
                flip = bool(cfg.hflip and rng.random() < 0.5)
            else:
                boxes, flip = T.test_boxes(h, w, self.crops), False
            ctx = ClipContext(item, info, start=float(idx.min() / info.fps), end=float((idx.max() + 1) / info.fps),
                              indices=idx.tolist(), cfg=cfg, train=train, rng=rng, frames=frames, flip=flip,
                              decoded=decoded or None)
            views += self.load_views(ctx, boxes)
        return views[0] if len(views) == 1 else {k: _stack([v[k] for v in views]) for k in views[0]}


def _stack(values):
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values)
    if isinstance(values[0], (int, float)):
        return torch.tensor(values)
    return list(values)


def collate(samples: list[dict]) -> dict:
    """Stack good samples; list unreadable ones under ``"skipped"`` as (path, reason) and damaged but
    usable ones (truncated, partly undecodable) under ``"warnings"`` as (path, warning)."""
    good = [s for s in samples if "error" not in s]
    batch: dict = {"skipped": [(s["path"], s["error"]) for s in samples if "error" in s],
                   "warnings": [(s["path"], s["warning"]) for s in good if s.get("warning")]}
    if good:
        for key in good[0]:
            if key != "warning":
                batch[key] = _stack([s[key] for s in good])
    batch["size"] = len(good)
    return batch


def make_loader(clips: VideoClips, batch_size: int, shuffle: bool, workers: int,
                sampler=None, generator: torch.Generator | None = None) -> torch.utils.data.DataLoader:
    """``sampler``: e.g. a DistributedSampler under torchrun (it then does the shuffling). ``generator``
    draws the shuffle order and the workers' base seed, so a loader never consumes the global RNG (an
    exact resume needs the global RNG to see the same draws as the uninterrupted run)."""
    return torch.utils.data.DataLoader(
        clips, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler, num_workers=workers,
        collate_fn=collate, generator=generator if generator is not None else torch.Generator().manual_seed(0),
        persistent_workers=workers > 0 and not clips.train,  # training workers restart each epoch with its number
        prefetch_factor=4 if workers > 0 else None,
        drop_last=False)
