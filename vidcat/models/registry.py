"""One registry for every model family: ``create_model(name, num_classes, **kw)``, ``list_models()``.

Each family module registers plain builder functions with :func:`register_model`, stating what the
model expects (input modality, frames, size, mean/std) so the data pipeline and ``vidcat models``
can read it without building the network. ``vidcat/models/__init__.py`` imports every family module
(statically: an import error in one of them is an error, never a silently missing model).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch.nn as nn

from vidcat.config import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD  # noqa: F401 (re-exported)
from vidcat.errors import VidcatError


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is and what input it expects."""

    name: str
    family: str
    builder: Callable[..., nn.Module]
    description: str = ""
    modality: str = "video"          # input key in the batch dict: video | flow | mv | audio | text | multi
    frames: int = 16                 # clip length T the model was designed for
    stride: int = 1                  # frame step of a ``clip`` sample
    size: int = 112                  # spatial crop H = W
    mean: tuple = KINETICS_MEAN
    std: tuple = KINETICS_STD
    temporal: bool = True            # False for frame-order-free models (TSN with avg consensus)
    sampler: str = "clip"            # clip (T consecutive frames) | tsn (one frame per segment)
    fixed_input: bool = False        # True: only frames x size works (fc layers / position embeddings)
    paper: str = ""
    defaults: dict = field(default_factory=dict)

    def info(self) -> dict:
        d = asdict(self)
        d.pop("builder")
        return d


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, family: str, **meta):
    """Decorator: ``@register_model("r3d_18", family="3d", frames=16, size=112)``."""

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name=name, family=family, builder=fn,
                                    description=meta.pop("description", (fn.__doc__ or "").strip().split("\n")[0]),
                                    **meta)
        return fn

    return wrap


def list_models(family: str | None = None) -> list[str]:
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise VidcatError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, **kw) -> nn.Module:
    """Build a registered model with a ``num_classes``-way head.

    Common keywords: ``pretrained`` (torchvision/timm weights, needs the hub), ``weights`` (a local
    state-dict file), ``frames``. The returned module carries ``vidcat_spec`` (its :class:`ModelSpec`).
    """
    spec = get_spec(name)
    weights = kw.pop("weights", None)
    input_key = kw.pop("input_key", None)
    args = {**spec.defaults, **kw}
    model = spec.builder(num_classes=num_classes, **args)
    model.vidcat_spec = spec
    # which batch entry a single-stream model reads: its spec's modality unless told otherwise
    # (e.g. a frame CNN trained on the "flow" stream)
    model.input_key = input_key or spec.modality
    if weights:
        from vidcat.models.surgery import load_weights

        load_weights(model, weights)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_summary(names: list[str], params: bool = True) -> str:
    """The ``vidcat models`` table: name, family, input, parameters (with a 400-class head)."""
    quiet_weight_loading()
    rows = [f"{'name':<18} {'family':<10} {'input':<11} {'frames':>6} {'size':>5} {'params':>9}  description"]
    for n in names:
        s = get_spec(n)
        count = ""
        if params:
            try:
                count = f"{count_parameters(create_model(n, num_classes=400)) / 1e6:.2f}M"
            except Exception as e:  # an optional dependency missing: say so, keep listing
                count = f"n/a ({type(e).__name__})"
        rows.append(f"{n:<18} {s.family:<10} {s.modality:<11} {s.frames:>6} {s.size:>5} {count:>9}  {s.description}")
    return "\n".join(rows)


def quiet_weight_loading() -> None:
    """Counting parameters builds text_st, whose sentence-transformers load shows a progress bar: not here."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
