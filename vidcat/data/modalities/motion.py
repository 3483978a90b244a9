"""Temporal-stream loaders: ``flow`` (optical flow) and ``mv`` (codec motion vectors).

Both give ``{name: float (2L, T, H, W), name_mask: 1.0}`` for the clip the dataset sampled: for each
sampled frame ``i`` (``ctx.indices``) the ``L = cfg.flow_length`` consecutive motion fields starting
there (motion ``i -> i+1``, ..., ``i+L-1 -> i+L``), channels ``x, y`` per field. So the ``clip`` sampler
with L = 1 gives the clip's field sequence (for 3D temporal streams, ``in_channels=2``) and the ``tsn``
sampler with L = 5 gives the TSN paper's stacked flow per segment (2D streams, ``in_channels=10``).

Values are pixels per frame at the model's input resolution divided by the +-20 px quantization
bound (``vidcat.io.motion.flow.BOUND``), so they lie in [-1, 1]; x > 0 is motion to the right, y > 0
down. The spatial crop is the RGB stream's: ``ctx.crop_box`` while training (the dataset draws one
box for all spatial streams), the centre square otherwise; fields are rescaled with the crop.

Where the motion comes from: with ``cfg.motion_cache`` the entry ``vidcat flow`` wrote (at the
decode short side, or at native size and resized here); a miss is computed on the fly, with one
warning per file. Without a cache: ``flow`` runs ``cfg.flow_method`` (DIS fast by default) on the
decoded frames (the clip's frames plus the few extra ones the stacks need, decoded with the clip's own:
:func:`flow_frames`), ``mv`` reads the codec's
motion vectors (``read_motion_vectors``, which itself falls back to DIS for codecs without them).
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from vidcat.data import transforms as T
from vidcat.data.modalities.base import ClipContext, register_modality
from vidcat.io.video import VideoReader
from vidcat.io.motion.cache import build_cache, canonical, load_cached
from vidcat.io.motion.flow import BOUND, compute_flow, dequantize
from vidcat.io.motion.motion_vectors import read_motion_vectors

log = logging.getLogger("vidcat.io.motion")
_warned: set = set()  # (path or cache dir, cache dir) already reported in this process


def _warn_once(key, msg: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def field_ids(indices, length: int, total: int, kind: str) -> np.ndarray:
    """(T, L) indices into the video's field array for each sampled frame and stack position.

    ``flow`` field j is the motion j -> j+1 (``total - 1`` fields); ``mv`` field j is the motion
    *into* frame j (``total`` fields, see ``vidcat.io.motion.motion_vectors``), so the same motion
    i -> i+1 is mv field i+1. Positions past either end repeat the edge field, as ``stack_flow`` does.
    """
    starts = np.asarray(indices, np.int64)[:, None] + np.arange(length)[None]
    if kind == "mv":
        return np.clip(starts + 1, 0, max(total - 1, 0))
    return np.clip(starts, 0, max(total - 2, 0))


def _resize_fields(q: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """float px fields (N, h, w, 2) -> (N, H, W, 2), vectors scaled with the image."""
    h, w = q.shape[1:3]
    if (h, w) == tuple(hw):
        return q
    H, W = hw
    out = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR) for f in q])
    return out * np.array([W / w, H / h], np.float32)


def _from_cache(ctx: ClipContext, kind: str, method: str):
    """The whole video's quantized uint8 fields (N, h, w, 2) from the cache, or None.

    Entries are keyed by method and decode size: a cache built at another ``--size`` (or a file new
    to it) gets this size's entry built now, with one notice per cache, so the next epoch hits."""
    cfg, path = ctx.cfg, ctx.item.path
    cache = cfg.motion_cache
    if not Path(cache).is_dir():
        _warn_once((cache, cache), "motion cache %s does not exist; computing %s on the fly", cache, kind)
        return None
    for size in (cfg.decode_short_side, None):  # written at the decode size, else at native size
        arr = load_cached(path, cache, method, size=size)
        if arr is not None:
            return arr
    _warn_once((cache, cfg.decode_short_side, method),
               "motion cache %s has no %s entries at short side %d for some files; building them", cache, method,
               cfg.decode_short_side)
    build_cache([path], cache, method, size=cfg.decode_short_side, workers=1, progress=False)
    return load_cached(path, cache, method, size=cfg.decode_short_side)


