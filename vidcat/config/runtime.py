"""The option groups many commands share, each option defined once: :class:`Runtime` (where and how a
command runs) and :class:`Views` (the test views a video is scored on).

A command inherits a whole group (``class EvalConfig(Runtime, Views)``) or the part it takes
(``part_of(Runtime, "device", "threads")``); the CLI lists a group's flags after the command's own.
"""
from __future__ import annotations

from dataclasses import dataclass

from vidcat.config.fields import check_fields, opt

AMP_MODES = ("none", "bf16")
CROPS = (1, 3)   # the test crops of a clip: the centre, or three along the long side


@dataclass(kw_only=True)
class Runtime:
    """Where and how a command runs: device, processes, threads, precision, what an unreadable file does,
    and whether it reports progress."""

    device: str = opt("cpu", "cpu | cuda | cuda:N", group="runtime")
    workers: int = opt(2, "worker processes (0 = all work in this process)", min=0, group="runtime")
    threads: int = opt(0, "intra-op threads of torch or ONNX Runtime (0 = leave as is)", min=0, group="runtime")
    amp: str = opt("none", "autocast: bf16 or none", choices=AMP_MODES, group="runtime")
    strict: bool = opt(False, "fail on the first unreadable file", group="runtime")
    progress: bool = opt(True, "no progress bars or notices on stderr", flag="--quiet", invert=True, group="runtime")

    def __post_init__(self):
        check_fields(self)


@dataclass(kw_only=True)
class Views:
    """The test views of a video: ``clips`` evenly spaced clip positions x ``crops`` spatial crops, their
    scores averaged."""

    clips: int = opt(1, "evenly spaced test clips per video (their scores averaged)", min=1, group="views")
    crops: int = opt(1, "spatial crops per clip: 1 (centre) or 3 (along the long side)", choices=CROPS,
                     group="views")

    def __post_init__(self):
        check_fields(self)


def check_crops(crops) -> None:
    """The one check of a crop count, wherever it arrives (CLI, API, data pipeline): ``--crops`` must be
    one of 1, 3."""
    Views(crops=crops)
