"""The ``motion`` stream: a histogram-of-flow descriptor of the clip's motion fields on a spatial grid, pooled
over time, plus the frame-difference energy of the sampled frames.

Per motion field (codec motion vectors ``mv`` or optical ``flow``, (2L, T, H, W) from the data modality),
on the whole frame and on each cell of a ``grid`` x ``grid`` raster:

* **HOF** (Laptev et al. 2008): orientations of the flow, minus the field's median flow (the camera's
  motion), in 8 bins weighted by magnitude, plus a no-motion bin for the still pixels;
* **MBH-x / MBH-y** (Dalal et al. 2006; Wang et al. 2013): orientations of the spatial gradients of the
  flow's x and y components in 8 bins each. A constant flow has no gradient, so a camera pan leaves
  them empty while an object's moving edges fill them;
* how much moves: log magnitudes of the compensated flow and of both gradients per cell, and the median
  flow itself (the camera's motion, signed).

Histograms are L1-normalised per cell then square-rooted (the Hellinger map, which suits a linear
classifier); the MBH normalisation has a floor so the noise of a still cell stays near zero. The L fields
of a sampled frame are averaged into one descriptor per segment, and the T segments are pooled into
mean, std and signed slope over time (the slope tells which way time runs). :class:`MotionEnergy`
(frame-difference energy and normal flow on a 4x4 grid, between consecutive sampled frames; mean and
std) completes the vector when ``energy`` is on; it reads the ``video`` frames.

Units: motion in percent of the frame side per frame, computed on a fixed ``WORK`` x ``WORK`` raster,
so the features do not depend on the input resolution.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.errors import VidcatError
from vidcat.models.streams.base import pool_frames
from vidcat.models.streams.base import StreamFeatures, present_of

BOUND = 20.0          # the motion modalities' quantization bound: values are px / BOUND
WORK = 48             # side of the raster the descriptor is computed on
HOF_BINS = 8          # orientation bins (a 9th bin counts still pixels)
MBH_BINS = 8
STILL = 0.4           # % of the frame side per frame: slower pixels vote "no motion" (0.64 px at 160 px)
GRAD_FLOOR = 0.05     # MBH normalisation floor (% per frame, per raster pixel): a still cell stays ~0
SOURCES = ("mv", "flow")
ENERGY_GRID = 4       # MotionEnergy's raster: ENERGY_GRID x ENERGY_GRID cells
MOTION_DIM = 3 * ENERGY_GRID * ENERGY_GRID + 2


def cell_means(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1 + grid * grid): the mean over the whole frame, then over each cell."""
    whole = x.mean((2, 3))[..., None]
    return torch.cat([whole, F.adaptive_avg_pool2d(x, grid).flatten(2)], 2)


def orientation_votes(dx: torch.Tensor, dy: torch.Tensor, weight: torch.Tensor, bins: int) -> torch.Tensor:
    """(N, H, W) vectors -> (N, bins, H, W): ``weight`` split linearly between the two orientation bins
    nearest the vector's angle (bin 0 = +x, i.e. right; bins turn towards +y, i.e. down)."""
    pos = torch.remainder(torch.atan2(dy, dx), 2 * math.pi) * (bins / (2 * math.pi))
    lo = pos.floor()
    frac = pos - lo
    lo = lo.long().remainder(bins)
    votes = weight.new_zeros(weight.shape[0], bins, *weight.shape[1:])
    votes.scatter_add_(1, lo[:, None], (weight * (1 - frac))[:, None])
    votes.scatter_add_(1, ((lo + 1) % bins)[:, None], (weight * frac)[:, None])
    return votes


def spatial_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) -> central differences (d/dx, d/dy), replicated at the borders."""
    p = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    return (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) * 0.5, (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) * 0.5


def field_descriptor(u: torch.Tensor, v: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, H, W) flow components (% of the side per frame) -> (N, field_dim(grid)) HOF ⊕ MBH ⊕ magnitudes."""
    n = u.shape[0]
    cam_u, cam_v = u.flatten(1).median(1).values, v.flatten(1).median(1).values
    cu, cv = u - cam_u[:, None, None], v - cam_v[:, None, None]
    mag = torch.sqrt(cu * cu + cv * cv)
    moving = (mag >= STILL).to(u.dtype)
    hof = torch.cat([orientation_votes(cu, cv, mag * moving, HOF_BINS), (STILL * (1 - moving))[:, None]], 1)
    hof = cell_means(hof, grid)
    hof = torch.sqrt(hof / hof.sum(1, keepdim=True).clamp_min(1e-12))
    parts, energy = [hof.flatten(1)], [cell_means(mag[:, None], grid)[:, 0]]
    for comp in (u, v):                     # MBH-x, MBH-y: the camera's constant flow has no gradient
        gx, gy = spatial_gradient(comp)
        gmag = torch.sqrt(gx * gx + gy * gy)
        h = cell_means(orientation_votes(gx, gy, gmag, MBH_BINS), grid)
        parts.append(torch.sqrt(h / (h.sum(1, keepdim=True) + GRAD_FLOOR)).flatten(1))
        energy.append(cell_means(gmag[:, None], grid)[:, 0] / GRAD_FLOOR)
    energy[0] = energy[0] / STILL
    parts.append(torch.log1p(torch.cat(energy, 1)))
    parts.append(torch.asinh(torch.stack([cam_u, cam_v], 1) / STILL))
    return torch.cat(parts, 1).reshape(n, -1)


