"""``vidcat pose`` and ``vidcat transcribe``: look at what the pose and speech streams see in one video."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from vidcat.cli.common import command
from vidcat.config import opt, require
from vidcat.errors import VidcatError

OVERLAY_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".png", ".jpg", ".jpeg")
TRANSCRIPT_FORMATS = ("text", "srt", "json")


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


@dataclass
class TranscribeConfig:
    """``vidcat transcribe VIDEO``: the speech in a video's audio track (Whisper tiny.en, offline)."""

    video: str = opt(None, "a video (or audio) file", positional=True)
    format: str = opt("text", "output format", choices=TRANSCRIPT_FORMATS)

    def __post_init__(self):
        require(self, "video")


def run_pose(cfg: PoseConfig) -> int:
    from vidcat.extras import require as require_extra
    from vidcat.io import pose

    require_extra("pose")
    if cfg.json:
        kp, mask = pose.pose_keypoints(cfg.video, frames=cfg.frames, hands=cfg.hands)
        print(json.dumps({"video": cfg.video, "mask": mask.tolist(),
                          "keypoints": pose.normalise(kp, mask).astype(float).round(4).tolist()}))
    if cfg.out:
        r = pose.write_overlay(cfg.video, cfg.out, frames=cfg.frames, hands=cfg.hands)
        print(f"{r['out']}: a person in {r['found']}/{r['frames']} frames", file=sys.stderr if cfg.json else sys.stdout)
    return 0


def run_transcribe(cfg: TranscribeConfig) -> int:
    from vidcat.extras import require as require_extra
    from vidcat.io.speech import to_srt, transcribe

    require_extra("speech")
    t = transcribe(cfg.video)
    if cfg.format == "json":
        print(json.dumps(t, indent=1))
    elif cfg.format == "srt":
        sys.stdout.write(to_srt(t))
    elif t["text"]:
        print(t["text"])
    return 0


def add_commands(sub) -> None:
    command(sub, "pose", "draw the body (and hand) keypoints the pose stream sees on a video", PoseConfig, run_pose)
    command(sub, "transcribe", "transcribe a video's speech (what the text stream reads when it has no subtitles)",
            TranscribeConfig, run_transcribe)
