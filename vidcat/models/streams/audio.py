"""The ``audio`` stream: fixed-length statistics of the clip's log-mel spectrogram.

From ``batch["audio"]`` (B, 1, n_mels, frames) log(mel power + 1e-6), the ``audio`` modality's output:

* timbre: per-band mean and std over time; MFCCs (orthonormal DCT-II of the log-mel, ``n_mfcc``
  coefficients) mean and std, and the std of their deltas (how fast the timbre changes);
* loudness: frame-energy (log total mel power) mean, std, max and 10/50/90th percentiles;
* onsets: the positive spectral flux (mean rise of the log-mel over the bands from one frame to the next)
  mean, std, max, 90th percentile, and the onset rate (flux peaks above ``ONSET_RISE``, per frame);
* spectral shape of the sounding frames: mel centroid (0 = lowest band, 1 = highest) and flatness
  (geometric / arithmetic mean of the mel power: near 1 for noise, near 0 for a tone), mean and std;
* the fraction of silent frames.

**Silence is missing input.** A frame is silent when its total mel power is below ``SILENT_POWER``
(about -65 dBFS white noise or a -69 dBFS sine; digital silence decodes to the log-mel floor exactly). A
clip without an audio track (mask 0) or with fewer than ``MIN_SOUNDING`` of its frames sounding has
``present`` 0 and all-zero features. The time axis is whatever the modality gives: the clip's span
resampled to ``DataConfig.audio_frames`` frames (onset statistics want a few hundred).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from vidcat.errors import VidcatError
from vidcat.models.streams.base import StreamFeatures, present_of

LOG_FLOOR = math.log(1e-6)   # the log-mel of digital silence (vidcat.io.audio.log_mel's offset)
SILENT_POWER = 1e-4          # total mel power of a silent frame, above the floor's 1e-6 per band
MIN_SOUNDING = 0.01          # a clip with fewer sounding frames than this fraction is silent
ONSET_RISE = 1.0             # flux (nats, mean over bands) an onset peak must reach
ENERGY_STATS = ("mean", "std", "max", "p10", "p50", "p90")
ONSET_STATS = ("mean", "std", "max", "p90", "rate")


@lru_cache(maxsize=8)
def _dct_basis(n_mels: int, n_mfcc: int) -> torch.Tensor:
    """(n_mels, n_mfcc) orthonormal DCT-II basis (librosa's / scipy's ``norm="ortho"`` MFCC)."""
    k = torch.arange(n_mfcc, dtype=torch.float64)[None]
    n = torch.arange(n_mels, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[:, 0] /= math.sqrt(2.0)
    return basis.float()


def masked_mean_std(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over the last axis of ``x`` weighted by ``w`` (0/1), zeros where ``w`` is all 0."""
    n = w.sum(-1).clamp_min(1.0)
    m = (x * w).sum(-1) / n
    var = ((x - m[..., None]) ** 2 * w).sum(-1) / n
    return m, var.clamp_min(0).sqrt()


def onset_envelope(lm: torch.Tensor) -> torch.Tensor:
    """(B, M, T) log-mel -> (B, T) positive spectral flux: the mean over bands of the rise since the last frame."""
    rise = F.relu(lm[..., 1:] - lm[..., :-1]).mean(1)
    return F.pad(rise, (1, 0))


