"""``lrcn``: Long-term Recurrent Convolutional Network (Donahue et al. 2015).

Input (B, C, T, H, W), 16 x 112 x 112 by default. A 2D CNN (shared helper from :mod:`vidcat.models.tsn`)
encodes every frame, an LSTM/GRU (optionally bidirectional) runs over the T feature vectors, and the
outputs are pooled over time -- averaged as in the paper, or with learned attention -- then classified.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model
from vidcat.models.tsn import build_backbone2d, frame_features


class LRCN(nn.Module):
    classifier_name = "fc"

    def __init__(self, num_classes: int, backbone: str = "resnet18", pretrained: bool = False, rnn: str = "lstm",
                 hidden: int = 256, layers: int = 1, bidirectional: bool = False, attention_pool: bool = False,
                 dropout: float = 0.5, in_channels: int = 3, backbone_weights=None):
        super().__init__()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}
        if rnn not in cells:
            raise VidcatError(f"rnn must be lstm or gru, not {rnn!r}")
        self.backbone, dim = build_backbone2d(backbone, pretrained, in_channels, backbone_weights)
        self.weight_file = getattr(self.backbone, "weight_file", None)  # where an offline backbone's weights came from
        self.rnn = cells[rnn](dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        out = hidden * (2 if bidirectional else 1)
        self.attention = nn.Linear(out, 1) if attention_pool else None
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(out, num_classes)

    def forward(self, x):
        h, _ = self.rnn(frame_features(self.backbone, x))     # (B, T, out)
        if self.attention is None:
            h = h.mean(1)
        else:
            h = (torch.softmax(self.attention(h), dim=1) * h).sum(1)
        return self.fc(self.dropout(h))


@register_model("lrcn", family="recurrent", frames=16, size=112, temporal=True, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                paper="Donahue et al. 2015, Long-term Recurrent Convolutional Networks",
                description="2D CNN per frame -> LSTM/GRU -> classifier")
def lrcn(num_classes: int, pretrained: bool = False, backbone: str = "resnet18", rnn: str = "lstm", hidden: int = 256,
         layers: int = 1, bidirectional: bool = False, attention_pool: bool = False, dropout: float = 0.5,
         in_channels: int = 3, backbone_weights=None) -> nn.Module:
    return LRCN(num_classes, backbone, pretrained, rnn, hidden, layers, bidirectional, attention_pool, dropout, in_channels,
                backbone_weights)
