"""The modality registry: each loader turns one view of a clip (:class:`ClipContext`) into sample entries.

Every stream -- video, audio, text, flow, motion vectors -- registers the same way, so adding one
touches no dataset code. A loader returns its input plus, for streams that can be missing, a
``<name>_mask`` float (1 present, 0 missing) so fusion models can ignore absent modalities.
``spatial`` loaders (video, flow, mv) are called once per test crop with that crop's box; the
others (audio, text) once per clip position, their result shared by the position's crops. A modality says
which frames it needs decoded (``frames``): the dataset decodes what all of a clip's views need in one pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from vidcat.config import DataConfig
from vidcat.data.manifest import Item
from vidcat.errors import VidcatError
from vidcat.io.video import VideoInfo


@dataclass
class ClipContext:
    """What a modality loader may use: the item, its probed info, the clip and the view's crop."""

    item: Item
    info: VideoInfo
    start: float
    end: float
    indices: list
    cfg: DataConfig
    train: bool
    rng: object = None       # numpy Generator for training-time randomness
    frames: object = None    # decoded uint8 (T, H, W, 3) of this clip
    crop_box: tuple | None = None  # (top, left, side) in ``frames`` pixels, the same for every spatial stream
    flip: bool = False       # horizontal flip of this view (every spatial stream)
    decoded: dict | None = None  # every frame decoded for the clip's views, {index: uint8 (H, W, 3)}


Loader = Callable[[ClipContext], dict]
FrameNeed = Callable[[np.ndarray, DataConfig, VideoInfo], np.ndarray]   # (sampled indices, cfg, info) -> indices


def sampled_frames(indices: np.ndarray, cfg: DataConfig, info: VideoInfo) -> np.ndarray:
    """The frames a view needs decoded, for most modalities: the view's sampled frames."""
    return np.asarray(indices, np.int64)


def no_frames(indices: np.ndarray, cfg: DataConfig, info: VideoInfo) -> np.ndarray:
    """For modalities that read the file themselves (sound, words, keypoints): no decoded frame."""
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class Modality:
    name: str
    load: Loader
    spatial: bool
    frames: FrameNeed = sampled_frames


MODALITIES: dict[str, Modality] = {}


def register_modality(name: str, spatial: bool = False, frames: FrameNeed = sampled_frames):
    """Decorator: ``@register_modality("audio")`` registers ``fn(ctx) -> dict`` for stream ``name``;
    ``frames`` says which frames a view needs decoded (``ctx.frames`` holds the sampled ones, ``ctx.decoded``
    all of them)."""
    def wrap(fn: Loader) -> Loader:
        if name in MODALITIES:
            raise ValueError(f"modality {name!r} registered twice")
        MODALITIES[name] = Modality(name, fn, spatial, frames)
        return fn
    return wrap


def get_modality(name: str) -> Modality:
    if name not in MODALITIES:
        raise VidcatError(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITIES))}")
    return MODALITIES[name]
