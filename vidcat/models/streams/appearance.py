"""The appearance stream: a frozen ImageNet EfficientNet-Lite on each sampled frame.

Per frame it keeps the average features and, per channel, where the channel fires (x/y activation
centroids, :class:`~vidcat.models.frame_encoder.PositionPool`), ``[avg (D) | x (D) | y (D)]``; the head pools
them over time (:func:`vidcat.models.streams.base.pool_frames`), so it is the one stream whose cached
features are per frame: ``(B, T, 3D)``.

The frozen encoder runs through :class:`~vidcat.models.backbone_runtime.FrameEncoder` (``runtime``):
``auto`` picks the fastest installed runtime whose features agree with eager's (OpenVINO, else ONNX
Runtime fp32; ``benchmarks/backbone_runtime.py``), else eager. Float32 runtimes share feature cache entries
with eager; ``ort_int8`` features differ, so that runtime is part of :meth:`spec`. ``runtime_root``: where
the exported graphs are cached (default: the cache root).
"""
from __future__ import annotations

import torch

from vidcat.models.backbone_runtime import FrameEncoder, check_runtime, runtime_spec
from vidcat.models.frame_encoder import load_backbone
from vidcat.models.streams.base import StreamFeatures


class AppearanceFeatures(StreamFeatures):
    name = "appearance"
    reads = ("video",)
    version = 1
    per_frame = True

    def __init__(self, backbone: str = "efficientnet_lite0", frames: int = 8, pretrained: bool = True,
                 runtime: str = "auto"):
        super().__init__()
        self.runtime = check_runtime(runtime)
        self.runtime_root = None                   # cache root of the exported graphs (None: the default)
        self._encoder = None                       # FrameEncoder, built on first use (never pickled)
        module, info = load_backbone(backbone, pretrained=pretrained, pooling="avgpos")
        self.backbone = module.to(memory_format=torch.channels_last)
        self.info, self.frames = info, int(frames)
        self.feat_dim = info.feat_dim              # per frame: 3 x D
        self.dims = (info.feat_dim // 3, info.feat_dim)   # global (average features) | positional (+ centroids)

    def spec(self) -> dict:
        i = self.info
        return {**super().spec(), "backbone": i.name, "weights": i.weights_sha256, "pooling": i.pooling,
                "frames": self.frames, **runtime_spec(self.runtime)}

    @property
    def encoder(self) -> FrameEncoder:
        if self._encoder is None:
            self._encoder = FrameEncoder(self.backbone, self.runtime, root=self.runtime_root)
        return self._encoder

    def __getstate__(self):
        return {**super().__getstate__(), "_encoder": None}

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) normalised clips -> (B, T, 3D) per-frame features."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return self.encoder(frames).reshape(b, t, -1).float()

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["video"]
        return self.frame_features(x), torch.ones(x.shape[0], device=x.device)
