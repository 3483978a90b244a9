"""User-facing errors: the CLI prints them as one line and exits non-zero (no traceback)."""
from __future__ import annotations


class VidcatError(Exception):
    """A problem with the user's input or configuration, explained in one line."""


class VideoError(VidcatError):
    """A single media file could not be used; names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
