"""Content digests of files, memoised per (path, size, mtime) in this process."""
from __future__ import annotations

import hashlib
import os

_MEMO: dict[tuple, str] = {}


def file_digest(path, span: int | None = None) -> str:
    """sha256 hex digest of a file's bytes: all of them, or -- with ``span`` and a file larger than
    ``2 * span`` -- its first and last ``span`` bytes (cheap for multi-GB videos)."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns, span)
    if key not in _MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            if span is not None and st.st_size > 2 * span:
                h.update(f.read(span))
                f.seek(-span, os.SEEK_END)
                h.update(f.read(span))
            else:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        _MEMO[key] = h.hexdigest()
    return _MEMO[key]
