"""A video's own sound track as a mono waveform and a log-mel spectrogram, one clip window at a time.

Times are presentation times in seconds (``frame.time``), the same clock the video reader uses, so an
audio window ``[start, end)`` lines up with the frames of a clip. We seek to the window and stop past
it, so a short clip of a long file costs a few packets. A file without sound is not an error: it
gives silence with ``present=False`` so a fusion model can mask the audio stream out.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import av
import numpy as np

from vidcat.errors import VideoError
from vidcat.io.video import open_container

SAMPLE_RATE = 16000
# Seek this far before the window: decoders need a little pre-roll and demuxers land near, not on, it.
_PREROLL_S = 0.25


@dataclass
class AudioClip:
    """Mono float32 samples at ``sr``; ``present`` is False when the file has no (decodable) audio."""

    waveform: np.ndarray
    sr: int
    present: bool

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sr


def _pick_stream(container, path, stream: int | None):
    streams = container.streams.audio
    if stream is None:
        return container.streams.best("audio") if streams else None
    if not 0 <= stream < len(streams):
        raise VideoError(path, f"audio stream {stream} requested but the file has {len(streams)}")
    return streams[stream]


def _decode(container, astream, end: float | None, sr: int) -> list[tuple[int, np.ndarray]]:
    """(sample offset from time 0, samples) chunks covering ``[start, end)``; decodes only ``astream``."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
    chunks, pos, stop = [], None, None if end is None else int(round(end * sr))

    def take(frames):
        nonlocal pos
        for f in frames:
            pos = f.pts if f.pts is not None else (pos or 0)
            chunks.append((pos, f.to_ndarray().reshape(-1)))
            pos += f.samples

    for frame in container.decode(astream):
        take(resampler.resample(frame))
        if stop is not None and pos is not None and pos >= stop:
            return chunks
    take(resampler.resample(None))
    return chunks


def _assemble(chunks, first: int, n: int | None) -> np.ndarray:
    """Place chunks on the timeline from sample ``first``; ``n=None`` means up to the last sample."""
    if n is None:
        n = max((o + len(x) - first for o, x in chunks), default=0)
    out = np.zeros(max(n, 0), np.float32)
    for off, x in chunks:
        a, b = max(off - first, 0), min(off - first + len(x), n)
        if b > a:
            out[a:b] = x[a - (off - first): b - (off - first)]
    return out


def load_audio(path, start: float | None = None, end: float | None = None, sr: int = SAMPLE_RATE,
               stream: int | None = None) -> AudioClip:
    """Decode ``[start, end)`` seconds of the file's audio (``stream``: n-th audio track, default best).

    With a window the result has exactly ``round((end - start) * sr)`` samples (zero-padded past the
    ends of the track); without one, the whole track from time 0. ``present`` is False when the file
    has no audio track or the track does not reach into the window. Raises :class:`VideoError` only
    when the file itself cannot be read.
    """
    if start is not None and end is not None and end < start:
        raise ValueError(f"audio window ends before it starts: [{start}, {end})")
    t0 = max(float(start or 0.0), 0.0)
    n = None if end is None else int(round((end - (start or 0.0)) * sr))
    with open_container(path) as container:
        astream = _pick_stream(container, path, stream)
        if astream is None:
            if n is None:
                n = int(round((container.duration or 0) / av.time_base * sr))
            return AudioClip(np.zeros(n, np.float32), sr, False)
        astream.thread_type = "AUTO"
        chunks = []
        try:
            if t0 > _PREROLL_S:
                container.seek(int((t0 - _PREROLL_S) / astream.time_base), stream=astream)
                chunks = _decode(container, astream, end, sr)
                if not chunks or chunks[0][0] > int(t0 * sr):  # seek overshot: decode from the top
                    container.seek(0, stream=astream)
                    chunks = []
            if not chunks:
                chunks = _decode(container, astream, end, sr)
        except av.error.FFmpegError as e:
            if not chunks:
                raise VideoError(path, f"cannot decode audio ({e.strerror or type(e).__name__})") from None
    first = int(round((start or 0.0) * sr))
    wave = _assemble(chunks, first, n)
    present = bool(chunks) and any(o + len(x) > first and (n is None or o < first + n) for o, x in chunks)
    return AudioClip(wave, sr, present)


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


def mel_frames(seconds: float, sr: int = SAMPLE_RATE, hop: int = 160) -> int:
    """Number of log-mel frames for a window of ``seconds`` (centred STFT): fixed per window length."""
    return 1 + int(round(seconds * sr)) // hop


def log_mel(waveform: np.ndarray, sr: int = SAMPLE_RATE, n_mels: int = 64, hop: int = 160,
            win: int = 400) -> np.ndarray:
    """float32 ``(n_mels, 1 + len // hop)`` log(mel power + 1e-6); 25 ms window, 10 ms hop at 16 kHz."""
    import librosa

    n_fft = 1 << (win - 1).bit_length()
    y = np.asarray(waveform, np.float32)
    if len(y) == 0:
        return np.full((n_mels, 1), np.log(1e-6), np.float32)
    spec = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, center=True)) ** 2
    return np.log(_mel_basis(sr, n_fft, n_mels) @ spec + 1e-6).astype(np.float32)


def audio_features(path, start: float | None = None, end: float | None = None, sr: int = SAMPLE_RATE,
                   n_mels: int = 64, hop: int = 160, win: int = 400, stream: int | None = None):
    """``(tensor (1, n_mels, frames), present 0.0/1.0)`` for one clip window: the audio model's input."""
    import torch

    clip = load_audio(path, start, end, sr=sr, stream=stream)
    mel = log_mel(clip.waveform, sr=sr, n_mels=n_mels, hop=hop, win=win)
    return torch.from_numpy(mel).unsqueeze(0), float(clip.present)
