"""Codec motion vectors as a cheap stand-in for optical flow (the "MV-CNN" / CoViAR idea).

H.264 and MPEG-2/4-family decoders already know, for every inter block, where it came from.
FFmpeg exports that (``flags2=+export_mvs``) and PyAV exposes it as ``frame.side_data
["MOTION_VECTORS"]``. We paint each block's displacement over its area, so decoding *is* the motion
step: no RGB conversion and no flow solver, so it runs several times faster than DIS end to end
(``vidcat bench flow``), at block (8 px) resolution and with encoder-chosen, noisier vectors.

Conventions (same as ``vidcat.io.motion.flow``): field t is the motion *into* frame t, in pixels per
frame, positive x = moving right, positive y = moving down, clipped to +-20 and quantized to uint8.
FFmpeg stores ``motion = (src - dst) * motion_scale`` with ``source`` -1 for a past reference and
+1 for a future one, so the forward per-frame motion is ``motion / (scale * source) / distance``
where distance is how many frames away the reference anchor (I/P frame) is in display order.
"""
from __future__ import annotations

import logging

import av
import cv2
import numpy as np

from vidcat.errors import VideoError
from vidcat.io.video import open_container
from vidcat.io.motion.flow import BOUND, compute_flow, iter_video_frames, quantize

log = logging.getLogger("vidcat.io.motion")

# Decoders that can export motion vectors; anything else goes straight to the flow fallback.
MV_CODECS = {"h264", "mpeg1video", "mpeg2video", "mpeg4", "h263", "h263p", "h263i", "flv",
             "msmpeg4v1", "msmpeg4v2", "msmpeg4", "wmv1", "wmv2", "h261"}
# The deblocking filter only changes pixels, never motion vectors: skipping it is ~20 % faster.
MV_DECODER_OPTIONS = {"flags2": "+export_mvs", "skip_loop_filter": "all"}
CELL = 4  # finest raster in px; FFmpeg exports 8x8 and larger blocks, so 8 is used when it fits
_B = 3    # av.video.frame.PictureType.B
# FFmpeg's AVMotionVector, as PyAV's MotionVectors.to_ndarray() describes it (40 bytes). Frames keep
# their raw bytes; one view over all of them avoids slow per-frame structured-array concatenation.
MV_DTYPE = np.dtype([("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"), ("src_y", "i2"),
                     ("dst_x", "i2"), ("dst_y", "i2"), ("flags", "u8"), ("motion_x", "i4"),
                     ("motion_y", "i4"), ("motion_scale", "u2")], align=True)


def _as_struct(raws) -> np.ndarray:
    """Concatenate frames' raw MV bytes (or structured arrays) into one structured array."""
    parts = [np.ascontiguousarray(r).view(np.uint8).ravel() for r in raws if r is not None]
    return (np.concatenate(parts) if parts else np.zeros(0, np.uint8)).view(MV_DTYPE)


def _out_size(w: int, h: int, size) -> tuple[int, int]:
    """(out_w, out_h): ``size`` int = short side (same rounding as ``read_frames``), (H, W), or None."""
    if size is None:
        return w, h
    if isinstance(size, (tuple, list)):
        return int(size[1]), int(size[0])
    scale = size / min(w, h)
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def ref_distances(types) -> tuple[np.ndarray, np.ndarray]:
    """Frames back to the previous anchor (I/P) and forward to the next one, in display order."""
    ar = np.arange(len(types))
    anchors = np.flatnonzero(np.asarray(types) != _B)
    if len(anchors) == 0:
        return np.ones(len(ar)), np.ones(len(ar))
    a = np.searchsorted(anchors, ar, "left")
    prev = np.where(a > 0, anchors[np.maximum(a - 1, 0)], ar - 1)
    b = np.searchsorted(anchors, ar, "right")
    nxt = np.where(b < len(anchors), anchors[np.minimum(b, len(anchors) - 1)], ar + 1)
    return (ar - prev).astype(np.float32), (nxt - ar).astype(np.float32)


