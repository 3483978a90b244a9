"""Synthetic benchmarks made of real encoded videos (H.264 in MP4, written with PyAV).

``motion``: the class is the direction a textured object moves (left/right/up/down, plus
cw/ccw rotation with ``rotate=True``). Shape, colours, texture, background and the trajectory's
centre are random and independent of the class, so no single frame — and no order-free pooling
of frames — tells the classes apart: frame-only models sit at chance, temporal models do not.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidcat.config import SynthConfig
from vidcat.data import synth_multimodal
from vidcat.data.manifest import write_manifest
from vidcat.data.synth_media import mux_av
from vidcat.data.synth_video import DIRECTIONS, ROTATIONS, render_motion
from vidcat.io.progress import progress as progress_bar

SPLITS = ("train", "val", "test")


def classes_for(cfg: SynthConfig) -> list[str]:
    if cfg.kind == "motion":
        return list(DIRECTIONS) + (list(ROTATIONS) if cfg.rotate else [])
    return synth_multimodal.classes_for(cfg)


def make_video(path: Path, rng: np.random.Generator, label: str, cfg: SynthConfig) -> dict:
    """Write one video of class ``label``; returns extra manifest columns (e.g. text)."""
    if cfg.kind == "motion":
        mux_av(path, render_motion(rng, label, cfg), cfg.fps, crf=cfg.crf, gop=12)
        return {}
    return synth_multimodal.make_video(path, rng, label, cfg)


def generate(out, cfg: SynthConfig, progress: bool = True) -> dict[str, Path]:
    """Write ``out/{train,val,test}/<class>/*.mp4`` and ``out/{split}.csv``; returns the CSV paths."""
    out = Path(out)
    classes = classes_for(cfg)
    counts = {"train": cfg.per_class, "val": max(cfg.per_class // 4, 2), "test": max(cfg.per_class // 4, 2)}
    jobs = [(split, c, i) for split in SPLITS for c in classes for i in range(counts[split])]
    rows = {s: [] for s in SPLITS}
    for n, (split, c, i) in enumerate(progress_bar(jobs, desc=f"synth {cfg.kind}", enabled=progress, unit="video")):
        rng = np.random.default_rng([cfg.seed, n])
        rel = Path(split) / c / f"{c}_{i:04d}.mp4"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        extra = make_video(out / rel, rng, c, cfg)
        rows[split].append({"path": rel.as_posix(), "label": c, **extra})
    return {split: write_manifest(out / f"{split}.csv", rows[split]) for split in SPLITS}
