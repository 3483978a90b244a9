"""Sliding-window scores over a long video: where in the video does each category happen?

The file is decoded once, front to back (:class:`vidcat.io.stream.FrameStream`); decoded frames
wait in a ring buffer that holds at most one window's span, so memory does not grow with the
video's length. Windows of ``window`` seconds start every ``stride`` seconds inside each shot:
a hard cut (:class:`vidcat.inference.shots.ShotDetector`) closes the shot, drops the windows that
would straddle it and restarts the grid on the new shot; a shot shorter than a window gets one
window over the whole shot. :func:`aggregate` turns the windows into one video-level record
(duration-weighted mean of the window probabilities), which :func:`predict_long` gives for long
files. Works with a torch checkpoint or an ONNX export (video-input graphs).
"""
from __future__ import annotations

import csv
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from vidcat.data.sampling import sample_indices
from vidcat.data.views import CENTRE
from vidcat.inference.base import make_record
from vidcat.inference.onnx_predictor import FRAME_INPUTS
from vidcat.io.store import atomic_open, atomic_write_json


@dataclass
class Window:
    """One scored window: frames ``[first, first + frames)``, seconds ``[start, end)``, probabilities (K,)."""

    first: int
    frames: int
    start: float
    end: float
    scores: np.ndarray | None = None

    @property
    def time(self) -> float:
        return round((self.start + self.end) / 2, 6)


def iter_windows(stream, win_frames: int, stride_frames: int, sampler, detector=None, stats: dict | None = None
                 ) -> Iterator[tuple[Window, np.ndarray, list[int]]]:
    """``(window, its sampled frames (T, H, W, 3), their indices)`` in order, from one pass over ``stream``.

    The buffer keeps the current shot's frames from the earliest window not yet complete: at most
    ``win_frames`` frames (a short shot has fewer). ``stats["max_buffer"]`` records its peak length.
    """
    fps = stream.info.fps
    buf: deque = deque()
    shot_start = next_start = 0
    emitted = 0  # windows emitted in the current shot
    last = -1

    def take(first: int, n: int):
        idx = first + sample_indices(n, sampler, train=False)
        base = buf[0][0]
        frames = np.stack([buf[int(i) - base][1] for i in idx])
        return Window(first, n, first / fps, (first + n) / fps), frames, idx.tolist()

    for index, _, rgb in stream:
        if detector is not None and detector(rgb) and index > shot_start:
            if emitted == 0:  # the shot ended before its first full window: one window over all of it
                yield take(shot_start, index - shot_start)
            buf.clear()
            shot_start = next_start = index
            emitted = 0
        buf.append((index, rgb))
        last = index
        if stats is not None:
            stats["max_buffer"] = max(stats.get("max_buffer", 0), len(buf))
        while next_start + win_frames - 1 <= index:
            yield take(next_start, win_frames)
            next_start += stride_frames
            emitted += 1
        while buf and buf[0][0] < min(next_start, index + 1):
            buf.popleft()
    if emitted == 0 and last >= shot_start:
        yield take(shot_start, last + 1 - shot_start)


class WindowScorer:
    """Scores batches of windows with a :class:`Predictor` (torch, the dataset's transforms and extra
    modalities) or an :class:`OnnxPredictor` (decoded frames, video-model graphs)."""

    def __init__(self, predictor, path):
        from vidcat.data.manifest import Item

        self.pred, self.path, self.item = predictor, str(path), Item(str(path), [])
        self.onnx = hasattr(predictor, "session")
        cfg = predictor.data_cfg
        if self.onnx:
            if tuple(predictor.input_names) != FRAME_INPUTS:
                from vidcat.errors import VidcatError

                raise VidcatError(f"timeline with ONNX supports video-input exports, not {predictor.input_names}")
        else:
            from vidcat.data.dataset import VideoClips
            from vidcat.data.manifest import Dataset

            self.clips = VideoClips(Dataset([self.item], predictor.classes, predictor.multilabel), cfg)

    def sample(self, info, win: Window, frames: np.ndarray, indices: list[int]):
        if self.onnx:  # the graph cuts the centre square, resizes and normalises
            return frames
        from vidcat.data.modalities import ClipContext

        ctx = ClipContext(self.item, info, win.start, win.end, indices, self.clips.cfg, False, frames=frames)
        return {**self.clips.load_views(ctx)[0], "label": -1, "path": self.path}

    def score(self, samples: list) -> np.ndarray:
        """(B, K) probabilities of a batch of samples."""
        if self.onnx:
            from vidcat.inference.base import probabilities
            from vidcat.inference.onnx_predictor import run_logits

            feeds = {"frames": np.stack(samples), "crop": np.full(len(samples), CENTRE, np.int64)}
            return probabilities(run_logits(self.pred.session, feeds), self.pred.multilabel)
        from vidcat.data.dataset import collate
        from vidcat.models.inputs import predict_scores

        p, _ = predict_scores(self.pred.model, collate(samples), 1, self.pred.multilabel, self.pred.device)
        return p.cpu().numpy().copy()


