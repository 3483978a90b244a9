"""Commands that label videos with a checkpoint: ``vidcat predict`` and ``vidcat timeline``."""
from __future__ import annotations

from dataclasses import dataclass

from vidcat.config.fields import check_fields, opt, part_of, require
from vidcat.config.runtime import Runtime, Views
from vidcat.errors import VidcatError


@dataclass
class PredictConfig(part_of(Runtime, "device", "threads", "strict", "progress"), Views):
    """``vidcat predict``: one JSON record per video."""

    checkpoint: str | None = opt(None, "a checkpoint (RUN/best.pt), or an exported model.onnx (ONNX Runtime, no torch)")
    onnx: str | None = opt(None, "an exported model.onnx: predict with ONNX Runtime, PyAV and numpy only (no torch)")
    paths: tuple = opt(None, "video files or folders (searched recursively)", factory=tuple, positional=True,
                       nargs="+")
    topk: int = opt(5, "labels per record", min=1)
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
class TimelineConfig(part_of(Runtime, "device")):
    """``vidcat timeline``: per-window scores over a long video (CSV, JSON, PNG)."""

    checkpoint: str = opt(None, "a checkpoint (RUN/best.pt)", required=True)
    video: str = opt(None, "the video to scan", positional=True)
    window: float = opt(2.0, "window length in seconds", gt=0)
    stride: float = opt(1.0, "seconds between window starts", gt=0)
    out: str = opt(None, "folder for timeline.csv, .json, .png", required=True)
    shots: bool = opt(True, "let windows straddle shot cuts (no cut detection)", flag="--no-shots", invert=True)
    fast: str | None = opt(None, "fastest inference variant that agrees with eager: auto, or a variant name")

    def __post_init__(self):
        require(self, "checkpoint", "video", "out")
        check_fields(self)
