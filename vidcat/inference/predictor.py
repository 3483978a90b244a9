"""Predict the categories of single videos with a trained checkpoint (CLI ``predict`` and API)."""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

import numpy as np
import torch

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import Dataset, Item
from vidcat.engine.step import predict_scores
from vidcat.errors import VideoError
from vidcat.inputs import expand_inputs
from vidcat.models.build import Checkpoint

log = logging.getLogger("vidcat")


def video_batch(path, data_cfg: DataConfig, classes: list[str], multilabel: bool = False, clips: int = 1,
                crops: int = 1, text: str | None = None) -> tuple[dict, int]:
    """One video → a model-ready batch of its ``clips`` × ``crops`` test views, and the view count.

    The dataset pipeline itself (:class:`VideoClips` + :func:`collate`), so every backend (torch, ONNX
    Runtime, the server) sees exactly the input that evaluation does. Raises :class:`VideoError`.
    """
    ds = Dataset([Item(str(path), [], text)], classes, multilabel)
    views = VideoClips(ds, data_cfg, train=False, clips=clips, crops=crops)
    sample = views[0]
    if "error" in sample:
        raise VideoError(path, sample["error"])
    return collate([sample]), views.num_views


class Predictor:
    """``Predictor("runs/demo/best.pt")("video.mp4")`` → ``{"path", "labels", "scores"}``.

    Uses the checkpoint's own input pipeline; ``clips`` × ``crops`` views are averaged.
    Raises :class:`VideoError` for an unreadable file (``predict_many`` turns it into a record).
    """

    def __init__(self, ckpt_path, device: str = "cpu", clips: int = 1, crops: int = 1, topk: int = 5):
        self.ckpt = Checkpoint.load(ckpt_path)
        self.device = torch.device(device)
        self.model = self.ckpt.build(self.device)
        self.classes = self.ckpt.classes
        self.multilabel = self.ckpt.multilabel
        self.data_cfg = self.ckpt.data
        self.meta = {"model": self.ckpt.setup.name}
        self.clips, self.crops, self.topk = clips, crops, topk

    def _scores(self, path, text: str | None = None) -> tuple[torch.Tensor, str | None]:
        """Class probabilities (K,) for one video and the io layer's damage warning (or None)."""
        batch, views = video_batch(path, self.data_cfg, self.classes, self.multilabel, self.clips, self.crops, text)
        p, _ = predict_scores(self.model, batch, views, self.multilabel, self.device)
        return p[0].cpu(), damage_warning(batch)

    def scores(self, path, text: str | None = None) -> torch.Tensor:
        """Class probabilities (K,) for one video."""
        return self._scores(path, text)[0]

    def __call__(self, path, text: str | None = None) -> dict:
        p, warning = self._scores(path, text)
        return make_record(path, p, self.classes, self.topk, warning)

    def predict_many(self, paths: Iterable, strict: bool = False) -> Iterator[dict]:
        """One record per video under ``paths`` (folders recurse), in order.

        Every input yields at least one record: a prediction, or ``{"path", "error"}`` for a file that
        cannot be used, a missing path, a symlink loop or a folder without videos. Raises
        :class:`VidcatError` when the inputs hold no video at all; ``strict`` raises at the first error.
        """
        entries = expand_inputs(paths)
        for path, reason in entries:
            if reason is not None:
                if strict:
                    raise VideoError(path, reason)
                yield {"path": str(path), "error": reason}
                continue
            try:
                yield self(path)
            except VideoError as e:
                if strict:
                    raise
                yield {"path": str(path), "error": e.reason}
            except Exception as e:  # a pathological file or a bug: one record saying so, not a dead batch
                if strict:
                    raise
                log.info("predict failed on %s", path, exc_info=True)  # `vidcat -v` shows the traceback
                yield {"path": str(path), "error": f"internal error ({type(e).__name__}: {e})"}


def make_record(path, probs, classes: list[str], topk: int, warning: str | None = None) -> dict:
    """``{"path", "labels", "scores"[, "warning"]}``: the top ``topk`` classes of one video."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    top = np.argsort(-p, kind="stable")[:max(0, min(topk, len(classes)))]
    record = {"path": str(path), "labels": [classes[i] for i in top.tolist()],
              "scores": [round(float(p[i]), 6) for i in top]}
    if warning:
        record["warning"] = warning
    return record


def damage_warning(batch: dict) -> str | None:
    """The io layer's damage report (truncated, partly undecodable) for the one video in ``batch``.

    :func:`vidcat.data.dataset.collate` lists them as ``(path, warning)`` under ``"warnings"``;
    ``None`` for an intact file.
    """
    return next((w for _, w in batch.get("warnings") or () if w), None)