def field_layout(grid: int) -> dict[str, slice]:
    """Where each part of ``field_descriptor`` lies: hof (bins x cells, bin-major; cell 0 = whole frame,
    bin 8 = still), mbh_x and mbh_y (bins x cells), energy (flow, |grad u|, |grad v| x cells), camera (u, v)."""
    cells = 1 + grid * grid
    sizes = {"hof": (HOF_BINS + 1) * cells, "mbh_x": MBH_BINS * cells, "mbh_y": MBH_BINS * cells,
             "energy": 3 * cells, "camera": 2}
    out, at = {}, 0
    for k, n in sizes.items():
        out[k], at = slice(at, at + n), at + n
    return out


def field_dim(grid: int) -> int:
    return field_layout(grid)["camera"].stop


class MotionEnergy(nn.Module):
    """(B, 3, T, H, W) normalised frames -> (B, T, MOTION_DIM): for each pair of consecutive sampled
    frames, on an ENERGY_GRID x ENERGY_GRID grid, the mean |Δ brightness| and the normal-flow estimate
    (u, v) = -Σ Δ·∇I / Σ |∇I|² of the cell, plus the frame's mean and std of |Δ|; row 0 (no previous
    frame) is zero. No parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        g = x.mean(1)                                                       # (B, T, H, W)
        side = max(ENERGY_GRID * 8, min(64, h, w) // ENERGY_GRID * ENERGY_GRID)
        g = F.adaptive_avg_pool2d(g, (side, side))
        if t < 2:
            return x.new_zeros(b, t, MOTION_DIM)
        d = g[:, 1:] - g[:, :-1]
        mid = 0.5 * (g[:, 1:] + g[:, :-1])
        ix = F.pad(mid[..., :, 2:] - mid[..., :, :-2], (1, 1)) * 0.5
        iy = F.pad(mid[..., 2:, :] - mid[..., :-2, :], (0, 0, 1, 1)) * 0.5

        def cells(v):                                                       # (B, T-1, ENERGY_GRID²)
            return F.adaptive_avg_pool2d(v, (ENERGY_GRID, ENERGY_GRID)).flatten(2)

        eps = 1e-3
        u = -cells(d * ix) / (cells(ix * ix) + eps)
        v = -cells(d * iy) / (cells(iy * iy) + eps)
        ad = d.abs()
        rows = torch.cat([cells(ad), u.clamp(-4, 4), v.clamp(-4, 4), ad.mean((2, 3))[..., None],
                          ad.flatten(2).std(2)[..., None]], 2)
        return torch.cat([rows.new_zeros(b, 1, MOTION_DIM), rows], 1)


def mean_std(x: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, 2D): mean ⊕ (population) std over time."""
    return torch.cat([x.mean(1), x.std(1, unbiased=False)], 1)


class MotionFeatures(StreamFeatures):
    """``batch[source]`` (B, 2L, T, H, W) motion fields (⊕ ``batch["video"]`` frames when ``energy``) ->
    (B, 3 * field_dim(grid) [+ 2 * MOTION_DIM]) features; present = the source's mask."""

    name = "motion"
    version = 1
    data_settings = {"flow_length": 3, "flow_method": "dis_fast"}    # 3 fields per segment average out noise
    data_keys = ("flow_length", "flow_method")

    def __init__(self, source: str = "mv", grid: int = 3, energy: bool = True):
        super().__init__()
        if source not in SOURCES:
            raise VidcatError(f"motion stream source must be one of {', '.join(SOURCES)}, not {source!r}")
        if not isinstance(grid, int) or not 1 <= grid <= 8:
            raise VidcatError(f"motion stream grid must be an integer from 1 to 8, not {grid!r}")
        self.source, self.grid, self.energy = source, grid, bool(energy)
        self.reads = (source, "video") if self.energy else (source,)
        self.feat_dim = 3 * field_dim(grid) + (2 * MOTION_DIM if self.energy else 0)
        self.motion_energy = MotionEnergy()

    def spec(self) -> dict:
        return {**super().spec(), "source": self.source, "grid": self.grid, "energy": self.energy}

    def segment_descriptors(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, 2L, T, H, W) in [-1, 1] -> (B, T, field_dim): each segment's L fields described and averaged."""
        b, c, t, h, w = fields.shape
        if c % 2:
            raise VidcatError(f"motion stream wants 2L channels (x, y per field), got {c}")
        x = fields.float().reshape(b, c // 2, 2, t, h, w).permute(0, 3, 1, 2, 4, 5).reshape(-1, 2, h, w)
        x = torch.nan_to_num(x, 0.0, 0.0, 0.0) * (BOUND * 100.0 / w)      # % of the frame side per frame
        x = F.interpolate(x, size=(WORK, WORK), mode="area") if min(h, w) >= WORK else \
            F.interpolate(x, size=(WORK, WORK), mode="bilinear", align_corners=False)
        d = field_descriptor(x[:, 0], x[:, 1], self.grid)
        return d.reshape(b, t, c // 2, -1).mean(2)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        fields = batch[self.source]
        b = int(fields.shape[0])
        present = present_of(batch, self.source, b).to(fields.device)
        parts = [pool_frames(self.segment_descriptors(fields), "trend")]
        if self.energy:
            video = batch["video"].float()
            rows = self.motion_energy(video)[:, 1:]
            parts.append(mean_std(rows) if rows.shape[1] else video.new_zeros(b, 2 * MOTION_DIM))
        feats = torch.nan_to_num(torch.cat(parts, 1), 0.0, 0.0, 0.0) * present[:, None]
        return feats.float(), present
