"""torchvision video models (``r3d_18``, ``mc3_18``, ``r2plus1d_18``, ``s3d``, ``mvit_v2_s``, ``swin3d_t``)
with a ``num_classes`` head, and I3D-style inflated ResNets (``i3d_r18``, ``i3d_r50``).

Input (B, C, T, H, W). Sizes follow torchvision's weight docs: R(2+1)D/R3D/MC3 16x112; S3D >= 14 frames
at 224 (its fixed 2x7x7 average pool is made adaptive here, identical at 16x224); MViT-v2-S exactly
16x224 (its positional tables fix the size); Swin3D-T 224 with 32-frame clips (any size runs).
``pretrained=True`` loads the Kinetics-400 (ImageNet for I3D) weights through torchvision's hub cache.
"""
from __future__ import annotations

import torch.nn as nn

from vidcat.config import PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD
from vidcat.errors import VidcatError
from vidcat.models.inflated import InflatedConv3d, inflate_2d, inflate_conv2d  # noqa: F401 (re-exported; registers i3d_efficientnet_lite*)
from vidcat.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model
from vidcat.models.surgery import get_classifier, set_classifier, torchvision_pretrained

_TRAN_2018 = "Tran et al. 2018, A Closer Look at Spatiotemporal Convolutions for Action Recognition"


def _resize_head(model: nn.Module, num_classes: int) -> None:
    head = get_classifier(model)[1]
    if (head.out_features if isinstance(head, nn.Linear) else head.out_channels) != num_classes:
        set_classifier(model, num_classes)  # a pretrained head of the right size is kept


def _tv(name: str, enum: str, head: str, num_classes: int, pretrained: bool, **kw) -> nn.Module:
    import torchvision.models.video as tvv

    fn = getattr(tvv, name)
    model = torchvision_pretrained(fn, getattr(tvv, enum).KINETICS400_V1, **kw) if pretrained else fn(num_classes=num_classes, **kw)
    model.classifier_name = head
    _resize_head(model, num_classes)
    return model


@register_model("r3d_18", family="3d", frames=16, size=112, paper=_TRAN_2018, description="3D ResNet-18 (torchvision)")
def r3d_18(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _tv("r3d_18", "R3D_18_Weights", "fc", num_classes, pretrained)


@register_model("mc3_18", family="3d", frames=16, size=112, paper=_TRAN_2018,
                description="mixed 3D/2D convolution ResNet-18 (torchvision)")
def mc3_18(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _tv("mc3_18", "MC3_18_Weights", "fc", num_classes, pretrained)


@register_model("r2plus1d_18", family="3d", frames=16, size=112, paper=_TRAN_2018,
                description="(2+1)D factorised ResNet-18 (torchvision)")
def r2plus1d_18(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _tv("r2plus1d_18", "R2Plus1D_18_Weights", "fc", num_classes, pretrained)


@register_model("s3d", family="3d", frames=16, size=224, paper="Xie et al. 2018, Rethinking Spatiotemporal Feature Learning",
                description="separable 3D Inception (torchvision), >= 14 frames")
def s3d(num_classes: int, pretrained: bool = False) -> nn.Module:
    model = _tv("s3d", "S3D_Weights", "classifier.1", num_classes, pretrained)
    model.avgpool = nn.AdaptiveAvgPool3d(1)  # == AvgPool3d((2,7,7)) at 16x224, and any size now runs
    return model


def _check_input(module: nn.Module, args) -> None:
    if tuple(args[0].shape[2:]) != (16, 224, 224):
        raise VidcatError(f"mvit_v2_s needs 16x224x224 clips, got {'x'.join(map(str, args[0].shape[2:]))}")


@register_model("mvit_v2_s", fixed_input=True, family="transformer", frames=16, size=224, mean=PYTORCHVIDEO_MEAN, std=PYTORCHVIDEO_STD,
                paper="Li et al. 2022, MViTv2", description="multiscale vision transformer v2 small (torchvision), fixed 16x224")
def mvit_v2_s(num_classes: int, pretrained: bool = False) -> nn.Module:
    model = _tv("mvit_v2_s", "MViT_V2_S_Weights", "head.1", num_classes, pretrained)
    model.register_forward_pre_hook(_check_input)  # a one-line error instead of a deep shape mismatch
    return model


@register_model("swin3d_t", family="transformer", frames=32, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                paper="Liu et al. 2022, Video Swin Transformer", description="video Swin transformer tiny (torchvision)")
def swin3d_t(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _tv("swin3d_t", "Swin3D_T_Weights", "head", num_classes, pretrained)


# --- I3D: inflate an ImageNet 2D ResNet into a 3D one (Carreira & Zisserman 2017) ---------------------------

def inflate_resnet(resnet2d: nn.Module, stem_time_kernel: int = 5, block_time_kernel: int = 3,
                   pool_time_stride: int = 2, center: bool = False) -> nn.Module:
    """A copy of a torchvision 2D ResNet with every layer inflated to 3D; its forward takes (B, C, T, H, W).
    The stem conv gets ``stem_time_kernel`` taps, the first conv of every residual block
    ``block_time_kernel`` (3x3x3 in basic blocks, 3x1x1 in bottlenecks), all others 1; the stem max-pool
    also pools time by ``pool_time_stride``. BatchNorm statistics and the fc layer carry over unchanged."""
    def time_kernel(name: str, conv: nn.Conv2d) -> int:
        return stem_time_kernel if name == "conv1" else block_time_kernel if name.endswith(".conv1") else 1

    return inflate_2d(resnet2d, time_kernel, pool_time_stride, center)


def _i3d(depth: int, num_classes: int, pretrained: bool) -> nn.Module:
    import torchvision.models as tvm

    fn = getattr(tvm, f"resnet{depth}")
    net2d = torchvision_pretrained(fn, tvm.get_model_weights(fn).DEFAULT) if pretrained else fn(num_classes=num_classes)
    model = inflate_resnet(net2d)
    model.classifier_name = "fc"
    _resize_head(model, num_classes)
    return model


_I3D = "Carreira & Zisserman 2017, Quo Vadis, Action Recognition?"


@register_model("i3d_r18", family="3d", frames=16, size=112, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper=_I3D,
                description="ResNet-18 inflated to 3D (ImageNet-initialised with pretrained)")
def i3d_r18(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _i3d(18, num_classes, pretrained)


@register_model("i3d_r50", family="3d", frames=16, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper=_I3D,
                description="ResNet-50 inflated to 3D (ImageNet-initialised with pretrained)")
def i3d_r50(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _i3d(50, num_classes, pretrained)
