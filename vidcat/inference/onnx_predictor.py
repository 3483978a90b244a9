"""Predict with an exported ONNX file (``vidcat export``) on ONNX Runtime: no checkpoint, no model code.

    OnnxPredictor("model.onnx")("clip.mp4")  # -> {"path", "labels", "scores"}, exactly like Predictor

Torch-free for video models: their graph takes decoded uint8 frames and makes the test views itself
(crop, resize, normalisation: :class:`vidcat.data.transforms.FrameViews`, exported), so this module only
decodes the test clips (:func:`vidcat.data.views.graph_views`, PyAV + numpy) and imports only onnxruntime,
av and numpy. The class names and the input pipeline come from the file's metadata. Multi-stream exports
(video + audio fusion, two_stream with flow / motion vectors) read all their streams through the dataset
pipeline (:func:`vidcat.inference.predictor.video_batch`), which needs torch.
"""
from __future__ import annotations

import json

from pathlib import Path

import numpy as np

from vidcat.config import DataConfig
from vidcat.errors import VidcatError
from vidcat.inference.base import BasePredictor, probabilities


def ort_session(path, threads: int = 0):
    """A CPU ONNX Runtime session for ``path``; VidcatError when onnxruntime or the file is missing/bad."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise VidcatError("ONNX inference needs onnxruntime: pip install 'vidcat[serve]'") from None
    path = Path(path)
    if not path.is_file():
        raise VidcatError(f"{path}: ONNX file not found")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for damaged files
        raise VidcatError(f"{path}: not a readable ONNX file ({type(e).__name__}: {e})") from None


def run_logits(session, feeds: dict) -> np.ndarray:
    """``logits`` for a batch of feeds; a graph exported with a fixed batch of 1 (multi-stream models)
    is run one row at a time."""
    n = len(next(iter(feeds.values())))
    if n > 1 and session.get_inputs()[0].shape[0] == 1:
        return np.concatenate([session.run(["logits"], {k: v[i:i + 1] for k, v in feeds.items()})[0]
                               for i in range(n)])
    return session.run(["logits"], feeds)[0]


def batch_feeds(batch: dict, names: list[str], views: int = 1) -> dict:
    """Graph inputs ``names`` from a collated batch of one video: views folded onto the batch axis,
    a stream's missing ``<key>_mask`` (the stream is always there, e.g. video) filled with ones."""
    feeds = {}
    for name in names:
        if name not in batch and name.endswith("_mask"):
            feeds[name] = np.ones(views, np.float32)
            continue
        x = np.asarray(batch[name], np.float32)
        feeds[name] = x.reshape((-1,) + x.shape[2:]) if views > 1 else x  # (1, V, ...) -> (V, ...)
    return feeds


FRAME_INPUTS = ("frames", "crop")  # a video model's graph: decoded uint8 frames, a crop position per view
META_CLASSES = "vidcat.classes"
META_MULTILABEL = "vidcat.multilabel"
META_DATA = "vidcat.data"
META_MODEL = "vidcat.model"
META_INPUT = "vidcat.input"
META_QUANT = "vidcat.quantization"
META_VERSION = "vidcat.version"


def metadata_of(session, path="model.onnx") -> dict:
    props = session.get_modelmeta().custom_metadata_map
    if META_CLASSES not in props or META_DATA not in props:
        raise VidcatError(f"{path}: not a vidcat ONNX export (no {META_CLASSES} / {META_DATA} metadata)")
    if [i.name for i in session.get_inputs()] == ["video"]:
        raise VidcatError(f"{path}: exported by an older vidcat (its graph takes normalised views, not decoded "
                          "frames): export the checkpoint again with vidcat export")
    return {"classes": json.loads(props[META_CLASSES]), "multilabel": json.loads(props.get(META_MULTILABEL, "false")),
            "data": json.loads(props[META_DATA]), "model": props.get(META_MODEL, "?"),
            "input": props.get(META_INPUT, session.get_inputs()[0].name),
            "quantization": props.get(META_QUANT, "none")}


class OnnxPredictor(BasePredictor):
    """The :class:`Predictor` interface (``__call__`` / ``scores`` / ``predict_many``) over an ``.onnx`` file."""

    backend = "onnxruntime"

    def __init__(self, onnx_path, clips: int = 1, crops: int = 1, topk: int = 5, threads: int = 0):
        self.session = ort_session(onnx_path, threads)
        self.meta = metadata_of(self.session, onnx_path)
        if self.meta["input"] == "stream_features":
            raise VidcatError(f"{onnx_path} holds the streams model's fused head, whose inputs are stream features "
                              "that vidcat computes with torch: predict with the checkpoint (--checkpoint RUN/best.pt)")
        self.ckpt = None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.classes = self.meta["classes"]
        self.multilabel = self.meta["multilabel"]
        self.data_cfg = DataConfig.from_dict(self.meta["data"])
        self.clips, self.crops, self.topk = clips, crops, topk

    def inputs(self, path, text: str | None = None) -> tuple[dict, int]:
        """The session's inputs for one video (all test views on the batch axis), and the view count."""
        if tuple(self.input_names) == FRAME_INPUTS:
            from vidcat.data.views import graph_views

            feeds = graph_views(path, self.data_cfg, self.clips, self.crops)
            return feeds, len(feeds["crop"])
        from vidcat.inference.predictor import video_batch  # extra streams: the torch dataset pipeline

        batch, views = video_batch(path, self.data_cfg, self.classes, self.multilabel, self.clips, self.crops, text)
        return batch_feeds(batch, self.input_names, views), views

    def logits(self, feeds: dict) -> np.ndarray:
        return run_logits(self.session, feeds)

    def scores(self, path, text: str | None = None) -> np.ndarray:
        """Class probabilities (K,) for one video, averaged over its test views."""
        feeds, views = self.inputs(path, text)
        return probabilities(self.logits(feeds), self.multilabel, views)[0]


def load_predictor(path, **kw) -> BasePredictor:
    """A :class:`Predictor` for a checkpoint, or an :class:`OnnxPredictor` for a ``.onnx`` file (no torch)."""
    if Path(path).suffix.lower() == ".onnx":
        kw.pop("device", None)
        return OnnxPredictor(path, **kw)
    from vidcat.inference.predictor import Predictor

    kw.pop("threads", None)
    return Predictor(path, **kw)
