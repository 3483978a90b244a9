"""Predict with an exported ONNX file (``vidcat export``) on ONNX Runtime: no checkpoint, no model code.

    OnnxPredictor("model.onnx")("clip.mp4")  # -> {"path", "labels", "scores"}, exactly like Predictor

The class names and the input pipeline come from the file's metadata; decoding, sampling and
transforms are the dataset pipeline's (:func:`vidcat.inference.predictor.video_batch`), and view
averaging is :func:`vidcat.engine.step.predict_scores`: only the forward pass differs.
"""
from __future__ import annotations

from pathlib import Path

import torch

from vidcat.config import DataConfig
from vidcat.errors import VidcatError
from vidcat.inference.predictor import Predictor


class OrtModel:
    """An ONNX Runtime session that behaves like a vidcat model in :func:`predict_scores`:
    called with the input tensor, returns a logits tensor; ``input_key`` names its batch entry."""

    def __init__(self, session, input_key: str):
        self.session, self.input_key = session, input_key
        self.input_name = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])


class OnnxPredictor(Predictor):
    """:class:`Predictor` over an exported ``.onnx`` file: same ``__call__`` / ``scores`` / ``predict_many``."""

    backend = "onnxruntime"

    def __init__(self, onnx_path, clips: int = 1, crops: int = 1, topk: int = 5, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise VidcatError("ONNX inference needs onnxruntime: pip install 'vidcat[serve]'") from None
        from vidcat.inference.export import metadata_of

        path = Path(onnx_path)
        if not path.is_file():
            raise VidcatError(f"{path}: ONNX file not found")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for damaged files
            raise VidcatError(f"{path}: not a readable ONNX file ({type(e).__name__}: {e})") from None
        self.meta = metadata_of(session, path)
        self.ckpt = None
        self.device = torch.device("cpu")
        self.model = OrtModel(session, self.meta["input"])
        self.classes = self.meta["classes"]
        self.multilabel = self.meta["multilabel"]
        self.data_cfg = DataConfig.from_dict(self.meta["data"])
        self.clips, self.crops, self.topk = clips, crops, topk


def load_predictor(path, **kw) -> Predictor:
    """A :class:`Predictor` for a checkpoint, or an :class:`OnnxPredictor` for a ``.onnx`` file."""
    if Path(path).suffix.lower() == ".onnx":
        kw.pop("device", None)
        return OnnxPredictor(path, **kw)
    kw.pop("threads", None)
    return Predictor(path, **kw)
