"""The ``pose`` modality: body (and, with ``--pose-hands``, hand) keypoints of the clip's sampled frames.

``{"pose": (T, K, 4) float32 normalised keypoints (zeros where no person), "pose_mask": 1.0 | 0.0,
"pose_frames": (T,) float32 per-frame person mask}``; ``pose_mask`` is 0 when no frame has a person.
Keypoints come from the original frames (not the decode-time resized clip), through the pose cache
(:mod:`vidcat.io.pose`): a video of up to :data:`WHOLE_VIDEO_FRAMES` frames is processed once, all of
its frames, so every later clip of it -- any epoch, any sampling -- is a cache read. A horizontal flip mirrors x and
swaps left and right joints. Needs ``pip install 'vidcat[pose]'``.
"""
from __future__ import annotations

import numpy as np
import torch

from vidcat.data.modalities.base import ClipContext, no_frames, register_modality
from vidcat.errors import VideoError


# Videos up to this many frames get their keypoints computed once for every frame (tracking between
# consecutive frames, so steadier) and cached as one entry; longer ones per sampled clip.
WHOLE_VIDEO_FRAMES = 900


@register_modality("pose", frames=no_frames)
def load_pose(ctx: ClipContext) -> dict:
    from vidcat.io.pose import mirror_index, normalise, num_joints, pose_keypoints

    hands = bool(getattr(ctx.cfg, "pose_hands", False))
    indices = [int(i) for i in ctx.indices]
    n = int(getattr(getattr(ctx, "info", None), "num_frames", 0) or 0)
    try:
        if 0 < n <= WHOLE_VIDEO_FRAMES:  # one entry for every frame: random training clips all hit it
            kp, mask = pose_keypoints(ctx.item.path, frames=list(range(n)), hands=hands)
            pick = np.clip(indices, 0, len(mask) - 1)
            kp, mask = kp[pick], mask[pick]
        else:
            kp, mask = pose_keypoints(ctx.item.path, frames=indices, hands=hands)
    except VideoError:  # frames decoded for the clip but not again here: the stream is missing
        kp, mask = np.zeros((len(indices), num_joints(hands), 4), np.float32), np.zeros(len(indices), np.float32)
    x = normalise(kp, mask)
    if ctx.flip:
        x = x[:, mirror_index(hands)]
        x[..., 0] *= -1
    return {"pose": torch.from_numpy(np.ascontiguousarray(x)), "pose_mask": float(mask.max(initial=0) > 0),
            "pose_frames": torch.from_numpy(mask.astype(np.float32))}
