"""The ``pose`` modality: body (and, with ``--pose-hands``, hand) keypoints of the clip's frames.

``{"pose": (T, K, 4) float32 normalised keypoints (zeros where no body), "pose_raw": (T, K, 4) float32
raw landmarks with x and z in frame-height units (x times width / height, so x and y share one scale;
zeros where no body or no hand), "pose_frames": (T,) float32 per-frame body mask, "pose_hand_frames": (T,)
float32 per-frame hand mask (with ``--pose-hands``: hands next to a body, or found by the whole-frame hand
detector in a frame without one), "pose_aspect": width / height of the frame (the frame's centre is at
x = aspect / 2 in ``pose_raw``), "pose_mask": 1.0 | 0.0}``; ``pose_mask`` is 0 when no frame has a body or
a hand.

Which frames: with ``--pose-frames N`` (N > 0) the N frames evenly spread over the whole video, the same
for every view and clip position -- exactly the entries :func:`vidcat.io.pose.pose_keypoints` caches for
``frames=N``, so a filled pose cache is only read; a video shorter than N frames gives its frames followed
by masked zero frames, so T is always N. With 0, the clip's own frames: a video of up to
:data:`WHOLE_VIDEO_FRAMES` frames is processed once, all of its frames, so every later clip of it -- any
epoch, any sampling -- is a cache read. Keypoints come from the original frames (not the decode-time resized
clip). A horizontal flip mirrors x and swaps left and right joints. Needs ``pip install 'vidcat[pose]'``.
"""
from __future__ import annotations

import numpy as np
import torch

from vidcat.data.modalities.base import ClipContext, no_frames, register_modality
from vidcat.errors import VideoError


# Videos up to this many frames get their keypoints computed once for every frame (tracking between
# consecutive frames, so steadier) and cached as one entry; longer ones per sampled clip.
WHOLE_VIDEO_FRAMES = 900


def _clip_keypoints(ctx: ClipContext, hands: bool) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(T, K, 4)`` and masks ``(T, 2)`` (body, hands) of the clip's own frames (through the
    whole-video entry for short videos)."""
    from vidcat.io.pose import pose_record

    indices = [int(i) for i in ctx.indices]
    n = int(getattr(getattr(ctx, "info", None), "num_frames", 0) or 0)
    if 0 < n <= WHOLE_VIDEO_FRAMES:  # one entry for every frame: random training clips all hit it
        rec = pose_record(ctx.item.path, frames=list(range(n)), hands=hands)
        pick = np.clip(indices, 0, len(rec.body) - 1)
        return rec.kp[pick], np.stack([rec.body, rec.hands], 1)[pick]
    rec = pose_record(ctx.item.path, frames=indices, hands=hands)
    return rec.kp, np.stack([rec.body, rec.hands], 1)


def _spread_keypoints(ctx: ClipContext, hands: bool, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints and masks (body, hands) of ``count`` frames evenly spread over the video, padded with masked
    frames to ``count``."""
    from vidcat.io.pose import pose_record

    rec = pose_record(ctx.item.path, frames=count, hands=hands)
    return pad_frames(rec.kp, np.stack([rec.body, rec.hands], 1), count)


def pad_frames(kp: np.ndarray, mask: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` frames, followed by masked zero frames when there are fewer (``mask``: (T,) or
    (T, masks))."""
    pad = count - len(mask)
    if pad > 0:
        kp = np.concatenate([kp, np.zeros((pad,) + kp.shape[1:], np.float32)])
        mask = np.concatenate([mask, np.zeros((pad,) + mask.shape[1:], np.float32)])
    return kp[:count], mask[:count]


def _aspect(ctx: ClipContext) -> float:
    """Width / height of the displayed frame (1.0 when unknown)."""
    info = getattr(ctx, "info", None)
    if info is None:
        from vidcat.io.video import probe

        try:
            info = probe(ctx.item.path)
        except VideoError:
            return 1.0
    w, h = int(getattr(info, "width", 0) or 0), int(getattr(info, "height", 0) or 0)
    return w / h if w > 0 and h > 0 else 1.0


def raw_keypoints(kp: np.ndarray, mask: np.ndarray, aspect: float, flip: bool, hands: bool,
                  hand_mask: np.ndarray | None = None) -> np.ndarray:
    """Raw landmarks with x and z times ``aspect`` (frame-height units); zeros where no body (``mask``) or
    no hand (a hand counts in the frames of ``mask`` or ``hand_mask``); ``flip``: mirrored (x -> aspect - x,
    left and right joints swapped)."""
    from vidcat.io.pose import N_BODY, mirror_index

    x = np.asarray(kp, np.float32).copy()
    body = np.asarray(mask) > 0
    valid = np.repeat(body[:, None], x.shape[1], 1)
    if hand_mask is not None:
        valid[:, N_BODY:] |= (np.asarray(hand_mask) > 0)[:, None]
    valid[:, N_BODY:] &= x[:, N_BODY:, 3] > 0
    x[..., 0] *= aspect
    x[..., 2] *= aspect
    if flip:
        x = x[:, mirror_index(hands)]
        valid = valid[:, mirror_index(hands)]
        x[..., 0] = aspect - x[..., 0]  # depth is unchanged by a horizontal flip
    return x * valid[..., None]


@register_modality("pose", frames=no_frames)
def load_pose(ctx: ClipContext) -> dict:
    from vidcat.io.pose import mirror_index, normalise, num_joints

    hands = bool(getattr(ctx.cfg, "pose_hands", False))
    count = int(getattr(ctx.cfg, "pose_frames", 0) or 0)
    T = count or len(ctx.indices)
    try:
        kp, masks = _spread_keypoints(ctx, hands, count) if count else _clip_keypoints(ctx, hands)
    except VideoError:  # frames decoded for the clip but not again here: the stream is missing
        kp, masks = np.zeros((T, num_joints(hands), 4), np.float32), np.zeros((T, 2), np.float32)
    body, hand = masks[:, 0].astype(np.float32), masks[:, 1].astype(np.float32)
    x = normalise(kp, body)
    if ctx.flip:
        x = x[:, mirror_index(hands)]
        x[..., 0] *= -1
    aspect = _aspect(ctx)
    raw = raw_keypoints(kp, body, aspect, bool(ctx.flip), hands, hand)
    return {"pose": torch.from_numpy(np.ascontiguousarray(x)),
            "pose_mask": float(max(body.max(initial=0), hand.max(initial=0)) > 0),
            "pose_raw": torch.from_numpy(np.ascontiguousarray(raw)), "pose_frames": torch.from_numpy(body),
            "pose_hand_frames": torch.from_numpy(hand), "pose_aspect": float(aspect)}