def score_windows(predictor, video, window: float = 2.0, stride: float = 1.0, batch_size: int = 8,
                  shots: bool = True) -> tuple[list[Window], list[float], object]:
    """All scored windows of ``video`` in order, the cut times (seconds) and the video's info."""
    from vidcat.inference.shots import ShotDetector
    from vidcat.io.stream import FrameStream

    cfg = predictor.data_cfg
    scorer = WindowScorer(predictor, video)
    windows: list[Window] = []
    pending: list = []
    with FrameStream(video, short_side=cfg.decode_short_side, threads=0) as stream:
        info = stream.info
        detector = ShotDetector(info.fps) if shots else None
        win_f = max(1, int(round(window * info.fps)))
        stride_f = max(1, int(round(stride * info.fps)))
        for win, frames, idx in iter_windows(stream, win_f, stride_f, cfg.sampler_config, detector):
            pending.append((win, scorer.sample(info, win, frames, idx)))
            if len(pending) == batch_size:
                _score(scorer, pending, windows)
        _score(scorer, pending, windows)
    cuts = [round(i / info.fps, 6) for i in detector.cuts] if detector is not None else []
    return windows, cuts, info


def _score(scorer: WindowScorer, pending: list, out: list) -> None:
    if pending:
        probs = scorer.score([s for _, s in pending])
        for (w, _), p in zip(pending, probs):
            w.scores = np.array(p, np.float32)  # a copy: a view would keep the whole batch tensor alive
            out.append(w)
        pending.clear()


def aggregate(windows: list[Window], classes: list[str], path, topk: int = 5) -> dict:
    """One video-level record (``make_record``) from scored windows: their probabilities averaged,
    each weighted by its duration (a short shot's window counts for the time it covers)."""
    if not windows:
        from vidcat.errors import VideoError

        raise VideoError(path, "no window could be scored")
    w = np.array([max(x.end - x.start, 1e-6) for x in windows])
    p = (np.stack([x.scores for x in windows]) * w[:, None]).sum(0) / w.sum()
    return make_record(path, p, classes, topk)


def predict_long(predictor, path, window: float = 2.0, stride: float = 2.0, shots: bool = True) -> dict:
    """``vidcat predict`` for a long file: the :func:`aggregate` of its windows, plus ``windows`` and ``shots``."""
    windows, cuts, _ = score_windows(predictor, path, window, stride, shots=shots)
    return {**aggregate(windows, predictor.classes, path, predictor.topk), "windows": len(windows),
            "shots": len(cuts) + 1}


def timeline(ckpt_path, video, window: float = 2.0, stride: float = 1.0, out_dir=None, device: str = "cpu",
             batch_size: int = 8, shots: bool = True, threads: int = 0, fast: str | None = None) -> dict:
    """Score windows of ``window`` seconds every ``stride`` seconds (a checkpoint or an ``.onnx``);
    writes ``<stem>_timeline.{csv,json,png}`` to ``out_dir`` when given."""
    from vidcat.inference.onnx_predictor import load_predictor

    pred = ckpt_path if hasattr(ckpt_path, "classes") else load_predictor(ckpt_path, device=device, threads=threads)
    if fast and hasattr(pred, "model"):  # the fastest variant that agrees with eager on this video's clips
        from vidcat.inference.fast import accelerate

        accelerate(pred, [video], variant=fast, batch=batch_size)
    windows, cuts, info = score_windows(pred, video, window, stride, batch_size, shots)
    s = np.stack([w.scores for w in windows])
    times = [w.time for w in windows]
    result = {"video": str(video), "classes": pred.classes, "times": times, "scores": s.round(5).tolist(),
              "top": [pred.classes[i] for i in s.argmax(1)], "windows": len(windows),
              "spans": [[round(w.start, 6), round(w.end, 6)] for w in windows], "cuts": cuts,
              "duration": info.duration, "video_label": aggregate(windows, pred.classes, video, pred.topk)}
    if out_dir:
        _write_outputs(result, s, Path(out_dir), Path(video).stem)
    return result


def _write_outputs(result: dict, s: np.ndarray, out: Path, stem: str) -> None:
    from vidcat.engine.plots import plot_timeline

    out.mkdir(parents=True, exist_ok=True)
    result["csv"], result["json"], result["png"] = (str(out / f"{stem}_timeline.{e}") for e in ("csv", "json", "png"))
    with atomic_open(result["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "start", "end", "top", *result["classes"]])
        for t, (a, b), top, row in zip(result["times"], result["spans"], result["top"], s):
            w.writerow([f"{t:.3f}", f"{a:.3f}", f"{b:.3f}", top, *[f"{v:.5f}" for v in row]])
    atomic_write_json(result["json"], result, indent=None)
    plot_timeline(np.asarray(result["times"]), s, result["classes"], result["png"], cuts=result["cuts"])
