"""The ``audio`` modality: a video's own sound track, cut to the clip.

* ``audio`` -> ``{"audio": (1, n_mels, frames) float32 log-mel, "audio_mask": 1.0 | 0.0}``. The window
  is the clip's own time span ``[ctx.start, ctx.end)``, or ``cfg.audio_seconds`` centred on the clip.
  Batches need one shape, so the time axis has a fixed length: ``cfg.audio_frames`` when set, else
  ``mel_frames(cfg.audio_seconds)`` when that is set (the window has exactly that many samples), else
  :data:`AUDIO_FRAMES` (a clip span or window of any length is resampled to it: average-pooled when
  longer, stretched when shorter; only the time axis changes, the mel bands, i.e. the pitch, do not).
  A file without an audio track, or with one that cannot be decoded, gives the log-mel of silence and
  mask 0, never an error.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from vidcat.data.modalities.base import ClipContext, no_frames, register_modality
from vidcat.errors import VideoError
from vidcat.io.audio import SAMPLE_RATE, audio_features, log_mel, mel_frames

AUDIO_FRAMES = mel_frames(1.0)  # 101: the audio models' design input (1 s at a 10 ms hop)


def audio_window(ctx: ClipContext) -> tuple[float, float]:
    """``[start, end)`` seconds of audio that goes with the clip."""
    seconds = ctx.cfg.audio_seconds
    if not seconds:
        return ctx.start, max(ctx.end, ctx.start + 1.0 / SAMPLE_RATE)
    centre = (ctx.start + ctx.end) / 2
    start = max(0.0, centre - seconds / 2)
    return start, start + seconds


@lru_cache(maxsize=64)
def _resample_matrix(src: int, dst: int) -> np.ndarray:
    """(src, dst) weights: each output bin averages the input bins it overlaps (area resampling; when
    stretching, each output bin takes the input bin under it)."""
    edges_in = np.arange(src + 1) / src
    edges_out = np.arange(dst + 1) / dst
    lo = np.maximum(edges_in[:-1, None], edges_out[None, :-1])
    hi = np.minimum(edges_in[1:, None], edges_out[None, 1:])
    w = np.clip(hi - lo, 0, None)
    return (w / w.sum(0, keepdims=True)).astype(np.float32)


def fit_frames(mel: torch.Tensor, frames: int) -> torch.Tensor:
    """(1, n_mels, T) -> (1, n_mels, ``frames``) along time only (a tiny matmul, cheap in loader workers)."""
    t = mel.shape[-1]
    if t == frames:
        return mel
    return torch.from_numpy(mel.numpy() @ _resample_matrix(t, frames))


def audio_frame_count(cfg) -> int:
    """Time frames of the log-mel for ``cfg``: ``audio_frames``, else the ``audio_seconds`` window's own
    count, else :data:`AUDIO_FRAMES`."""
    if cfg.audio_frames:
        return int(cfg.audio_frames)
    return mel_frames(cfg.audio_seconds) if cfg.audio_seconds else AUDIO_FRAMES


@register_modality("audio", frames=no_frames)
def load_audio_modality(ctx: ClipContext) -> dict:
    cfg = ctx.cfg
    start, end = audio_window(ctx)
    try:
        mel, present = audio_features(ctx.item.path, start, end, n_mels=cfg.n_mels)
    except VideoError:  # the video decoded, its sound did not: treat the stream as missing
        silence = torch.zeros(int(round((end - start) * SAMPLE_RATE))).numpy()
        mel, present = torch.from_numpy(log_mel(silence, n_mels=cfg.n_mels)).unsqueeze(0), 0.0
    return {"audio": fit_frames(mel, audio_frame_count(cfg)).contiguous(), "audio_mask": float(present)}