def paint(mvs_list, gh: int, gw: int, dist_back=None, dist_fwd=None, cell: int = CELL) -> np.ndarray:
    """Rasterise frames' MVs (raw bytes or ``MV_DTYPE`` arrays, one per frame) onto
    (N, gh, gw, 2) float32 grids of cell-px cells, all frames in one vectorised pass.

    Each block's forward per-frame displacement covers its w x h area at its destination; cells
    predicted from both directions (B-frames) get the mean, cells without a vector (intra) get 0.
    """
    nf, n = len(mvs_list), gh * gw
    counts = np.array([0 if m is None else m.nbytes // MV_DTYPE.itemsize for m in mvs_list], np.int64)
    db = np.ones(nf) if dist_back is None else np.asarray(dist_back, np.float64)
    df = np.ones(nf) if dist_fwd is None else np.asarray(dist_fwd, np.float64)
    out = np.zeros((nf, gh, gw, 2), np.float32)
    if counts.sum() == 0:
        return out
    mv = _as_struct(mvs_list)
    fid = np.repeat(np.arange(nf), counts)
    src = mv["source"].astype(np.float64)
    div = mv["motion_scale"] * src * np.where(src < 0, db[fid], df[fid])
    vx, vy = mv["motion_x"] / div, mv["motion_y"] / div
    w, h = mv["w"].astype(np.int64), mv["h"].astype(np.int64)
    x0, y0 = (mv["dst_x"] - w // 2) // cell, (mv["dst_y"] - h // 2) // cell
    bw, bh = np.maximum(w // cell, 1), np.maximum(h // cell, 1)
    base = fid * n
    ids, wx, wy = [], [], []
    for oy in range(int(bh.max())):      # one pass per cell offset inside a block (<= 4 for H.264)
        for ox in range(int(bw.max())):
            sel = (oy < bh) & (ox < bw)
            gx, gy = x0[sel] + ox, y0[sel] + oy
            ok = (gx >= 0) & (gx < gw) & (gy >= 0) & (gy < gh)
            ids.append((base[sel] + gy * gw + gx)[ok])
            wx.append(vx[sel][ok])
            wy.append(vy[sel][ok])
    ids = np.concatenate(ids)
    cnt = np.maximum(np.bincount(ids, minlength=nf * n), 1)
    for c, v in enumerate((wx, wy)):
        out[..., c] = (np.bincount(ids, np.concatenate(v), nf * n) / cnt).reshape(nf, gh, gw)
    return out


def _cell_size(mvs_list) -> int:
    """8 px when every block is 8-aligned (H.264, MPEG-4 exports), else the finer CELL."""
    m = _as_struct(mvs_list)
    w, h = m["w"].astype(np.int64), m["h"].astype(np.int64)
    ok = not ((w | h | (m["dst_x"] - w // 2) | (m["dst_y"] - h // 2)) & 7).any()
    return 8 if ok else CELL


def _rotate_field(q: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a quantized field upright like ``read_frames`` does, rotating the vectors too."""
    k = (rotation // 90) % 4
    if not k:
        return q
    r = np.rot90(q, k)
    x, y = r[..., 0], r[..., 1]
    nx, ny = {1: (y, 255 - x), 2: (255 - x, 255 - y), 3: (255 - y, x)}[k]
    return np.ascontiguousarray(np.stack([nx, ny], -1))


def _decode_mvs(path, stop: int | None):
    """Decode in display order, keeping each frame's MVs (or None) and picture type."""
    container = open_container(path)
    try:
        if not container.streams.video:
            raise VideoError(path, "no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a damaged header names no codec FFmpeg knows
            raise VideoError(path, "no decodable video stream (unknown codec; damaged header?)")
        stream.codec_context.options = dict(MV_DECODER_OPTIONS)
        stream.thread_type = "SLICE"  # frame threading exports racy B-frame MVs (PyAV 18 / FFmpeg 7)
        codec = stream.codec_context.name
        mvs, types, geom = [], [], None
        if codec not in MV_CODECS:
            return codec, mvs, types, geom
        try:
            for frame in container.decode(stream):
                if geom is None:
                    geom = (frame.width, frame.height, int(frame.rotation or 0) % 360)
                sd = frame.side_data.get("MOTION_VECTORS")
                mvs.append(np.frombuffer(sd, np.uint8).copy() if sd is not None else None)
                types.append(int(frame.pict_type))
                # stop past the last wanted frame at an MV anchor (I-frame fill, B distances)
                if stop is not None and len(mvs) > stop + 1 and mvs[-1] is not None and types[-1] != _B:
                    break
        except av.error.FFmpegError as e:
            if not mvs:
                raise VideoError(path, f"cannot decode video ({e.strerror or type(e).__name__})") from None
        if not mvs:
            raise VideoError(path, "no decodable video frames (truncated or corrupt)")
        return codec, mvs, types, geom
    finally:
        container.close()


def _flow_fallback(path, indices, size, reason: str, method: str = "dis_fast") -> np.ndarray:
    log.warning("%s: %s; using %s optical flow instead of motion vectors", path, reason, method)
    short = size if isinstance(size, int) else None
    frames = np.stack(list(iter_video_frames(path, short_side=short)))  # real frames, not the header's count
    if isinstance(size, (tuple, list)):
        frames = np.stack([cv2.resize(f, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
                           for f in frames])
    if len(frames) < 2:
        frames = np.concatenate([frames, frames])
    flow = compute_flow(frames, method)
    fields = np.concatenate([flow[:1], flow])  # field t = motion into t; frame 0 copies frame 1
    if indices is None:
        return fields
    return fields[np.clip(np.asarray(list(indices), np.int64), 0, len(fields) - 1)]


def expand_grids(grids: np.ndarray, geom: dict) -> np.ndarray:
    """Block grids (N, gh, gw, 2) from ``read_mv_grids`` -> uint8 fields (N, H, W, 2), upright."""
    h, w, cell, oh, ow, rot = (geom[k] for k in ("h", "w", "cell", "out_h", "out_w", "rotation"))
    out = np.empty((len(grids), *((ow, oh) if rot in (90, 270) else (oh, ow)), 2), np.uint8)
    for j, g in enumerate(grids):
        q = cv2.resize(g, (g.shape[1] * cell, g.shape[0] * cell), interpolation=cv2.INTER_NEAREST)[:h, :w]
        if (ow, oh) != (w, h):
            q = cv2.resize(q, (ow, oh), interpolation=cv2.INTER_NEAREST)
        out[j] = _rotate_field(q, rot)
    return out


def read_mv_grids(path, indices=None, size=None, bound: float = BOUND):
    """Quantized MV fields at block resolution -> (uint8 (T, gh, gw, 2), geom) or, when the file
    has no motion vectors, (full-size DIS fallback fields, None). Compact form for the cache."""
    stop = None if indices is None else int(max(indices, default=0))
    codec, mvs, types, geom = _decode_mvs(path, stop)
    if codec not in MV_CODECS:
        return _flow_fallback(path, indices, size, f"codec {codec} exports no motion vectors"), None
    if all(m is None for m in mvs):
        return _flow_fallback(path, indices, size, f"no motion vectors in this {codec} stream (intra-only?)"), None
    return mv_grids(mvs, types, geom, indices, size, bound)


def mv_grids(mvs, types, geom, indices=None, size=None, bound: float = BOUND):
    """The motion step proper, on vectors already decoded: paint, fill I-frames, quantize."""
    have = np.array([m is not None for m in mvs])
    w, h, rotation = geom
    if rotation in (90, 270) and isinstance(size, (tuple, list)):
        size = (size[1], size[0])  # (H, W) is asked upright; we paint before rotating
    ow, oh = _out_size(w, h, size)
    cell = _cell_size(mvs)
    gh, gw = -(-h // cell), -(-w // cell)

    n = len(mvs)
    want = np.clip(np.asarray(range(n) if indices is None else list(indices), np.int64), 0, n - 1)
    uniq = np.unique(want)
    mv_idx = np.flatnonzero(have)
    k = np.searchsorted(mv_idx, uniq)  # I-frames: mean of the nearest MV frames on each side
    nbrs = {int(i): [i] if have[i] else [int(mv_idx[x]) for x in (j - 1, j) if 0 <= x < len(mv_idx)]
            for i, j in zip(uniq, k)}
    need = sorted({x for v in nbrs.values() for x in v})
    db, df = ref_distances(types)
    grids = {}
    for c in range(0, len(need), 256):  # bounded memory for long videos
        part = need[c:c + 256]
        g = paint([mvs[i] for i in part], gh, gw, db[part], df[part], cell)
        g *= np.array([ow / w, oh / h], np.float32)
        grids.update(zip(part, g))
    q = {i: quantize(grids[nb[0]] if len(nb) == 1 else sum(grids[x] for x in nb) / len(nb), bound)
         for i, nb in nbrs.items()}
    geom = {"h": h, "w": w, "cell": cell, "out_h": oh, "out_w": ow, "rotation": rotation}
    return np.stack([q[int(i)] for i in want]), geom


def read_motion_vectors(path, indices=None, size=None, bound: float = BOUND) -> np.ndarray:
    """Motion fields of ``path`` from its codec's motion vectors -> uint8 (T, H, W, 2).

    ``indices``: frames in display order (default all; past the end repeats the last frame).
    ``size``: int short side (as ``read_frames(short_side=)``) or (H, W); vectors are rescaled.
    Frames without vectors (I-frames) take the mean of the nearest earlier and later MV frames.
    Codecs that export none (AV1, HEVC, VP9, intra-only files) fall back to DIS flow, with a warning.
    """
    grids, geom = read_mv_grids(path, indices, size, bound)
    return grids if geom is None else expand_grids(grids, geom)
