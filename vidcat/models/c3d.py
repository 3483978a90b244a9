"""``c3d`` (Tran et al. 2015, Learning Spatiotemporal Features with 3D Convolutional Networks).

Input (B, 3, 16, 112, 112). Eight 3x3x3 convs (64, 128, 256, 256, 512, 512, 512, 512) with ReLU, five
max-pools (the first spatial only, pool5 padded to give 512x1x4x4 = 8192 features), fc6/fc7 4096 with
dropout, fc8. No BatchNorm, as in the paper (Sports-1M: 487 classes).
"""
from __future__ import annotations

import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.registry import register_model


class C3D(nn.Module):
    classifier_name = "fc8"

    def __init__(self, num_classes: int, dropout: float = 0.5, in_channels: int = 3):
        super().__init__()
        # layer names as in the widely used PyTorch port, so its Sports-1M state dict loads as is
        cin, self._order = in_channels, []
        for stage, (convs, width, pool, pad) in enumerate(((("1",), 64, (1, 2, 2), 0), (("2",), 128, 2, 0),
                                                           (("3a", "3b"), 256, 2, 0), (("4a", "4b"), 512, 2, 0),
                                                           (("5a", "5b"), 512, 2, (0, 1, 1))), start=1):
            for c in convs:
                setattr(self, f"conv{c}", nn.Conv3d(cin, width, 3, padding=1))
                self._order.append(f"conv{c}")
                cin = width
            setattr(self, f"pool{stage}", nn.MaxPool3d(pool, pool, pad))
            self._order.append(f"pool{stage}")
        self.fc6 = nn.Linear(512 * 4 * 4, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.drop = nn.Dropout(dropout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        if tuple(x.shape[2:]) != (16, 112, 112):  # fc6 is tied to the 512x1x4x4 pool5 output
            raise VidcatError(f"c3d needs 16x112x112 clips, got {'x'.join(map(str, x.shape[2:]))}")
        for name in self._order:
            x = getattr(self, name)(x)
            if name.startswith("conv"):
                x = self.relu(x)
        f = self.drop(self.relu(self.fc6(x.flatten(1))))
        f = self.drop(self.relu(self.fc7(f)))
        return self.fc8(f)


@register_model("c3d", fixed_input=True, family="3d", frames=16, size=112, paper="Tran et al. 2015, Learning Spatiotemporal Features with 3D ConvNets",
                description="C3D: 8 conv3d layers + fc6/fc7 4096 (no BN), fixed 16x112")
def c3d(num_classes: int, pretrained: bool = False, dropout: float = 0.5) -> nn.Module:
    if pretrained:
        raise VidcatError("c3d has no downloadable weights here; pass --weights FILE (a Sports-1M C3D state dict)")
    return C3D(num_classes, dropout)
