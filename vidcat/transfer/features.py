"""Per-frame features of a frozen backbone for each clip view, computed once and cached on disk.

Cache layout: ``<root>/<key[:2]>/<key>.npy`` holding float32 ``(T, D)`` for one (file, view). The key
is a sha256 over

* the file's **content fingerprint**: its size plus sha256 of its first and last MiB (whole file when
  ≤ 2 MiB). Path and mtime are left out on purpose so copies and moved/re-touched files share entries;
* the backbone (name, weights sha256, normalisation);
* the sampling (frames, size, crop scale, TSN sampler, :data:`FEATURE_VERSION`) and the view index.

View 0 is the deterministic test view (TSN centre frame of each of T segments, centre square crop).
Views 1.. are training augmentations: random TSN positions (temporal jitter) and a random square crop,
drawn from an rng seeded by (content fingerprint, view), so a view's pixels are a pure function of the key.
Every entry is written to a temp file then ``os.replace``-d, so a killed run leaves no half entry and the
next run skips what is already there (resumable); one cache folder serves every run.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidcat.data import transforms as T
from vidcat.data.sampling import tsn_indices
from vidcat.errors import VideoError
from vidcat.io.digest import file_digest
from vidcat.io.video import VideoReader
from vidcat.transfer.backbone import BackboneInfo

FEATURE_VERSION = 1
DEFAULT_CACHE = Path(os.environ.get("VIDCAT_CACHE", Path.home() / ".cache" / "vidcat")) / "features"
_MIB = 1 << 20


@dataclass(frozen=True)
class Sampling:
    """How a clip becomes T frames: TSN segments, square crops resized to ``size``."""

    frames: int = 8
    size: int = 160
    crop_scale: tuple = (0.7, 1.0)     # random-crop side as a fraction of the short side (views ≥ 1)
    crop: str = "square"               # "square": centre square; "full": whole frame, short side = size
    autocontrast: bool = False         # stretch each view's 1st..99th intensity percentile to 0..255

    def as_dict(self) -> dict:
        d = {**asdict(self), "crop_scale": list(self.crop_scale), "sampler": "tsn", "version": FEATURE_VERSION}
        if self.crop == "square":         # keys of entries made before these options stay valid
            del d["crop"]
        if not self.autocontrast:
            del d["autocontrast"]
        return d


def content_fingerprint(path) -> str:
    """``size:sha256(first MiB + last MiB)`` (the whole file up to 2 MiB): copies share entries."""
    return f"{os.stat(path).st_size}:{file_digest(path, span=_MIB)}"


def cache_key(fingerprint: str, backbone: BackboneInfo, sampling: Sampling, view: int) -> str:
    spec = {"file": fingerprint, "backbone": [backbone.name, backbone.weights_sha256, list(backbone.mean),
                                              list(backbone.std), backbone.pooling],
            "sampling": sampling.as_dict(), "view": int(view)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


class FeatureCache:
    """One folder of ``.npy`` entries, written atomically."""

    def __init__(self, root=None):
        self.root = Path(root) if root else DEFAULT_CACHE

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return np.load(p)
        except (OSError, ValueError):   # unreadable entry (e.g. disk trouble): recompute it
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{key[:8]}", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(value, dtype=np.float32))
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def view_frames(reader: VideoReader, fingerprint: str, sampling: Sampling, view: int) -> torch.Tensor:
    """0..255 float (T, 3, size, size) frames of one view (T, 3, size, ~size·aspect with crop="full")."""
    x = _view_frames(reader, fingerprint, sampling, view)
    if sampling.autocontrast:
        lo, hi = torch.quantile(x.mean(1).flatten()[::7], torch.tensor([0.01, 0.99]))
        x = ((x - lo) * (255.0 / (hi - lo).clamp_min(8.0))).clamp(0, 255)
    return x


def _view_frames(reader: VideoReader, fingerprint: str, sampling: Sampling, view: int) -> torch.Tensor:
    n = reader.info.num_frames
    if view == 0:
        idx = tsn_indices(n, sampling.frames, train=False)
        rng = None
    else:
        seed = int(hashlib.sha256(f"{fingerprint}|{view}".encode()).hexdigest()[:15], 16)
        rng = np.random.default_rng(seed)
        idx = tsn_indices(n, sampling.frames, train=True, rng=rng)
    short = max(sampling.size, int(round(sampling.size * 1.15))) if view else sampling.size
    x = T.to_tensor(reader.frames(idx, short_side=short))            # (C, T, H, W) uint8
    if sampling.crop == "full":                                       # keep the aspect ratio
        h, w = x.shape[-2:]
        if view:
            s = rng.uniform(*sampling.crop_scale)
            ch, cw = max(int(h * s), 1), max(int(w * s), 1)
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            x = x[..., top:top + ch, left:left + cw]
        out = (sampling.size, max(2, round(sampling.size * w / h)))
        x = torch.nn.functional.interpolate(x.float(), size=out, mode="bilinear", align_corners=False, antialias=True)
        return x.permute(1, 0, 2, 3)
    box = T.center_box(*x.shape[-2:]) if view == 0 else T.random_box(*x.shape[-2:], rng, tuple(sampling.crop_scale))
    return T.crop_resize(x, box, sampling.size).float().permute(1, 0, 2, 3)


def normalise(frames: torch.Tensor, backbone: BackboneInfo) -> torch.Tensor:
    """(…, 3, H, W) 0..255 → (x/255 - mean) / std with the backbone's own statistics."""
    mean = torch.tensor(backbone.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(backbone.std, dtype=torch.float32).view(3, 1, 1)
    return (frames / 255.0 - mean) / std


@dataclass
class FeatureSet:
    """``feats`` (N, V, T, D) float32 for the readable clips, their labels/paths, and what was skipped."""

    feats: torch.Tensor
    labels: torch.Tensor
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    computed: int = 0                  # entries computed now (the rest came from the cache)
    seconds: float = 0.0

    def view(self, v: int) -> torch.Tensor:
        return self.feats[:, v]


@torch.no_grad()
def extract_features(paths, backbone: torch.nn.Module, info: BackboneInfo, sampling: Sampling,
                     views: int = 1, cache: FeatureCache | None = None, labels=None, strict: bool = False,
                     log=None, _fail_after: int | None = None) -> FeatureSet:
    """Features of ``views`` views (0 = centre, 1.. = augmented) of every file, from the cache when there.

    An unreadable file prints one line naming it and the reason and is skipped (``strict`` raises).
    ``_fail_after`` (tests only) raises after that many newly computed files, simulating a killed run.
    """
    cache = cache or FeatureCache()
    log = log or (lambda s: print(s, file=sys.stderr))
    out, keep, skipped, computed, t0 = [], [], [], 0, time.perf_counter()
    for i, path in enumerate(map(str, paths)):
        try:
            fp = content_fingerprint(path)
        except OSError as e:
            err = VideoError(path, f"cannot read file ({e.strerror or type(e).__name__})")
        else:
            keys = [cache_key(fp, info, sampling, v) for v in range(views)]
            got = [cache.get(k) for k in keys]
            missing = [v for v, g in enumerate(got) if g is None]
            err = None
            if missing:
                if _fail_after is not None and computed >= _fail_after:
                    raise RuntimeError(f"simulated kill after {computed} files")
                try:
                    with VideoReader(path, threads=1) as reader:
                        frames = torch.cat([view_frames(reader, fp, sampling, v) for v in missing])
                except VideoError as e:
                    err = e
                else:
                    f = backbone(normalise(frames, info)).float().reshape(len(missing), sampling.frames, -1).numpy()
                    for j, v in enumerate(missing):
                        cache.put(keys[v], f[j])
                        got[v] = f[j]
                    computed += 1
        if err is not None:
            if strict:
                raise err
            log(f"vidcat: skipped {path}: {err.reason}")
            skipped.append((path, err.reason))
            continue
        out.append(np.stack(got))
        keep.append(i)
    feats = torch.from_numpy(np.stack(out)) if out else torch.zeros(0, views, sampling.frames, info.feat_dim)
    lab = torch.as_tensor([labels[i] for i in keep], dtype=torch.long) if labels is not None else torch.zeros(0)
    return FeatureSet(feats, lab, [str(paths[i]) for i in keep], skipped, computed, time.perf_counter() - t0)
