"""Commands that use trained checkpoints on data sets: ``vidcat eval``, ``features`` and ``fuse``."""
from __future__ import annotations

from dataclasses import dataclass

from vidcat.config.fields import check_fields, csv_tuple, opt, parse_kv, part_of, require
from vidcat.config.runtime import Runtime, Views
from vidcat.errors import VidcatError


@dataclass
class EvalConfig(Runtime, Views):
    """``vidcat eval``: score a checkpoint on held-out data."""

    checkpoint: str = opt(None, "a checkpoint (RUN/best.pt)", required=True)
    source: str = opt(None, "held-out data: folder, CSV/JSONL manifest or split list", flag="--data", required=True)
    json: str | None = opt(None, "write metrics here (+ confusion.png beside it)")
    batch_size: int = opt(8, "videos per batch", min=1)
    ablate: tuple | None = opt(None, "multi-modal models: also score with each of these modalities removed "
                                     "(no value: each of the model's own)", parse=csv_tuple, nargs="?", const=())

    def __post_init__(self):
        require(self, "checkpoint", "source")
        if self.ablate is not None:
            self.ablate = csv_tuple(self.ablate)
        check_fields(self)


@dataclass
class FeaturesConfig(part_of(Runtime, "device", "workers", "strict", "progress", workers=0),
                     part_of(Views, "clips")):
    """``vidcat features``: penultimate-layer embeddings of videos (.npy + .json, or .parquet)."""

    source: str = opt(None, "folder (class tree, manifest folder or flat), CSV/JSONL manifest, or one video",
                      positional=True)
    model: str = opt(None, "a checkpoint (RUN/best.pt) or a registered model name", required=True)
    out: str = opt(None, "FILE.npy (+ FILE.json sidecar) or FILE.parquet (needs pyarrow)", required=True)
    per_clip: bool = opt(False, "also write FILE.clips.npy (N, clips, D)")
    frames: int | None = opt(None, "clip length (default: the model's / checkpoint's)", min=1)
    size: int | None = opt(None, "crop size (default: the model's / checkpoint's)", min=8)
    pretrained: bool = opt(False, "published weights for a model name")
    weights: str | None = opt(None, "local state-dict file for a model name")
    model_kwargs: dict = opt(None, "builder keyword KEY=VALUE (repeatable)", factory=dict, flag="--model-arg",
                             parse=parse_kv, append=True)
    label_regex: str | None = opt(None, "label unlabelled videos from their file name, e.g. 'PS7(A\\d)'")
    batch_size: int = opt(8, "videos per batch", min=1)

    def __post_init__(self):
        require(self, "source", "model", "out")
        check_fields(self)


@dataclass
class FuseConfig(part_of(Runtime, "device", "workers")):
    """``vidcat fuse``: an RGB and a flow/mv checkpoint -> one late-fusion checkpoint (weights tuned on val)."""

    checkpoints: tuple = opt(None, "RGB + flow/mv single-stream checkpoints (or one late/weighted fusion "
                                   "checkpoint to re-tune)", factory=tuple, nargs="+", required=True)
    source: str | None = opt(None, "validation set the fusion weight is tuned on", flag="--data")
    out: str = opt(None, "fused checkpoint to write", required=True)
    steps: int = opt(21, "grid points for the RGB weight in [0, 1]", min=2)
    tune: bool = opt(True, "keep equal weights (plain late fusion)", flag="--no-tune", invert=True)
    batch_size: int = opt(16, "clips per batch", min=1)

    def __post_init__(self):
        require(self, "out")
        self.checkpoints = tuple(self.checkpoints or ())
        if not 1 <= len(self.checkpoints) <= 2:
            raise VidcatError("vidcat fuse takes one or two checkpoints")
        if self.tune and not self.source:
            raise VidcatError("vidcat fuse: --data VAL is needed to tune the weights (or pass --no-tune)")
        check_fields(self)
