"""Resource limits for decoding untrusted media: a bad file cannot hang or exhaust a worker.

Headers lie (a one-byte change can make an AVI claim half a billion frames), so nothing is sized
from them: readers count frames while decoding and stop at these limits with a ``VideoError``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

from vidcat.errors import VidcatError, VideoError


@dataclass(frozen=True)
class DecodeLimits:
    """Per-file limits; change the module default with :func:`set_default_limits`."""

    timeout_s: float = field(default=300.0, metadata={"help": "wall time of one read of one file (s)"})
    max_pixels: int = field(default=8192 * 4320, metadata={"help": "largest frame (width x height)"})
    max_frames: int = field(default=2_000_000, metadata={"help": "frames one whole-file read may decode"})
    max_duration_s: float = field(default=12 * 3600.0, metadata={"help": "longest video accepted (s)"})
    max_array_bytes: int = field(default=4 << 30,
                                 metadata={"help": "largest in-memory whole-file read (bytes)"})

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise VidcatError(f"DecodeLimits.{f.name} must be a positive number, got {v!r}")


DEFAULT_LIMITS = DecodeLimits()


def set_default_limits(limits: DecodeLimits) -> DecodeLimits:
    """Replace the limits used when a reader is given none; returns the previous ones."""
    global DEFAULT_LIMITS
    if not isinstance(limits, DecodeLimits):
        raise VidcatError(f"expected DecodeLimits, got {type(limits).__name__}")
    old, DEFAULT_LIMITS = DEFAULT_LIMITS, limits
    return old


def get_default_limits() -> DecodeLimits:
    return DEFAULT_LIMITS


class Deadline:
    """Wall-clock budget of one read; ``check()`` raises once it is spent."""

    def __init__(self, path, timeout_s: float):
        self.path, self.timeout_s = path, timeout_s
        self.end = time.monotonic() + timeout_s

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise VideoError(self.path, f"decode timed out after {self.timeout_s:g} s "
                                        "(DecodeLimits.timeout_s)")
