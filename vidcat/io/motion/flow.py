"""Dense optical flow between consecutive frames, stored the two-stream/TSN way.

Every method returns float32 (H, W, 2) x/y displacements from frame t to t+1 (an object moving
right gives x > 0). ``compute_flow`` clips them to +-20 px and quantizes to uint8 so a whole video
fits in memory and on disk: ``q = round((f + 20) * 255 / 40)``; ``dequantize`` inverts it.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from vidcat.errors import VidcatError

BOUND = 20.0
DIS_PRESETS = {
    "dis_ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "dis_medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
FLOW_METHODS = (*DIS_PRESETS, "farneback", "tvl1", "raft_small", "raft_large")
ALIASES = {"dis": "dis_fast", "raft": "raft_small"}
RAFT_WEIGHTS_ENV = "VIDCAT_RAFT_WEIGHTS"

PairFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def canonical_method(method: str) -> str:
    """Resolve aliases (``dis`` -> ``dis_fast``, ``raft`` -> ``raft_small``); reject unknown names."""
    m = ALIASES.get(method, method)
    if m not in FLOW_METHODS:
        raise VidcatError(f"unknown flow method {method!r}; choose from {', '.join((*FLOW_METHODS, *ALIASES))}")
    return m


def quantize(flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """float displacements -> uint8, clipped to +-bound (0 px maps to 128)."""
    q = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(q).astype(np.uint8)


def dequantize(q: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """uint8 -> float32 displacements (error at most bound/255 px inside the clip range)."""
    return q.astype(np.float32) * np.float32(2 * bound / 255.0) - np.float32(bound)


def _gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _tvl1_factory():
    for mod in (getattr(cv2, "optflow", None), cv2):
        fn = getattr(mod, "DualTVL1OpticalFlow_create", None) if mod is not None else None
        if fn is not None:
            return fn
    raise VidcatError("method 'tvl1' needs OpenCV's contrib modules (cv2.optflow): "
                      "pip uninstall opencv-python-headless && pip install opencv-contrib-python-headless")


def flow_pair_fn(method: str = "dis_fast", **params) -> PairFn:
    """A function ``(frame_t, frame_t1) -> float32 (H, W, 2)`` for one method; frames RGB or gray.

    Building it once per video reuses the OpenCV/torch objects across pairs.
    """
    method = canonical_method(method)
    if method in DIS_PRESETS:
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[method])
        return lambda a, b: dis.calc(_gray(a), _gray(b), None)
    if method == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if method == "tvl1":
        tvl1 = _tvl1_factory()()
        return lambda a, b: tvl1.calc(_gray(a), _gray(b), None)
    return _raft_pair_fn(method, **params)


# -- RAFT (torchvision) ---------------------------------------------------------------------
def find_raft_weights(method: str, weights=None) -> Path:
    """Local RAFT weights: ``weights`` arg, then $VIDCAT_RAFT_WEIGHTS, then the torch hub cache."""
    from torchvision.models import optical_flow as of
    enum = of.Raft_Small_Weights if method == "raft_small" else of.Raft_Large_Weights
    fname = enum.DEFAULT.url.rsplit("/", 1)[-1]
    cands = [weights, os.environ.get(RAFT_WEIGHTS_ENV)]
    import torch
    cands.append(Path(torch.hub.get_dir()) / "checkpoints" / fname)
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    if weights:
        raise VidcatError(f"RAFT weights file not found: {weights}")
    raise VidcatError(f"{method} needs pretrained weights, which cannot be downloaded here: put "
                      f"{fname} (from {enum.DEFAULT.url}) in {Path(torch.hub.get_dir()) / 'checkpoints'} "
                      f"or pass its path (weights=... / ${RAFT_WEIGHTS_ENV})")


@functools.lru_cache(maxsize=2)
def _load_raft(method: str, path: str, device: str):
    """Build and load a RAFT model once per process (the cache builder calls this per video)."""
    import torch
    from torchvision.models import optical_flow as of

    model = (of.raft_small if method == "raft_small" else of.raft_large)(weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    except Exception as e:  # wrong file, truncated download, other architecture
        raise VidcatError(f"cannot load RAFT weights {path}: {e}") from None
    return model.eval().to(device)


def _raft_pair_fn(method: str, weights=None, num_flow_updates: int = 12, device: str = "cpu") -> PairFn:
    import torch
    import torch.nn.functional as F

    model = _load_raft(method, str(find_raft_weights(method, weights)), str(device))

    def to_t(img):
        img = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().to(device)
        return t / 127.5 - 1.0

    @torch.inference_mode()
    def pair(a, b):
        h, w = a.shape[:2]
        # RAFT needs sizes divisible by 8 and at least 128 px (its correlation pyramid)
        ph, pw = max((-h) % 8, 128 - h), max((-w) % 8, 128 - w)
        ta, tb = (F.pad(to_t(x), (0, pw, 0, ph), mode="replicate") for x in (a, b))
        out = model(ta, tb, num_flow_updates=num_flow_updates)[-1][0, :, :h, :w]
        return out.permute(1, 2, 0).cpu().numpy().astype(np.float32)

    return pair


# -- whole clips ----------------------------------------------------------------------------
def iter_video_frames(path, short_side: int | None = None, threads: int = 0, gray: bool = False) -> Iterator[np.ndarray]:
    """Every decodable frame of ``path`` in display order, uint8 (H, W, 3) RGB or (H, W) gray.

    Streams: memory and time follow the frames actually in the file, never the header's frame
    count (a damaged AVI header can claim half a billion frames): the io layer's ``iter_frames``
    (decode limits, and a ``.warning`` naming damage once the stream is consumed).
    """
    from vidcat.io import video as vio

    return vio.iter_frames(path, short_side=short_side, gray=gray, threads=threads)


def flow_of_stream(frames: Iterable[np.ndarray], method: str = "dis_fast", bound: float = BOUND,
                   **params) -> np.ndarray:
    """Quantized flow (T-1, H, W, 2) of a stream of frames, holding two frames at a time.

    The output grows with the frames that really arrive; nothing is sized in advance.
    """
    fn = flow_pair_fn(method, **params)
    gray = "raft" not in canonical_method(method)
    out, prev, n = [], None, 0
    for f in frames:
        f = np.asarray(f)
        if f.ndim not in (2, 3):
            raise VidcatError(f"flow needs frames shaped (H, W[, 3]), got {f.shape}")
        cur = np.ascontiguousarray(_gray(f) if gray else f)  # OpenCV needs dense rows
        if prev is not None:
            out.append(quantize(fn(prev, cur), bound))
        prev, n = cur, n + 1
    if n < 2:
        raise VidcatError(f"optical flow needs at least 2 frames, got {n}")
    return np.stack(out)


def compute_flow(frames: np.ndarray, method: str = "dis_fast", bound: float = BOUND, **params) -> np.ndarray:
    """uint8 frames (T, H, W, 3) -> quantized flow uint8 (T-1, H, W, 2), field t = motion t -> t+1."""
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or len(frames) < 2:
        raise VidcatError(f"compute_flow needs at least 2 frames shaped (T, H, W[, 3]), got {frames.shape}")
    return flow_of_stream(frames, method, bound, **params)


def stack_flow(flow: np.ndarray, starts: int | Sequence[int], length: int = 10) -> np.ndarray:
    """Temporal-stream input: ``length`` consecutive fields from each start as 2L channels.

    ``flow`` (N, H, W, 2) -> (2L, H, W) for an int start, (len(starts), 2L, H, W) for a list.
    Channels are ``x_t, y_t, x_t+1, y_t+1, ...``; fields past either end repeat the edge field,
    so short videos still give full stacks. The dtype is kept (dequantize afterwards if wanted).
    """
    if length < 1:
        raise ValueError("length must be >= 1")
    flow = np.asarray(flow)
    if flow.ndim != 4 or flow.shape[-1] != 2 or len(flow) == 0:
        raise VidcatError(f"stack_flow needs flow shaped (N, H, W, 2), got {flow.shape}")
    single = np.isscalar(starts)
    s = np.atleast_1d(np.asarray(starts, dtype=np.int64))
    idx = np.clip(s[:, None] + np.arange(length)[None], 0, len(flow) - 1)  # (B, L)
    x = flow[idx]                                   # (B, L, H, W, 2)
    x = x.transpose(0, 1, 4, 2, 3).reshape(len(s), 2 * length, *flow.shape[1:3])
    return x[0] if single else x
