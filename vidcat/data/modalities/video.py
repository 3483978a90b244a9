"""The ``video`` modality: the clip's decoded RGB frames, cropped, flipped and normalised."""
from __future__ import annotations

from vidcat.data import transforms as T
from vidcat.data.modalities.base import ClipContext, register_modality


@register_modality("video", spatial=True)
def load_video(ctx: ClipContext) -> dict:
    """float (3, T, size, size) normalised with the model's mean/std."""
    cfg = ctx.cfg
    x = T.crop_resize(T.to_video(ctx.frames), ctx.crop_box, cfg.size)
    if ctx.flip:
        x = T.hflip(x)
    return {"video": T.model_input(x, cfg.mean, cfg.std).contiguous()}
