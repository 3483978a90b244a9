"""Synthetic benchmarks made of real encoded videos (H.264 in MP4, written with PyAV).

``motion``: the class is the direction a textured object moves (left/right/up/down, plus
cw/ccw rotation with ``rotate=True``). Shape, colours, texture, background and the trajectory's
centre are random and independent of the class, so no single frame — and no order-free pooling
of frames — tells the classes apart: frame-only models sit at chance, temporal models do not.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcat.config import check_fields, opt
from vidcat.data import synth_multimodal
from vidcat.data.manifest import write_manifest
from vidcat.data.synth_media import mux_av
from vidcat.data.synth_video import DIRECTIONS, ROTATIONS, render_motion
from vidcat.errors import VidcatError
from vidcat.io.progress import progress as progress_bar

SPLITS = ("train", "val", "test")


@dataclass
class SynthConfig:
    """Size and difficulty of a synthetic benchmark."""

    kind: str = opt("motion", "motion (direction of motion), av (axis x pitch), avt (axis x pitch x subtitle)",
                    choices=("motion", "av", "avt"))
    per_class: int = opt(60, "training videos per class; val and test get a quarter each", min=1)
    size: int = opt(64, "frame side in pixels", min=16)
    frames: int = opt(24, "frames per video", min=2)
    fps: int = opt(12, "frame rate", min=1)
    seed: int = opt(0, "random seed")
    rotate: bool = opt(False, "add cw/ccw rotation classes (motion)")
    distractors: int = opt(0, "moving objects whose motion is independent of the class", min=0)
    jitter: float = opt(0.0, "camera shake, pixels (std)", min=0.0)
    crf: int = opt(23, "H.264 quality: higher = stronger compression artefacts", min=0, max=51)
    missing_audio: float = opt(0.0, "fraction of videos written without their audio track (av, avt)", min=0.0, max=1.0)
    missing_text: float = opt(0.0, "fraction written without subtitles (avt)", min=0.0, max=1.0)

    def __post_init__(self):
        check_fields(self)


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
