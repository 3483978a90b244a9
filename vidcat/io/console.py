"""One-line messages on stderr (``vidcat: ...``) that do not break progress bars, and the report of
unreadable or damaged files that training, evaluation, embeddings and preparation share."""
from __future__ import annotations

import sys

from tqdm import tqdm

from vidcat.errors import VidcatError


def echo(msg: str) -> None:
    """One ``vidcat:`` line on stderr that does not break progress bars."""
    tqdm.write(f"vidcat: {msg}", file=sys.stderr)


class SkipReport:
    """Reports each unreadable file once (path + reason), counts them, fails fast under ``strict``;
    damaged but readable files (``warned``) are reported once and counted too."""

    def __init__(self, strict: bool = False, write=None):
        self.strict = strict
        self.seen: dict[str, str] = {}
        self.warned: dict[str, str] = {}
        self.write = write or echo

    def warn(self, warnings) -> None:
        for path, warning in warnings:
            if path not in self.warned:
                self.warned[path] = warning
                self.write(f"damaged {path}: {warning}")

    def __call__(self, skipped) -> None:
        for path, reason in skipped:
            if self.strict:
                raise VidcatError(f"{path}: {reason} (--strict)")
            if path not in self.seen:
                self.seen[path] = reason
                self.write(f"skipped {path}: {reason}")

    def __len__(self):
        return len(self.seen)
