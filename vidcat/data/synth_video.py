"""Frames of the synthetic ``motion`` benchmark: a textured object moving (or rotating) over a textured
background; appearance random and independent of the class. Shared by every synthetic kind."""
from __future__ import annotations

import cv2
import numpy as np

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
ROTATIONS = {"cw": 1, "ccw": -1}


def _texture(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random colour texture: coarse noise upsampled, plus fine grain."""
    coarse = rng.integers(0, 256, (cells, cells, 3)).astype(np.float32)
    tex = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    tex += rng.normal(0, 12, (h, w, 3))
    return np.clip(tex, 0, 255)


def _object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured patch and its mask (ellipse, rectangle or triangle) with random colours."""
    s = int(rng.integers(size // 5, size // 3 + 1))
    base = rng.integers(0, 256, 3).astype(np.float32)
    other = rng.integers(0, 256, 3).astype(np.float32)
    yy, xx = np.mgrid[0:s, 0:s]
    period = rng.integers(2, 6)
    pattern = ((xx // period + yy // period) % 2)[..., None] if rng.random() < 0.5 else \
        (np.sin((xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) * 1.5) > 0)[..., None]
    patch = np.where(pattern, base, other) + rng.normal(0, 10, (s, s, 3))
    mask = np.zeros((s, s), np.uint8)
    shape = rng.integers(0, 3)
    if shape == 0:
        cv2.ellipse(mask, (s // 2, s // 2), (s // 2 - 1, int(s * rng.uniform(0.3, 0.5))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif shape == 1:
        mask[1:-1, 1:-1] = 1
    else:
        pts = rng.integers(0, s, (3, 2)).astype(np.int32)
        pts[0] = (s // 2, 0)
        cv2.fillPoly(mask, [pts], 1)
        if mask.sum() < s * s // 6:
            mask[1:-1, 1:-1] = 1
    return np.clip(patch, 0, 255), mask.astype(bool)


def _paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, cx: float, cy: float) -> None:
    """Paste ``patch`` centred at (cx, cy), clipped to the frame."""
    s = patch.shape[0]
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    h, w = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sub_m = mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    region = frame[fy0:fy1, fx0:fx1]
    region[sub_m] = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0][sub_m]


def _trajectory(rng, label: str, n: int, size: int, margin: float):
    """Object centres over ``n`` frames for a direction ``label``; the trajectory's midpoint is
    uniform over the same range for every class, so position carries no class information."""
    dx, dy = DIRECTIONS.get(label, (0, 0))
    speed = rng.uniform(1.2, 2.2) * size / 64
    length = speed * (n - 1)
    lo, hi = margin + length / 2, size - margin - length / 2
    mid = rng.uniform(lo, hi, 2) if hi > lo else np.full(2, size / 2)
    if dx == 0 and dy == 0:
        mid = rng.uniform(margin, size - margin, 2)
    t = np.arange(n) - (n - 1) / 2
    return mid[0] + dx * speed * t, mid[1] + dy * speed * t


def render_motion(rng: np.random.Generator, label: str, cfg) -> np.ndarray:
    """uint8 (T, H, W, 3) frames of one ``motion`` video of class ``label``."""
    n, size = cfg.frames, cfg.size
    bg = 0.6 * _texture(rng, size, size, int(rng.integers(3, 8))) + 0.4 * rng.uniform(40, 200)
    patch, mask = _object(rng, size)
    xs, ys = _trajectory(rng, label, n, size, margin=patch.shape[0] / 2)
    spin = ROTATIONS.get(label, 0) * rng.uniform(6, 12)
    others = []
    for _ in range(cfg.distractors):
        p, m = _object(rng, size // 2 + 8)
        start, vel = rng.uniform(0, size, 2), rng.uniform(-1.5, 1.5, 2)
        others.append((p, m, start, vel))
    out = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        frame = bg.copy()
        for p, m, start, vel in others:
            c = (start + vel * t) % size
            _paste(frame, p, m, c[0], c[1])
        if spin:
            s = patch.shape[0]
            rot = cv2.getRotationMatrix2D((s / 2, s / 2), -spin * t, 1.0)
            p = cv2.warpAffine(patch, rot, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            m = cv2.warpAffine(mask.astype(np.uint8), rot, (s, s), flags=cv2.INTER_NEAREST).astype(bool)
        else:
            p, m = patch, mask
        _paste(frame, p, m, xs[t], ys[t])
        if cfg.jitter:
            shift = rng.normal(0, cfg.jitter, 2)
            frame = cv2.warpAffine(frame, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (size, size),
                                   borderMode=cv2.BORDER_REFLECT)
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out
