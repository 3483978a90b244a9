"""Typed settings: the one source of every option's default, help text and validity.

``DataConfig`` (how a video becomes model input), ``TrainConfig``, ``EvalConfig`` and
``PredictConfig``. The CLI builds its flags from these fields (``vidcat.cli.options``), the Python
API and cross-validation take the same classes, and checkpoints store a resolved ``DataConfig``.
Each class validates its fields in ``__post_init__``: a bad value is one :class:`VidcatError` line
naming the option.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from vidcat.errors import VidcatError

SAMPLERS = ("clip", "tsn")
AMP_MODES = ("none", "bf16")
FLOW_METHODS = ("dis", "dis_ultrafast", "dis_fast", "dis_medium", "farneback", "tvl1", "raft", "raft_small",
                "raft_large", "mv")
MODALITIES = ("video", "audio", "text", "flow", "mv", "pose")
STREAMS = ("appearance", "motion", "pose", "audio", "text")   # the default model's streams
TEXT_SOURCES = ("subtitles", "metadata", "manifest")  # the text stream's free sources (--speech, --ocr: extras)
# Input normalisations (mean, std of [0, 1] RGB pixels), each defined once: the registry, the weight
# entries and the generic data pipeline take them from here.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)   # torchvision's Kinetics-400 video models
KINETICS_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN = (0.485, 0.456, 0.406)          # PyTorch-trained ImageNet CNNs
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN = HALF_STD = (0.5, 0.5, 0.5)         # TensorFlow-trained EfficientNet-Lite: (pixel - 127) / 128
PYTORCHVIDEO_MEAN = (0.45, 0.45, 0.45)         # PyTorchVideo's Kinetics models (X3D, MViT)
PYTORCHVIDEO_STD = (0.225, 0.225, 0.225)
MULTI_STREAM = "multi"  # a model's input_key / spec modality when it takes the whole batch dict (fusion)


@dataclass(frozen=True)
class SamplerConfig:
    """``mode``: "clip" = T consecutive frames ``stride`` apart; "tsn" = one frame in each of T
    equal segments (Wang et al. 2016), covering the whole video whatever its length. The samplers
    themselves are in :mod:`vidcat.data.sampling`."""

    mode: str = "clip"
    frames: int = 16
    stride: int = 1


def opt(default=None, help: str = "", *, factory=None, **meta):
    """A dataclass field with CLI metadata: ``help``, and optionally ``flag`` (the option's spelling),
    ``choices``, ``parse`` (str -> value), ``positional``, ``required``, ``invert`` (a ``--quiet``-style
    flag that sets a True-by-default field to False), ``cli=False`` (API only)."""
    meta["help"] = help
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def csv_tuple(s) -> tuple:
    """``"video,audio"`` -> ``("video", "audio")``; tuples and lists pass through."""
    if isinstance(s, (list, tuple)):
        return tuple(s)
    return tuple(x.strip() for x in str(s).split(",") if x.strip())


# -- validation helpers (each names the option as the user typed it) ---------------------------------
def _check(ok: bool, name: str, want: str, value) -> None:
    if not ok:
        raise VidcatError(f"{name} must be {want}, not {value!r}")


def check_fields(obj) -> None:
    """Type-independent checks driven by metadata: ``choices``, ``min`` (inclusive), ``gt`` (exclusive),
    ``max``; ``None`` is allowed for optional fields."""
    for f in fields(obj):
        v, m, name = getattr(obj, f.name), f.metadata, flag_name(f)
        if v is None:
            continue
        if "choices" in m:
            values = v if isinstance(v, tuple) and m.get("many") else (v,)
            bad = [x for x in values if x not in m["choices"]]
            _check(not bad, name, "one of " + ", ".join(map(str, m["choices"])), ",".join(map(str, bad)) if m.get("many") else v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        _check(not isinstance(v, float) or math.isfinite(v), name, "a finite number", v)
        if "min" in m:
            _check(v >= m["min"], name, f">= {m['min']}", v)
        if "gt" in m:
            _check(v > m["gt"], name, f"> {m['gt']}", v)
        if "max" in m:
            _check(v <= m["max"], name, f"<= {m['max']}", v)


def require(obj, *names) -> None:
    for f in fields(obj):
        if f.name in names and getattr(obj, f.name) in (None, ""):
            raise VidcatError(f"{flag_name(f)} is required")


@dataclass
class DataConfig:
    """How a video becomes model input. ``None`` fields take the model's own value when the
    config is resolved for a model (:meth:`resolved`); checkpoints store the resolved config."""

    frames: int | None = opt(None, "frames per clip (default: the model's)", min=1)
    stride: int | None = opt(None, "frame step inside a clip (clip sampler; default: the model's, mostly 1)", min=1)
    sampler: str | None = opt(None, "clip (consecutive frames) or tsn (one per segment); default: the model's",
                              choices=SAMPLERS)
    size: int | None = opt(None, "crop side in pixels (default: the model's)", min=8)
    short_side: int | None = opt(None, "decode-time resize of the short side (default: size * 8/7)", min=8)
    mean: tuple | None = opt(None, "normalisation mean (default: the model's)", cli=False)
    std: tuple | None = opt(None, "normalisation std (default: the model's)", cli=False)
    hflip: bool = opt(False, "random horizontal flips (direction-free labels only)")
    crop_scale: tuple = opt((0.7, 1.0), "random crop side range, as a fraction of the short side", cli=False)
    modalities: tuple | None = opt(None, "streams to read, e.g. video,audio,text or rgb,flow (default: the model's)",
                                   parse=csv_tuple, choices=MODALITIES, many=True)
    audio_seconds: float | None = opt(None, "audio window centred on the clip (default: the clip's span)", gt=0)
    audio_frames: int | None = opt(None, "time frames of the audio log-mel: the clip's span (or --audio-seconds "
                                         "window) resampled to this many (default: 101, or the window's own "
                                         "count with --audio-seconds)", min=8, max=6000)
    n_mels: int = opt(64, "mel bands of the audio stream", min=8)
    flow_method: str = opt("dis_fast", "flow stream's method", choices=FLOW_METHODS)
    flow_length: int = opt(1, "L motion fields stacked per sampled frame (2L channels)", min=1)
    motion_cache: str | None = opt(None, "folder filled by `vidcat flow` (computed on the fly when absent)")
    clip_cache: str | None = opt(None, "folder of decoded frames reused across epochs (training only: epochs after "
                                       "the first decode nothing)")
    pose_hands: bool = opt(False, "pose stream: add 2 x 21 hand landmarks to the 33 body ones (vidcat[pose])")
    text_sources: tuple = opt(TEXT_SOURCES, "text stream: subtitles (sidecar or embedded), container metadata "
                                            "(never values naming the file) and the manifest's text column",
                              parse=csv_tuple, choices=TEXT_SOURCES, many=True)
    speech: bool = opt(False, "text stream: transcribe the audio track when a video has no subtitles and a "
                              "voice is heard (vidcat[speech])")
    ocr: bool = opt(False, "text stream: read the text shown on a few frames of the video (vidcat[ocr])")

    def __post_init__(self):
        if self.modalities is not None:
            # "rgb" is the two-stream papers' name for the video stream
            mods = csv_tuple(self.modalities)
            self.modalities = tuple(dict.fromkeys("video" if m == "rgb" else m for m in mods))
            if not self.modalities:
                raise VidcatError("--modalities names no stream")
            if "pose" in self.modalities:
                from vidcat.extras import require

                require("pose")
        self.text_sources = tuple(dict.fromkeys(csv_tuple(self.text_sources)))
        if self.modalities is None or "text" in self.modalities:
            self._check_text_stream()
        for name in ("mean", "std", "crop_scale"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(getattr(self, name)))
        lo, hi = self.crop_scale
        _check(0 < lo <= hi <= 1, "crop_scale", "0 < lo <= hi <= 1", self.crop_scale)
        check_fields(self)

    def _check_text_stream(self) -> None:
        """The text stream reads something, and the extras its costly sources need are installed."""
        from vidcat.extras import require

        if self.modalities is not None and not (self.text_sources or self.speech or self.ocr):
            raise VidcatError("--text-sources is empty and neither --speech nor --ocr is set: the text stream "
                              "would read nothing")
        for extra in ("speech", "ocr"):
            if getattr(self, extra):
                require(extra)

    def resolved(self, spec) -> "DataConfig":
        """A copy with every ``None`` replaced by what the model ``spec`` expects."""
        fill = {"modalities": tuple(spec.defaults.get("modalities", (spec.modality,)))
                if spec.modality == MULTI_STREAM else (spec.modality,),
                "audio_frames": spec.defaults.get("audio_frames")}   # a model may want a finer audio time axis
        if spec.modality not in ("audio", "text"):
            # an audio/text model's own frames/size describe mel frames, not the clip: keep 16 frames there
            fill.update(frames=spec.frames, size=spec.size, sampler=spec.sampler, stride=spec.stride,
                        mean=tuple(spec.mean), std=tuple(spec.std))
        else:
            fill.update(frames=16, size=64, sampler="clip", stride=1, mean=tuple(spec.mean), std=tuple(spec.std))
        return replace(self, **{k: v for k, v in fill.items() if getattr(self, k) is None})

    def filled(self) -> "DataConfig":
        """A copy with every ``None`` set to the generic input (16x64² clips, Kinetics normalisation, video):
        for using the data pipeline without a model; training resolves for its model instead."""
        generic = dict(frames=16, size=64, sampler="clip", stride=1, mean=KINETICS_MEAN,
                       std=KINETICS_STD, modalities=("video",))
        return replace(self, **{k: v for k, v in generic.items() if getattr(self, k) is None})

    @property
    def sampler_config(self) -> SamplerConfig:
        f = self.filled()
        return SamplerConfig(f.sampler, f.frames, f.stride)

    @property
    def decode_short_side(self) -> int:
        return self.short_side or int(round(self.size * 8 / 7))

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)


def _model_args(items) -> dict:
    return dict(items) if not isinstance(items, dict) else items


def parse_kv(s: str) -> tuple[str, object]:
    """``KEY=VALUE`` with a JSON value when it parses (``fusion=late``, ``hidden=128``)."""
    import json

    if "=" not in s or not s.split("=", 1)[0].strip():
        raise ValueError("wants KEY=VALUE")
    k, v = s.split("=", 1)
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


@dataclass
class TrainConfig:
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
    amp: str = opt("none", "autocast: bf16 or none", choices=AMP_MODES)
    device: str = opt("cpu", "cpu | cuda | cuda:N")
    workers: int = opt(2, "data-loader processes", min=0)
    threads: int = opt(0, "torch intra-op threads (0 = leave as is)", min=0)
    nproc: int = opt(1, "training processes on this machine (torchrun: gloo on CPU, NCCL on GPU)", min=1)
    seed: int = opt(0, "random seed")
    pretrained: bool = opt(False, "start from published weights (offline packages first, then the hub)")
    weights: str | None = opt(None, "weights to start from: a tag of the model (vidcat weights lists them) or a "
                                    "local state-dict file")
    freeze_backbone: bool = opt(False, "train only the classifier head")
    backbone_lr_mult: float = opt(1.0, "learning-rate factor of the backbone", min=0.0)
    resume: str | None = opt(None, "continue from OUT/last.pt (an error when there is none); 'auto': continue "
                                   "if there is one, else start", nargs="?", const="yes", choices=("yes", "auto"))
    strict: bool = opt(False, "fail on the first unreadable file")
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
    progress: bool = opt(True, "no progress bars", flag="--quiet", invert=True)
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
class EvalConfig:
    """``vidcat eval``: score a checkpoint on held-out data."""

    checkpoint: str = opt(None, "a checkpoint (RUN/best.pt)", required=True)
    source: str = opt(None, "held-out data: folder, CSV/JSONL manifest or split list", flag="--data", required=True)
    clips: int = opt(1, "evenly spaced clips per video (test views, averaged)", min=1)
    crops: int = opt(1, "spatial crops per clip: 1 (centre) or 3 (along the long side)", choices=(1, 3))
    json: str | None = opt(None, "write metrics here (+ confusion.png beside it)")
    batch_size: int = opt(8, "videos per batch", min=1)
    ablate: tuple | None = opt(None, "multi-modal models: also score with each of these modalities removed "
                                     "(no value: each of the model's own)", parse=csv_tuple, nargs="?", const=())
    device: str = opt("cpu", "cpu | cuda | cuda:N")
    workers: int = opt(2, "data-loader processes", min=0)
    threads: int = opt(0, "torch intra-op threads (0 = leave as is)", min=0)
    amp: str = opt("none", "autocast: bf16 or none", choices=AMP_MODES)
    strict: bool = opt(False, "fail on the first unreadable file")
    progress: bool = opt(True, "no progress bars", flag="--quiet", invert=True)

    def __post_init__(self):
        require(self, "checkpoint", "source")
        if self.ablate is not None:
            self.ablate = csv_tuple(self.ablate)
        check_fields(self)


@dataclass
class PredictConfig:
    """``vidcat predict``: one JSON record per video."""

    checkpoint: str | None = opt(None, "a checkpoint (RUN/best.pt), or an exported model.onnx (ONNX Runtime, no torch)")
    onnx: str | None = opt(None, "an exported model.onnx: predict with ONNX Runtime, PyAV and numpy only (no torch)")
    paths: tuple = opt(None, "video files or folders (searched recursively)", factory=tuple, positional=True,
                       nargs="+")
    topk: int = opt(5, "labels per record", min=1)
    clips: int = opt(1, "evenly spaced clips per video (averaged)", min=1)
    crops: int = opt(1, "spatial crops per clip: 1 or 3", choices=(1, 3))
    device: str = opt("cpu", "cpu | cuda | cuda:N")
    threads: int = opt(0, "torch intra-op threads (0 = leave as is)", min=0)
    strict: bool = opt(False, "stop at the first unreadable file")
    progress: bool = opt(True, "no notices on stderr (the records still go to stdout)", flag="--quiet", invert=True)
    long_seconds: float = opt(60.0, "files longer than this are scored in 2 s windows over their shots, and the "
                                    "windows' scores aggregated (0 = one clip per file, as for short ones)", min=0.0)
    fast: str | None = opt(None, "use the fastest inference variant that agrees with eager: auto, or a variant "
                                 "name (channels_last, bf16, compile, ort_fp32, ort_int8, ...)")

    def __post_init__(self):
        if self.onnx:
            if self.checkpoint and self.checkpoint != self.onnx:
                raise VidcatError("give --checkpoint or --onnx, not both")
            if not self.onnx.lower().endswith(".onnx"):
                raise VidcatError(f"--onnx wants an exported .onnx file, not {self.onnx}")
            self.checkpoint = self.onnx
        if not self.checkpoint:
            raise VidcatError("--checkpoint (or --onnx) is required")
        self.paths = tuple(str(p) for p in (self.paths or ()))
        check_fields(self)


@dataclass
class CVConfig:
    """``vidcat cv``: grouped k-fold / leave-one-group-out cross-validation (training options: TrainConfig)."""

    folds: int | None = opt(None, "K grouped folds, stratified by label (default: leave one group out)", min=2)
    logo: bool = opt(False, "leave one group out (the default; the protocol's name, for scripts)")
    label_regex: str | None = opt(None, "label videos from their file name, e.g. 'PS7(A\\d)' (flat folders)")
    clips: int = opt(1, "test clips per video", min=1)
    crops: int = opt(1, "test crops per clip: 1 or 3", choices=(1, 3))
    curve: bool = opt(False, "learning curve: also train every fold on 25, 50 and 75 % of its training groups "
                             "(pooled top-1 with a 95% interval per fraction: does labelling more help?)")

    def __post_init__(self):
        if self.logo and self.folds:
            raise VidcatError("--logo and --folds exclude each other")
        check_fields(self)
