"""How a video becomes model input: :class:`DataConfig` (checkpoints store it resolved for their model),
:class:`SamplerConfig`, and the names and input normalisations the data pipeline and the models share."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from vidcat.config.fields import check, check_fields, csv_tuple, opt
from vidcat.errors import VidcatError

SAMPLERS = ("clip", "tsn")
FLOW_METHODS = ("dis", "dis_ultrafast", "dis_fast", "dis_medium", "farneback", "tvl1", "raft", "raft_small",
                "raft_large", "mv")
MODALITIES = ("video", "audio", "text", "flow", "mv", "pose")
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
    pose_hands: bool = opt(False, "pose stream: add 2 x 21 hand landmarks to the 33 body ones, and hands without "
                                  "a body (first-person footage) from a whole-frame hand detector (vidcat[pose])")
    pose_frames: int = opt(0, "pose stream: keypoints of this many frames evenly spread over the whole video, the "
                              "same for every view (0: the clip's own frames)", min=0)
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
                from vidcat.config.extras import require

                require("pose")
        self.text_sources = tuple(dict.fromkeys(csv_tuple(self.text_sources)))
        if self.modalities is None or "text" in self.modalities:
            self._check_text_stream()
        for name in ("mean", "std", "crop_scale"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(getattr(self, name)))
        lo, hi = self.crop_scale
        check(0 < lo <= hi <= 1, "crop_scale", "0 < lo <= hi <= 1", self.crop_scale)
        check_fields(self)

    def _check_text_stream(self) -> None:
        """The text stream reads something, and the extras its costly sources need are installed."""
        from vidcat.config.extras import require

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
