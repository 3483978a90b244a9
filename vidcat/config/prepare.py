"""Commands that make and prepare data: ``vidcat synth``, ``prepare`` and ``flow``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidcat.config.data import FLOW_METHODS
from vidcat.config.fields import check_fields, opt, part_of, require
from vidcat.config.runtime import Runtime
from vidcat.errors import VidcatError


@dataclass
class SynthConfig:
    """Size and difficulty of a synthetic benchmark."""

    kind: str = opt("motion", "motion (direction of motion), av (axis x pitch), avt (axis x pitch x subtitle)",
                    choices=("motion", "av", "avt"))
    per_class: int = opt(60, "training videos per class; val and test get a quarter each", min=1)
    size: int = opt(64, "frame side in pixels", min=16)
    frames: int = opt(24, "frames per video", min=2)
    fps: int = opt(12, "frame rate", min=1)
    seed: int = opt(0, "random seed")
    rotate: bool = opt(False, "add cw/ccw rotation classes (motion)")
    distractors: int = opt(0, "moving objects whose motion is independent of the class", min=0)
    jitter: float = opt(0.0, "camera shake, pixels (std)", min=0.0)
    crf: int = opt(23, "H.264 quality: higher = stronger compression artefacts", min=0, max=51)
    missing_audio: float = opt(0.0, "fraction of videos written without their audio track (av, avt)", min=0.0, max=1.0)
    missing_text: float = opt(0.0, "fraction written without subtitles (avt)", min=0.0, max=1.0)

    def __post_init__(self):
        check_fields(self)


@dataclass
class SynthCommand(part_of(Runtime, "progress")):
    """``vidcat synth OUT``: a synthetic benchmark of real encoded videos + train/val/test.csv."""

    out: str = opt(None, "output folder", positional=True)
    synth: SynthConfig = opt(None, "", factory=SynthConfig, nested=True)

    def __post_init__(self):
        require(self, "out")
        check_fields(self)


@dataclass
class PrepareConfig:
    """Options of ``vidcat prepare``."""

    data: str = opt("", "folder-per-class tree, CSV/JSONL manifest, or a folder with train.csv/val.csv/test.csv",
                    positional=True)
    out: str = opt("", "output folder", required=True)
    short_side: int = opt(128, "short side in pixels (>= the model's decode size, e.g. 73 for tiny3d, 128 for "
                               "112-px models)")
    gop: int = opt(16, "keyframe every GOP frames (short: cheap seeks)")
    crf: int = opt(20, "H.264 quality (lower = better, bigger)")
    preset: str = opt("veryfast", "x264 preset")
    audio: bool = opt(True, "drop audio streams", flag="--no-audio", invert=True)
    overwrite: bool = opt(False, "re-encode files already in OUT")
    measure: int = opt(6, "files whose clip decode time is measured before/after")
    frames: int = opt(16, "frames per measured clip")

    def __post_init__(self):
        if not self.data:
            raise VidcatError("prepare: give the data set to re-encode")
        if not self.out:
            raise VidcatError("--out is required")
        if not Path(self.data).exists():
            raise VidcatError(f"{self.data}: no such file or directory")
        if Path(self.out).resolve() == Path(self.data).resolve():
            raise VidcatError("--out must differ from the data set (files are re-encoded into it)")
        if self.short_side < 16 or self.short_side % 2:
            raise VidcatError(f"--short-side must be an even number >= 16, not {self.short_side}")
        if self.gop < 1:
            raise VidcatError(f"--gop must be >= 1, not {self.gop}")
        if not 0 <= self.crf <= 51:
            raise VidcatError(f"--crf must be in 0..51, not {self.crf}")
        if self.measure < 0 or self.frames < 1:
            raise VidcatError("--measure must be >= 0 and --frames >= 1")


@dataclass
class FlowConfig(part_of(Runtime, "workers", "strict", "progress", workers=1)):
    """``vidcat flow PATHS... --method M --cache DIR``."""

    paths: tuple = opt(None, "video files or folders (searched recursively)", factory=tuple, positional=True,
                       nargs="+")
    method: str = opt("dis_fast", "dis = dis_fast; mv = codec motion vectors (fastest); tvl1 needs opencv-contrib",
                      choices=FLOW_METHODS)
    cache: str | None = opt(None, "cache folder (created if missing; default: $VIDCAT_CACHE, else "
                                  "$XDG_CACHE_HOME/vidcat, else ~/.cache/vidcat)")
    size: int | None = opt(None, "resize to this short side first (default: native)", min=8)
    raft_weights: str | None = opt(None, "local RAFT state-dict file (no downloads here)")

    def __post_init__(self):
        self.paths = tuple(str(p) for p in (self.paths or ()))
        check_fields(self)
