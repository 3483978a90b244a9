"""Audio models on log-mel spectrograms ``(B, 1, n_mels, frames)`` from :func:`vidcat.io.audio.audio_features`.

Every model here is ``head(features(x))`` with ``feat_dim`` features, so fusion can use it as a stream.
An input BatchNorm standardises the log-mel values (about -14 for silence to +5), so no mean/std
is needed in the data pipeline.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.registry import register_model

# 64 mel bands x 101 frames = a 1 s window at 16 kHz with a 10 ms hop (the shape models are sized for;
# both accept any frames >= 16).
_AUDIO = dict(family="audio", modality="audio", frames=101, size=64, mean=(0.0,), std=(1.0,))


class AudioCNN(nn.Module):
    """Four conv-BN-ReLU-maxpool blocks, global average pool, linear: small and fast on CPU."""

    def __init__(self, num_classes: int, widths=(16, 32, 64, 128), dropout: float = 0.2):
        super().__init__()
        layers, c = [nn.BatchNorm2d(1)], 1
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c = w
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.feat_dim = c
        self.head = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class AudioResNet18(nn.Module):
    """torchvision ResNet-18 with a one-channel stem, treating the spectrogram as an image."""

    def __init__(self, num_classes: int, pretrained: bool = False):
        super().__init__()
        from torchvision.models import ResNet18_Weights, resnet18

        try:
            net = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if pretrained else None)
        except (OSError, RuntimeError) as e:  # no network, or a broken cache file
            raise VidcatError(f"audio_resnet18: cannot load ImageNet weights ({e}); "
                              "use pretrained=False or --weights FILE") from None
        stem = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        with torch.no_grad():  # ImageNet RGB filters summed over colour: the usual grey-input transfer
            stem.weight.copy_(net.conv1.weight.sum(1, keepdim=True))
        net.conv1, self.feat_dim = stem, net.fc.in_features
        net.fc = nn.Identity()
        self.norm, self.body, self.head = nn.BatchNorm2d(1), net, nn.Linear(self.feat_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("audio_cnn", description="4-block 2D CNN on log-mel spectrograms (fast, from scratch)",
                paper="Hershey et al., CNN Architectures for Large-Scale Audio Classification, ICASSP 2017", **_AUDIO)
def audio_cnn(num_classes: int, pretrained: bool = False, **kw) -> nn.Module:
    if pretrained:
        raise VidcatError("audio_cnn has no pretrained weights; train it, pass --weights FILE or use audio_resnet18")
    return AudioCNN(num_classes, **kw)


@register_model("audio_resnet18", description="ResNet-18 with a 1-channel stem on log-mel spectrograms",
                paper="He et al., Deep Residual Learning, CVPR 2016; Hershey et al., ICASSP 2017", **_AUDIO)
def audio_resnet18(num_classes: int, pretrained: bool = False, **kw) -> nn.Module:
    return AudioResNet18(num_classes, pretrained=pretrained, **kw)