def onset_rate(flux: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B,) onsets per frame: flux peaks reaching ``ONSET_RISE`` that are the largest within
    ``T // 100`` frames either side (at most one onset per 1 % of the clip: a rise smeared over a few
    frames, or split by the stretching of a short clip's time axis, counts once)."""
    k = max(1, flux.shape[-1] // 100)
    window_max = F.max_pool1d(flux[:, None], 2 * k + 1, stride=1, padding=k)[:, 0]
    left = F.pad(flux, (1, 0), value=-1.0)[..., :-1]
    peaks = (flux >= window_max) & (flux > left) & (flux >= ONSET_RISE)
    return peaks.float().mean(-1)


class AudioFeatures(StreamFeatures):
    """``batch["audio"]`` (B, 1, n_mels, frames) log-mel -> (B, 2 n_mels + 3 n_mfcc + 16) statistics
    (:meth:`layout`); present 0 for clips without a track or silent ones."""

    name = "audio"
    reads = ("audio",)
    version = 1
    data_settings = {"audio_frames": 400}     # onsets need finer time than the 101 frames of the audio models
    data_keys = ("n_mels", "audio_frames", "audio_seconds")

    def __init__(self, n_mels: int = 64, n_mfcc: int = 20):
        super().__init__()
        if not isinstance(n_mels, int) or n_mels < 8:
            raise VidcatError(f"audio stream n_mels must be an integer >= 8, not {n_mels!r}")
        if not isinstance(n_mfcc, int) or not 1 <= n_mfcc <= n_mels:
            raise VidcatError(f"audio stream n_mfcc must be an integer from 1 to n_mels ({n_mels}), not {n_mfcc!r}")
        self.n_mels, self.n_mfcc = n_mels, n_mfcc
        self.feat_dim = self.layout()["silent_fraction"].stop

    def layout(self) -> dict[str, slice]:
        """Where each statistic lies in the feature vector."""
        sizes = {"band_mean": self.n_mels, "band_std": self.n_mels, "mfcc_mean": self.n_mfcc,
                 "mfcc_std": self.n_mfcc, "mfcc_delta_std": self.n_mfcc, "energy": len(ENERGY_STATS),
                 "onset": len(ONSET_STATS), "centroid": 2, "flatness": 2, "silent_fraction": 1}
        out, at = {}, 0
        for k, n in sizes.items():
            out[k], at = slice(at, at + n), at + n
        return out

    def spec(self) -> dict:
        return {**super().spec(), "n_mels": self.n_mels, "n_mfcc": self.n_mfcc}

    def log_mel(self, batch: dict) -> torch.Tensor:
        """(B, n_mels, T) float log-mel, clamped at the floor, NaN/inf-free."""
        x = batch["audio"]
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise VidcatError(f"audio stream wants log-mel shaped (B, 1, {self.n_mels}, frames), got "
                              f"{tuple(x.shape)} (DataConfig.n_mels must match the stream's n_mels)")
        x = torch.nan_to_num(x[:, 0].float(), nan=LOG_FLOOR, posinf=LOG_FLOOR, neginf=LOG_FLOOR)
        return x.clamp(LOG_FLOOR, 30.0)

    def statistics(self, lm: torch.Tensor, sounding: torch.Tensor) -> torch.Tensor:
        """(B, M, T) log-mel and (B, T) 0/1 sounding frames -> (B, feat_dim)."""
        power = (lm.exp() - math.exp(LOG_FLOOR)).clamp_min(0.0)
        energy = torch.log(power.sum(1) + math.exp(LOG_FLOOR))                 # (B, T)
        mfcc = torch.einsum("bmt,mk->bkt", lm, _dct_basis(self.n_mels, self.n_mfcc).to(lm.device))
        delta = mfcc[..., 1:] - mfcc[..., :-1] if lm.shape[-1] > 1 else torch.zeros_like(mfcc)
        flux = onset_envelope(lm)
        bands = torch.linspace(0.0, 1.0, self.n_mels, device=lm.device)[None, :, None]
        p = power + 1e-12
        centroid = (p * bands).sum(1) / p.sum(1)
        flatness = torch.exp(torch.log(p).mean(1)) / p.mean(1)
        std = lambda v: v.std(-1, unbiased=False)  # noqa: E731
        q = torch.quantile(energy, torch.tensor([0.1, 0.5, 0.9], device=lm.device), dim=-1).T
        fq = torch.quantile(flux, torch.tensor([0.9], device=lm.device), dim=-1).T
        parts = [lm.mean(-1), std(lm), mfcc.mean(-1), std(mfcc), std(delta),                  # layout() order
                 torch.stack([energy.mean(-1), std(energy), energy.amax(-1)], 1), q,
                 torch.stack([flux.mean(-1), std(flux), flux.amax(-1)], 1), fq, onset_rate(flux)[:, None],
                 *(torch.stack(masked_mean_std(v, sounding), 1) for v in (centroid, flatness)),
                 (1.0 - sounding.mean(-1))[:, None]]
        return torch.cat(parts, 1)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        lm = self.log_mel(batch)
        b = lm.shape[0]
        power = (lm.exp() - math.exp(LOG_FLOOR)).clamp_min(0.0).sum(1)          # (B, T)
        sounding = (power >= SILENT_POWER).float()
        present = present_of(batch, "audio", b).to(lm.device)
        present = present * (sounding.mean(-1) >= MIN_SOUNDING).float()
        feats = torch.nan_to_num(self.statistics(lm, sounding), 0.0, 0.0, 0.0) * present[:, None]
        return feats.float(), present
