"""``vidcat pose`` and ``vidcat transcribe``: look at what the pose and speech streams see in one video."""
from __future__ import annotations

import json
import sys

from vidcat.cli.common import command
from vidcat.config import PoseConfig, TranscribeConfig


def run_pose(cfg: PoseConfig) -> int:
    from vidcat.config.extras import require as require_extra
    from vidcat.io import pose

    require_extra("pose")
    if cfg.json:
        rec = pose.pose_record(cfg.video, frames=cfg.frames, hands=cfg.hands)
        print(json.dumps({"video": cfg.video, "mask": rec.body.tolist(), "hands": rec.hands.tolist(),
                          "keypoints": pose.normalise(rec.kp, rec.body).astype(float).round(4).tolist()}))
    if cfg.out:
        r = pose.write_overlay(cfg.video, cfg.out, frames=cfg.frames, hands=cfg.hands)
        hands = f", hands without a body in {r['hands_only']}" if r["hands_only"] else ""
        print(f"{r['out']}: a person in {r['found']}/{r['frames']} frames{hands}",
              file=sys.stderr if cfg.json else sys.stdout)
    return 0


def run_transcribe(cfg: TranscribeConfig) -> int:
    from vidcat.config.extras import require as require_extra
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
