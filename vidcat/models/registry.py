"""One registry for every model family: ``create_model(name, num_classes, **kw)``, ``list_models()``.

Each family module registers plain builder functions with :func:`register_model`, stating what the
model expects (input modality, frames, size, mean/std) so the data pipeline and ``vidcat models``
can read it without building the network. ``vidcat/models/__init__.py`` imports every family module
(statically: an import error in one of them is an error, never a silently missing model).
"""
from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch.nn as nn

from vidcat.config import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD  # noqa: F401 (re-exported)
from vidcat.errors import VidcatError
from vidcat.weights import CATALOGUE, Weights, match, tags


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
    # a multi-stream model: kwargs -> (model, kwargs) of the stream whose weights set its RGB input
    rgb_stream: Callable[[dict], tuple[str, dict] | None] | None = None

    def info(self) -> dict:
        d = asdict(self)
        d.pop("builder")
        d.pop("rgb_stream")
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


def builder_kwargs(spec: ModelSpec, kwargs: dict) -> dict:
    """The keywords a model is built with: its builder's defaults, the spec's, then ``kwargs``."""
    params = inspect.signature(spec.builder).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return {**defaults, **spec.defaults, **kwargs}


def weights_for(name: str, kwargs: dict | None = None) -> Weights | None:
    """The weights model ``name`` built with ``kwargs`` follows -- those ``pretrained=True`` loads (its
    published weights, or its backbone's), which fix the input it expects -- or None (the model starts from
    scratch; its :class:`ModelSpec` decides the input). A multi-stream model follows its RGB stream's.
    Both :func:`create_model` (``model.weights``) and ``setup_model`` (the data pipeline) ask this."""
    spec = get_spec(name)
    kw = builder_kwargs(spec, dict(kwargs or {}))
    if spec.rgb_stream is not None:
        stream = spec.rgb_stream(kw)
        return weights_for(*stream) if stream else None
    backbone = kw.get("backbone")
    if isinstance(backbone, str) and backbone.startswith("timm:") and int(kw.get("in_channels", 3)) == 3:
        from vidcat.weights.catalogue import timm_weights

        return timm_weights(name, backbone[5:], spec.frames, spec.size, spec.sampler)
    return match(name, kw)


def tagged_weights(name: str, weights) -> Weights | None:
    """``weights`` as a spec of model ``name``: a :class:`Weights`, or one of the model's catalogue tags;
    None for anything else (a local state-dict file)."""
    if isinstance(weights, Weights):
        if weights.model != name:
            raise VidcatError(f"weights {weights.name} are for {weights.model}, not {name}")
        return weights
    return CATALOGUE.get((name, weights)) if isinstance(weights, str) else None


def create_model(name: str, num_classes: int, **kw) -> nn.Module:
    """Build a registered model with a ``num_classes``-way head.

    ``weights``: a catalogue tag of the model (``vidcat weights`` lists them; builds it the way the tag
    says and loads those weights, like ``pretrained``), a :class:`~vidcat.weights.Weights`, or a local
    state-dict file. ``pretrained``: the model's published weights. The returned module carries
    ``vidcat_spec`` (its :class:`ModelSpec`) and ``weights``: the spec of the weights it follows
    (:func:`weights_for`; like timm's ``pretrained_cfg`` it is there for a random init too), or None.
    """
    spec = get_spec(name)
    weights = kw.pop("weights", None)
    input_key = kw.pop("input_key", None)
    tagged = tagged_weights(name, weights)
    if tagged is not None:
        kw = {**with_tag(tagged, kw), "pretrained": True}
    elif weights and not Path(weights).is_file():
        known = tags(name)
        raise VidcatError(f"weights file {weights} not found" + (f" (nor is it a tag of {name}: {', '.join(known)})"
                                                                  if known else ""))
    args = {**spec.defaults, **kw}
    model = spec.builder(num_classes=num_classes, **args)
    model.vidcat_spec = spec
    model.weights = tagged or weights_for(name, kw)
    # which batch entry a single-stream model reads: its spec's modality unless told otherwise
    # (e.g. a frame CNN trained on the "flow" stream)
    model.input_key = input_key or spec.modality
    if weights and tagged is None:
        from vidcat.models.surgery import load_weights

        load_weights(model, weights)
    return model


def with_tag(w: Weights, kwargs: dict) -> dict:
    """``kwargs`` plus the keywords the tag builds the model with; one line when they contradict it."""
    clash = [k for k, v in w.kwargs if k in kwargs and kwargs[k] != v]
    if clash:
        raise VidcatError(f"weights {w.name} build {w.model} with {clash[0]}={w.model_kwargs[clash[0]]!r}, "
                          f"not {kwargs[clash[0]]!r}")
    return {**kwargs, **w.model_kwargs}


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
