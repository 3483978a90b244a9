"""Per-modality loaders: each turns (item, opened video, clip time span) into sample dict entries.

The dataset always loads ``video``; other modalities register a loader here, so adding a stream
(audio, text, flow, motion vectors) touches no dataset code. A loader returns its tensor plus a
``<name>_mask`` float (1 present, 0 missing) so the model can ignore absent modalities.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from vidcat.config import DataConfig
from vidcat.data.manifest import Item
from vidcat.io.video import VideoInfo


@dataclass
class ClipContext:
    """What a modality loader may use: the item, its probed info, and the clip's time span."""

    item: Item
    info: VideoInfo
    start: float
    end: float
    indices: list
    cfg: DataConfig
    train: bool
    rng: object = None       # numpy Generator for training-time randomness
    frames: object = None    # decoded uint8 (T, H, W, 3) of this clip, when already decoded
    crop_box: tuple | None = None  # training crop (top, left, side) in ``frames`` pixels; None = centre


Loader = Callable[[ClipContext], dict]
LOADERS: dict[str, Loader] = {}


def register_modality(name: str):
    def wrap(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn
    return wrap


def get_loader(name: str) -> Loader:
    if name not in LOADERS:
        import vidcat.data.extra_modalities  # noqa: F401  (audio/text/flow loaders register on import)
    if name not in LOADERS:
        from vidcat.errors import VidcatError
        raise VidcatError(f"unknown modality {name!r}; known: video, {', '.join(sorted(LOADERS))}")
    return LOADERS[name]
