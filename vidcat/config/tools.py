"""Commands that inspect: ``vidcat models``, ``report``, ``weights``, and ``pose`` / ``transcribe`` (what the
pose and speech streams see in one video)."""
from __future__ import annotations

from dataclasses import dataclass

from vidcat.config.fields import check_fields, opt, require
from vidcat.errors import VidcatError

OVERLAY_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".png", ".jpg", ".jpeg")
TRANSCRIPT_FORMATS = ("text", "srt", "json")


@dataclass
class ModelsConfig:
    """``vidcat models``: the registry (family, input, parameters)."""

    family: str | None = opt(None, "only this family (2d, 3d, recurrent, transformer, audio, text, fusion)")
    json: bool = opt(False, "JSON instead of a table")
    params: bool = opt(True, "skip building models to count parameters", flag="--no-params", invert=True)


@dataclass
class ReportConfig:
    """``vidcat report RUN``: RUN/report.md from a run's files."""

    run: str = opt(None, "a run folder (vidcat train --out)", positional=True)

    def __post_init__(self):
        require(self, "run")


@dataclass
class WeightsConfig:
    """``vidcat weights``: every catalogue entry (model:tag, backbones, encoders, bundled files), whether it
    resolves on this machine and from where, its input, licence and sha256."""

    json: bool = opt(False, "print the rows as JSON")
    download: bool = opt(False, "also fetch missing backbone weights from the Hugging Face hub when it is reachable")

    def __post_init__(self):
        for f in ("json", "download"):
            if not isinstance(getattr(self, f), bool):
                raise VidcatError(f"weights: {f} must be true or false, not {getattr(self, f)!r}")


@dataclass
class PoseConfig:
    """``vidcat pose VIDEO --out overlay.mp4|.png``: draw the detected skeleton on the video's frames."""

    video: str = opt(None, "a video file", positional=True)
    out: str = opt(None, "overlay to write: a video (.mp4 .mkv .avi .webm) or an image row (.png .jpg)")
    frames: int | None = opt(None, "frames to draw, evenly spread (default: all up to 300 for a video, 4 for an "
                                   "image)", min=1)
    hands: bool = opt(False, "also detect and draw hand landmarks")
    json: bool = opt(False, "print the normalised keypoints and person mask as JSON instead of a summary")

    def __post_init__(self):
        require(self, "video")
        if self.out is None and not self.json:
            raise VidcatError("pose: give --out overlay.mp4|.png (or --json)")
        if self.out is not None and not self.out.lower().endswith(OVERLAY_SUFFIXES):
            raise VidcatError(f"pose: --out must end in one of {' '.join(OVERLAY_SUFFIXES)}, not {self.out!r}")
        check_fields(self)


@dataclass
class TranscribeConfig:
    """``vidcat transcribe VIDEO``: the speech in a video's audio track (Whisper tiny.en, offline)."""

    video: str = opt(None, "a video (or audio) file", positional=True)
    format: str = opt("text", "output format", choices=TRANSCRIPT_FORMATS)

    def __post_init__(self):
        require(self, "video")
        check_fields(self)
