"""Predict the categories of single videos with a trained checkpoint (CLI ``predict`` and API)."""
from __future__ import annotations

import torch

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import Dataset, Item
from vidcat.models.inputs import predict_outputs
from vidcat.errors import VideoError
from vidcat.inference.base import BasePredictor, make_record  # noqa: F401  (make_record: public here too)
from vidcat.models.build import Checkpoint


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


class Predictor(BasePredictor):
    """``Predictor("runs/demo/best.pt")("video.mp4")`` → ``{"path", "labels", "scores"}``.

    Uses the checkpoint's own input pipeline; ``clips`` × ``crops`` views are averaged. A default-model
    checkpoint also answers "none of these" (``open_set``: an :class:`~vidcat.config.OpenSet` to change its
    target or turn it off).
    Raises :class:`VideoError` for an unreadable file (``predict_many`` turns it into a record).
    ``__call__`` / ``predict_many`` come from :class:`BasePredictor`.
    """

    def __init__(self, ckpt_path, device: str = "cpu", clips: int = 1, crops: int = 1, topk: int = 5,
                 open_set=None):
        from vidcat.featurefit.rule import rule_from

        self.ckpt = Checkpoint.load(ckpt_path)
        self.unknown_rule = rule_from(self.ckpt.extra.get("open_set"), open_set)
        self.device = torch.device(device)
        self.model = self.ckpt.build(self.device)
        self.classes = self.ckpt.classes
        self.multilabel = self.ckpt.multilabel
        self.data_cfg = self.ckpt.data
        self.meta = {"model": self.ckpt.setup.name}
        self.clips, self.crops, self.topk = clips, crops, topk

    def scores_and_warning(self, path, text: str | None = None) -> tuple[torch.Tensor, str | None, dict]:
        """Class probabilities (K,) for one video, the io layer's damage warning (or None) and its "none of
        these" evidence."""
        return self.score_prepared(video_batch(path, self.data_cfg, self.classes, self.multilabel, self.clips,
                                               self.crops, text))

    def prepare(self, path):
        """Decode ``path``'s views (in :meth:`predict_many`'s look-ahead thread); None for a long file."""
        return None if self.is_long(path) else video_batch(path, self.data_cfg, self.classes, self.multilabel,
                                                           self.clips, self.crops)

    def score_prepared(self, prepared) -> tuple[torch.Tensor, str | None, dict]:
        """Probabilities (K,), the damage warning (or None) and the clip's "none of these" evidence."""
        batch, views = prepared
        p, _, evidence = predict_outputs(self.model, batch, views, self.multilabel, self.device)
        return p[0].cpu(), damage_warning(batch), {k: v[0].cpu().numpy() for k, v in evidence.items()}

    def scores(self, path, text: str | None = None) -> torch.Tensor:
        return self.scores_and_warning(path, text)[0]


def damage_warning(batch: dict) -> str | None:
    """The io layer's damage report (truncated, partly undecodable) for the one video in ``batch``:
    :func:`vidcat.data.dataset.collate` lists them as ``(path, warning)`` under ``"warnings"``."""
    return next((w for _, w in batch.get("warnings") or () if w), None)
