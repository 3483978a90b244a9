"""Turn the paths a user gives into the videos to process, and a reason for each one that gives none.

Shared by ``predict`` and the motion cache so that every input path (a file, a folder, a missing
path, a symlink loop, a folder without videos) ends up as exactly one record or one error.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterable

from vidcat.errors import VidcatError
from vidcat.io.video import find_videos

NO_VIDEOS = "no videos found in"


def path_problem(p: Path) -> str | None:
    """Why ``p`` cannot be opened at all (missing, dangling link, loop, no permission), or None."""
    try:
        p.stat()
    except FileNotFoundError:
        return "broken symbolic link (target missing)" if p.is_symlink() else "no such file or directory"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"cannot open ({e.strerror or e})"
    return None


def expand_inputs(paths: Iterable | str | os.PathLike) -> list[tuple[Path, str | None]]:
    """``(video, None)`` for each file under ``paths`` (folders recurse, in order) and ``(path, reason)``
    for each input that cannot give one: missing, a link loop, a folder without videos.

    Raises :class:`VidcatError` when there is nothing to try: no inputs, or only folders without videos.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    roots = [Path(p) for p in paths]
    if not roots:
        raise VidcatError("no input paths given")
    entries: list[tuple[Path, str | None]] = []
    for root in roots:
        problem = path_problem(root)
        if problem is None and root.is_dir():
            files = find_videos(root)
            entries += [(f, None) for f in files] or [(root, f"{NO_VIDEOS} {root}")]
        else:
            entries.append((root, problem))
    if all(reason is not None and reason.startswith(NO_VIDEOS) for _, reason in entries):
        raise VidcatError(f"{NO_VIDEOS} {', '.join(str(r) for r in roots)}")
    return entries
