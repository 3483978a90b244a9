"""On-screen text of a video: PP-OCRv4 text detection and recognition (ONNX, bundled in the
``rapidocr-onnxruntime`` 1.4.4 wheel, Apache-2.0) on a few frames spread over the video, offline
(``pip install 'vidcat[ocr]'``).

:func:`on_screen_text` -> the distinct lines read (confidence >= ``MIN_SCORE``, at least two letters or
digits), in order of first appearance, one per line; cached per file content in ``Store("ocr", 1)``.
:func:`has_text` is the cheap probe: the detector alone on one or two frames. An unreadable file, a
file without frames or without text gives ``""`` / ``False``, never an error; only a missing extra is
an error (:data:`NEEDS`). Frames are downscaled so their long side is at most ``MAX_SIDE``: overlays,
captions and signs stay legible, and a 4K frame costs what a 640-pixel one does.
"""
from __future__ import annotations

import os
import re
import threading
from functools import lru_cache

import numpy as np

from vidcat.errors import VidcatError, VideoError
from vidcat.io.store import Store, content_key

NEEDS = "on-screen text needs: pip install 'vidcat[ocr]'"
STORE_VERSION = 1
MODEL = "rapidocr-onnxruntime-1.4.4-ppocrv4-mobile"
FRAMES = 4          # frames read per video by on_screen_text
PROBE_FRAMES = 2    # frames the has_text probe looks at
MAX_SIDE = 640      # long side of a frame given to the detector
MIN_SCORE = 0.8     # recognition confidence below this: the line is dropped (mostly misread small text)
_WORDISH = re.compile(r"[^\W_]")   # a letter or digit in any script
_LOCK = threading.Lock()
COUNTERS = {"computed": 0, "cached": 0, "probed": 0}


def available() -> bool:
    from vidcat.config.extras import has

    return has("ocr")


def _model_files() -> tuple:
    """(detector, recogniser) files of the bundled models, or the one-line error naming the extra."""
    from vidcat.weights import bundled_path

    det, rec = bundled_path("ppocr_v4", "det"), bundled_path("ppocr_v4", "rec")
    if not available() or det is None or rec is None:
        raise VidcatError(NEEDS)
    return det, rec


@lru_cache(maxsize=1)
def load_engine(threads: int = 0):
    """The bundled PP-OCRv4 mobile detector + recogniser (``rapidocr_onnxruntime.RapidOCR``) on the CPU."""
    det, rec = _model_files()
    import logging

    from rapidocr_onnxruntime import RapidOCR

    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or min(4, os.cpu_count() or 1)
    engine = RapidOCR(det_model_path=str(det), rec_model_path=str(rec), det_limit_type="max",
                      det_limit_side_len=MAX_SIDE, text_score=MIN_SCORE,
                      intra_op_num_threads=min(threads, os.cpu_count() or 1), inter_op_num_threads=1)
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return engine


def frame_positions(num_frames: int, n: int) -> list[int]:
    """``n`` frame indices spread over ``num_frames``, away from the first and last frame (fades, black)."""
    if num_frames <= 0:
        return []
    n = min(int(n), num_frames)
    return sorted({int(round((i + 0.5) * num_frames / n - 0.5)) for i in range(n)})


def read_ocr_frames(path, n: int) -> list[np.ndarray]:
    """Up to ``n`` RGB frames of ``path`` spread over it, long side at most ``MAX_SIDE``; [] when unreadable."""
    from vidcat.io.video import probe, read_frames

    try:
        info = probe(path)
        short = min(info.width, info.height)
        scale = min(1.0, MAX_SIDE / max(info.width, info.height, 1))
        side = int(short * scale) if scale < 1.0 else None
        frames = read_frames(path, frame_positions(info.num_frames, n), short_side=side)
    except (VideoError, OSError, ValueError):
        return []
    return [f for f in frames if f.size]


def _ocr_lines(engine, rgb: np.ndarray) -> list[tuple[str, float]]:
    """(text, score) of the lines read in one frame (rapidocr takes BGR like OpenCV)."""
    with _LOCK:
        result, _ = engine(np.ascontiguousarray(rgb[..., ::-1]), use_cls=False)
    return [(str(text), float(score)) for _, text, score in (result or [])]


def distinct_lines(lines, min_score: float = MIN_SCORE) -> list[str]:
    """Confident lines with at least two letters/digits, whitespace collapsed, repeats (case-blind)
    dropped, in order of first appearance."""
    out, seen = [], set()
    for text, score in lines:
        text = " ".join(text.split())
        key = text.casefold()
        if score >= min_score and len(_WORDISH.findall(text)) >= 2 and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def _cached(store: Store, key: str | None, compute):
    if key is not None:
        hit = store.get(key, with_meta=True)
        if hit is not None:
            COUNTERS["cached"] += 1
            return hit[1]["value"]
    value = compute()
    if key is not None:
        store.put(key, np.zeros(0, np.uint8), meta={"value": value})
    return value


def _key(store: Store, path, **spec) -> str | None:
    try:
        return store.key({"content": content_key(path), "model": MODEL, "max_side": MAX_SIDE, **spec})
    except OSError:  # a missing file is no text, like an unreadable one
        return None


def on_screen_text(path, frames: int = FRAMES, cache: bool = True, root=None) -> str:
    """The distinct text lines shown on ``frames`` frames spread over ``path``, joined by newlines."""
    _model_files()  # a missing extra is an error before any decoding
    store = Store("ocr", version=STORE_VERSION, root=root)
    key = _key(store, path, frames=int(frames), min_score=MIN_SCORE) if cache else None

    def compute() -> str:
        COUNTERS["computed"] += 1
        engine = load_engine()
        lines = [ln for img in read_ocr_frames(path, frames) for ln in _ocr_lines(engine, img)]
        return "\n".join(distinct_lines(lines))
    return _cached(store, key, compute)


def has_text(path, frames: int = PROBE_FRAMES, cache: bool = True, root=None) -> bool:
    """Whether the text detector finds any text box on ``frames`` frames of ``path`` (no recognition)."""
    _model_files()
    store = Store("ocr", version=STORE_VERSION, root=root)
    key = _key(store, path, probe=int(frames)) if cache else None

    def compute() -> bool:
        COUNTERS["probed"] += 1
        engine = load_engine()
        for img in read_ocr_frames(path, frames):
            with _LOCK:
                boxes, _ = engine.text_det(np.ascontiguousarray(img[..., ::-1]))
            if boxes is not None and len(boxes):
                return True
        return False
    return bool(_cached(store, key, compute))
