"""``vidcat train`` and ``vidcat cv``: :class:`TrainConfig` (with :class:`DataConfig` nested) and
:class:`CVConfig`."""
from __future__ import annotations

from dataclasses import dataclass

from vidcat.config.data import DataConfig
from vidcat.config.fields import check_fields, csv_tuple, opt, parse_kv, require
from vidcat.config.runtime import Runtime, Views
from vidcat.errors import VidcatError

STREAMS = ("appearance", "motion", "pose", "audio", "text")   # the default model's streams


def _model_args(items) -> dict:
    return dict(items) if not isinstance(items, dict) else items


@dataclass
class TrainConfig(Runtime):
    """Everything ``vidcat train`` needs; one CLI flag per field (``data`` adds DataConfig's flags)."""

    source: str = opt(None, "folder-per-class tree, CSV/JSONL manifest or split list", flag="--data", required=True)
    out: str = opt(None, "run folder: best.pt, last.pt, history.csv, curves.png, config.json", required=True)
    model: str | None = opt(None, "registered model (default: chosen from --modalities, see `vidcat models`)")
    val: str | None = opt(None, "validation set (default: val.csv beside the training manifest, else --val-split)")
    val_split: float = opt(0.1, "stratified fraction held out for validation when there is no --val "
                                "(0 = none: best.pt is then the last epoch)", min=0.0, max=0.5)
    epochs: int = opt(15, "training epochs", min=1)
    batch_size: int = opt(8, "clips per step (small batches: more updates from few clips)", min=1)
    lr: float = opt(2e-3, "peak learning rate (AdamW)", min=0.0)
    weight_decay: float = opt(0.05, "AdamW weight decay", min=0.0)
    warmup_epochs: float = opt(1.0, "linear warm-up epochs", flag="--warmup", min=0.0)
    clip_grad: float = opt(5.0, "gradient-norm clip", gt=0.0)
    nproc: int = opt(1, "training processes on this machine (torchrun: gloo on CPU, NCCL on GPU)", min=1)
    seed: int = opt(0, "random seed")
    pretrained: bool = opt(False, "start from published weights (offline packages first, then the hub)")
    weights: str | None = opt(None, "weights to start from: a tag of the model (vidcat weights lists them) or a "
                                    "local state-dict file")
    freeze_backbone: bool = opt(False, "train only the classifier head")
    backbone_lr_mult: float = opt(1.0, "learning-rate factor of the backbone", min=0.0)
    resume: str | None = opt(None, "continue from OUT/last.pt (an error when there is none); 'auto': continue "
                                   "if there is one, else start", nargs="?", const="yes", choices=("yes", "auto"))
    group_regex: str | None = opt(None, "group of each video from its file name (else path), e.g. 'P(\\d)' or "
                                        "'_g(\\d+)_': clips of one group never sit on both sides of a validation "
                                        "split (default: the manifest's group column; the default model then "
                                        "groups near-duplicate clips itself)")
    cache: str | None = opt(None, "cache folder for features and other artefacts (default: $VIDCAT_CACHE, else "
                                  "$XDG_CACHE_HOME/vidcat, else ~/.cache/vidcat)")
    ray: bool = opt(False, "default model: extract its features as a Ray Data job (workers write the shared "
                           "cache; the head is fitted here)")
    address: str | None = opt(None, "Ray cluster to join with --ray (default: $RAY_ADDRESS, else a local Ray)")
    streams: tuple | None = opt(None, "default model: the streams to fit, e.g. appearance,pose (default: those a probe "
                                      "of a sample of clips finds, then chosen by grouped CV)", parse=csv_tuple,
                                choices=STREAMS, many=True)
    max_steps: int | None = opt(None, "stop after this many steps (smoke tests)", min=1)
    model_kwargs: dict = opt(None, "builder keyword KEY=VALUE (repeatable)", factory=dict, flag="--model-arg",
                             parse=parse_kv, append=True)
    data: DataConfig = opt(None, "", factory=DataConfig, nested=True)

    def __post_init__(self):
        require(self, "source", "out")
        self.resume = {True: "yes", False: None}.get(self.resume, self.resume) if isinstance(self.resume, bool) \
            else self.resume
        if isinstance(self.data, dict):
            self.data = DataConfig.from_dict(self.data)
        self.model_kwargs = _model_args(self.model_kwargs or {})
        if self.streams is not None:
            self.streams = tuple(dict.fromkeys(csv_tuple(self.streams))) or None
        check_fields(self)


@dataclass
class CVConfig(Views):
    """``vidcat cv``: grouped k-fold / leave-one-group-out cross-validation (training options: TrainConfig)."""

    folds: int | None = opt(None, "K grouped folds, stratified by label (default: leave one group out)", min=2)
    logo: bool = opt(False, "leave one group out (the default; the protocol's name, for scripts)")
    label_regex: str | None = opt(None, "label videos from their file name, e.g. 'PS7(A\\d)' (flat folders)")
    curve: bool = opt(False, "learning curve: also train every fold on 25, 50 and 75 % of its training groups "
                             "(pooled top-1 with a 95% interval per fraction: does labelling more help?)")

    def __post_init__(self):
        if self.logo and self.folds:
            raise VidcatError("--logo and --folds exclude each other")
        check_fields(self)
