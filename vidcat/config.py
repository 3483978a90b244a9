"""Typed settings shared by training, evaluation and prediction (saved inside checkpoints)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from vidcat.data.sampling import SamplerConfig


@dataclass
class DataConfig:
    """How a video becomes model input: which frames, what size, which modalities."""

    frames: int = 16
    stride: int = 1
    sampler: str = "clip"              # clip | tsn
    size: int = 64
    short_side: int | None = None      # decode-time resize; default size * 8/7
    mean: tuple = (0.43216, 0.394666, 0.37645)
    std: tuple = (0.22803, 0.22145, 0.216989)
    hflip: bool = False                # off: flipping changes direction-of-motion classes
    crop_scale: tuple = (0.7, 1.0)
    modalities: tuple = ("video",)
    audio_seconds: float | None = None  # audio window; None = the clip's own time span
    n_mels: int = 64
    flow_method: str = "dis_fast"      # flow | mv streams: dis_fast, dis_medium, farneback, raft, mv
    flow_length: int = 1               # L consecutive fields stacked per sampled frame (2L channels)
    motion_cache: str | None = None    # folder written by `vidcat flow`; computed on the fly when None

    def __post_init__(self):
        # "rgb" is the two-stream papers' name for the video stream
        self.modalities = tuple("video" if m == "rgb" else m for m in self.modalities)

    @property
    def sampler_config(self) -> SamplerConfig:
        return SamplerConfig(self.sampler, self.frames, self.stride)

    @property
    def decode_short_side(self) -> int:
        return self.short_side or int(round(self.size * 8 / 7))

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        names = {f.name for f in fields(cls)}
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**d)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_model(cls, spec, **overrides) -> "DataConfig":
        """The model's expected input (frames, size, mean/std, sampler) with user overrides on top."""
        # an audio/text model's spec frames/size describe its own input (mel frames, none), not the video
        # clip: the clip (which sets the audio/text time span) keeps the defaults, 16 frames like tiny3d
        base = {} if spec.modality in ("audio", "text") else dict(
            frames=spec.frames, size=spec.size, mean=tuple(spec.mean), std=tuple(spec.std), sampler=spec.sampler)
        # the streams the model reads: its own modality (audio_cnn -> audio), or a fusion model's default set
        base["modalities"] = tuple(spec.defaults.get("modalities", ("video",))) if spec.modality == "multi" \
            else (spec.modality,)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(base)


@dataclass
class TrainConfig:
    """Everything ``vidcat train`` needs; the CLI flags map one to one onto these fields."""

    source: str
    out: str
    model: str = "tiny3d"
    val: str | None = None
    val_split: float = 0.0
    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    clip_grad: float = 5.0
    amp: str = "none"                  # none | bf16 (autocast)
    device: str = "cpu"
    workers: int = 2
    threads: int = 0                   # torch intra-op threads; 0 = leave as is
    seed: int = 0
    pretrained: bool = False
    weights: str | None = None
    freeze_backbone: bool = False
    backbone_lr_mult: float = 1.0
    resume: bool = False
    strict: bool = False
    max_steps: int | None = None       # stop early (smoke tests)
    progress: bool = True
    model_kwargs: dict = field(default_factory=dict)
    data_overrides: dict = field(default_factory=dict)  # DataConfig fields; the rest comes from the model