def _compute_flow_fields(ctx: ClipContext, ids: np.ndarray, method: str) -> dict[int, np.ndarray]:
    """Flow fields ``{j: (H, W, 2) px}`` for the field ids needed, from decoded frames j and j+1."""
    cfg = ctx.cfg
    need = sorted({int(j) for j in ids.ravel()})
    frames_needed = sorted({j for j in need} | {j + 1 for j in need})
    have = dict(ctx.decoded or {})
    if ctx.frames is not None:
        have.update({int(i): f for i, f in zip(ctx.indices, ctx.frames)})
    missing = [i for i in frames_needed if i not in have]
    if missing:
        with VideoReader(ctx.item.path, threads=1) as reader:
            for i, f in zip(missing, reader.frames(missing, short_side=cfg.decode_short_side)):
                have[i] = f
    out = {}
    for j in need:
        out[j] = dequantize(compute_flow(np.stack([have[j], have[j + 1]]), method)[0])
    return out


def motion_stack(ctx: ClipContext, kind: str) -> torch.Tensor:
    """float (2L, T, S, S) in [-1, 1]: the clip's stacked ``kind`` ("flow" | "mv") fields, cropped."""
    cfg = ctx.cfg
    L = int(cfg.flow_length)
    method = "mv" if kind == "mv" else canonical(cfg.flow_method)
    kind = "mv" if method == "mv" else "flow"   # flow_method=mv fills the flow stream with MVs
    total = int(ctx.info.num_frames)
    if ctx.frames is not None:
        hw = tuple(ctx.frames.shape[1:3])
    else:  # same rounding as VideoReader._to_rgb
        s = cfg.decode_short_side / min(ctx.info.width, ctx.info.height)
        hw = (max(2, round(ctx.info.height * s / 2) * 2), max(2, round(ctx.info.width * s / 2) * 2))

    whole = _from_cache(ctx, kind, method) if cfg.motion_cache else None
    if whole is not None:
        ids = field_ids(ctx.indices, L, total, kind)
        ids = np.clip(ids, 0, len(whole) - 1)  # a header's frame count may be off by a few
        fields = _resize_fields(dequantize(whole[ids.ravel()]), hw)
    elif total < 2:  # a single frame has no motion
        ids = np.zeros((len(ctx.indices), L), np.int64)
        fields = np.zeros((ids.size, *hw, 2), np.float32)
    else:
        ids = field_ids(ctx.indices, L, total, kind)
        if kind == "mv":
            uniq, inv = np.unique(ids.ravel(), return_inverse=True)
            q = read_motion_vectors(ctx.item.path, uniq.tolist(), size=cfg.decode_short_side)
            fields = _resize_fields(dequantize(q), hw)[inv]
        else:
            got = _compute_flow_fields(ctx, ids, method)
            fields = np.stack([got[int(j)] for j in ids.ravel()])

    T_, (h, w) = len(ctx.indices), fields.shape[1:3]
    x = torch.from_numpy(np.ascontiguousarray(fields)).view(T_, L, h, w, 2)
    x = x.permute(1, 4, 0, 2, 3).reshape(2 * L, T_, h, w)          # (L*2, T, h, w): x0 y0 x1 y1 ...
    box = ctx.crop_box if ctx.crop_box is not None else T.crop_box(h, w)
    x = T.crop_resize(x, box, cfg.size) * (cfg.size / box[2])      # px at the model's resolution
    if ctx.flip:  # mirror the field and its x components, as the RGB frames are mirrored
        x = T.hflip(x)
        x[0::2] = -x[0::2]
    return (x / BOUND).clamp_(-1.0, 1.0).float()


def flow_frames(indices: np.ndarray, cfg, info) -> np.ndarray:
    """The frames a flow view needs decoded: its own, and (computing flow) the pairs its fields come from."""
    total = int(info.num_frames)
    if cfg.motion_cache or total < 2 or canonical(cfg.flow_method) == "mv":
        return np.asarray(indices, np.int64)
    ids = field_ids(indices, int(cfg.flow_length), total, "flow").ravel()
    return np.union1d(np.asarray(indices, np.int64), np.union1d(ids, ids + 1))


@register_modality("flow", spatial=True, frames=flow_frames)
def load_flow(ctx: ClipContext) -> dict:
    """Optical flow (``cfg.flow_method``) as a (2L, T, H, W) temporal-stream input."""
    return {"flow": motion_stack(ctx, "flow"), "flow_mask": 1.0}


@register_modality("mv", spatial=True)
def load_mv(ctx: ClipContext) -> dict:
    """Codec motion vectors as a (2L, T, H, W) temporal-stream input."""
    return {"mv": motion_stack(ctx, "mv"), "mv_mask": 1.0}
