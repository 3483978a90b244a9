"""The one artefact store: atomic writes, one content key, verified sharded array entries.

Every file vidcat writes (checkpoints, config.json, caches, reports) goes through :func:`atomic_write`:
a temp file in the destination's folder, fsynced, then ``os.replace`` -- readers see the old file or
the new one, never half of one; on any failure the temp file is removed and the error propagates.

Caches (decoded clips, motion fields, frozen features, pose keypoints, transcripts) are :class:`Store`
namespaces under one root (:func:`cache_root`). An entry is one self-describing file::

    b"VCST1\\n" | u32 header length | JSON header | padding to 64 | raw C-order array bytes

The header carries the store format, the namespace version, the entry's own key, dtype, shape and the
sha256 of the array bytes. :meth:`Store.get` verifies all of it (and finiteness for float arrays) before
returning an array; a bad entry -- truncated, garbled, zero-byte, another key's file copied in, a format
from an older vidcat -- is reported in one line, deleted and reported as missing, so the caller
recomputes it. Entries are written once per content key with one rename, so two runs sharing a cache
at most compute an entry twice and both read a valid one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from vidcat.digest import file_digest

MAGIC = b"VCST1\n"
_ALIGN = 64
_MIB = 1 << 20
_STALE_TMP_S = 3600.0


def _current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (os.umask sets as it reads)."""
    try:
        with open("/proc/self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


_UMASK = _current_umask()            # mkstemp makes 0600 files: finished ones get the usual 0666 & ~umask


def cache_root(override=None) -> Path:
    """Root of every vidcat cache: ``override``, else ``$VIDCAT_CACHE``, else ``$XDG_CACHE_HOME/vidcat``,
    else ``~/.cache/vidcat``."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("VIDCAT_CACHE"):
        return Path(os.environ["VIDCAT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vidcat"


def content_key(path) -> str:
    """The one content fingerprint of a file: ``size:sha256(first MiB + last MiB)`` (whole file up to
    2 MiB). Path and mtime are left out on purpose: copies, renames and touched files share entries."""
    return f"{os.stat(path).st_size}:{file_digest(path, span=_MIB)}"


def spec_key(spec: dict) -> str:
    """sha256 hex of a JSON-able spec (sorted keys): the key of an entry made from that spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


@contextmanager
def atomic_open(path, mode: str = "wb", **kw):
    """Open a temp file beside ``path``; on a clean exit it is fsynced and renamed over ``path``.
    ``kw`` (``newline``, ``encoding``) go to :func:`open` for text modes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp-{os.getpid()}")
    try:
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:  # full disk, read-only folder, Ctrl-C: no temp file left behind
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename in (None, tmp):
            e.filename = str(path)  # name the destination, not its temp file
        raise


@contextmanager
def atomic_path(path):
    """A temp path beside ``path`` (same suffix) for writers that want a file name (PyAV, ONNX,
    matplotlib, pyarrow); on a clean exit it is fsynced and renamed over ``path``, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp-{os.getpid()}{path.suffix}")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path, data: bytes | str | Callable) -> Path:
    """Write ``data`` (bytes, text, or a callable taking the open binary file) to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def json_safe(obj):
    """``obj`` as plain JSON values: non-finite floats (NaN, inf) become None, numpy scalars and arrays
    Python numbers and lists, tuples lists; anything else unknown is left for ``json_text``'s ``str``."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (see :func:`json_safe`): what every JSON file vidcat writes holds, so any
    JSON parser reads it (Python's own ``json`` would otherwise write the invalid tokens NaN / Infinity)."""
    return json.dumps(json_safe(obj), indent=indent, default=str, allow_nan=False)


def atomic_write_json(path, obj, indent: int | None = 2) -> Path:
    """``obj`` as strict JSON (:func:`json_text`) in ``path``, written atomically."""
    return atomic_write(path, json_text(obj, indent) + "\n")


def sweep_temp(folder, older_than_s: float = _STALE_TMP_S, recursive: bool = True) -> int:
    """Remove temp files left by killed writers (``*.tmp-<pid>`` older than ``older_than_s``), in
    ``folder`` and (``recursive``) below it."""
    n, now = 0, time.time()
    for p in (Path(folder).rglob if recursive else Path(folder).glob)("*.tmp-*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
                n += 1
        except OSError:
            pass
    return n


class Store:
    """Verified array entries ``<root>/<namespace>/<key[:2]>/<key>.vca`` for one kind of artefact."""

    def __init__(self, namespace: str, version: int = 1, root=None, log=None):
        self.namespace, self.version = namespace, int(version)
        self.root = cache_root(root) / namespace
        self.log = log or (lambda s: print(s, file=sys.stderr))
        self.rejected = 0                   # bad entries found (and removed) by this instance
        self._verified: set = set()         # (path, size, mtime_ns) of mmap entries whose checksum passed

    def key(self, spec: dict) -> str:
        return spec_key({"namespace": self.namespace, "version": self.version, **spec})

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.vca"

    def _head(self, key: str, dtype: np.dtype, shape, sha256: str, meta: dict | None) -> bytes:
        header = {"format": 1, "namespace": self.namespace, "version": self.version, "key": key,
                  "dtype": np.dtype(dtype).str, "shape": [int(n) for n in shape], "sha256": sha256,
                  "meta": meta or {}}
        head = json.dumps(header).encode()
        start = len(MAGIC) + 4 + len(head)
        return MAGIC + struct.pack("<I", len(head)) + head + b"\0" * ((-start) % _ALIGN)

    def put_stream(self, key: str, dtype, shape, chunks, meta: dict | None = None) -> Path:
        """Store an array of ``dtype``/``shape`` given as an iterable of C-order ``chunks`` (along the
        first axis) without holding it in memory: the header is written with a placeholder checksum and
        rewritten in place (same length) once every chunk is in; atomic like :meth:`put`."""
        dtype, shape = np.dtype(dtype), tuple(int(n) for n in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

        def write(f):
            head = self._head(key, dtype, shape, "0" * 64, meta)
            f.write(head)
            h, n = hashlib.sha256(), 0
            for c in chunks:
                c = np.ascontiguousarray(c, dtype=dtype)
                h.update(c.data)
                f.write(c.data)
                n += c.nbytes
            if n != nbytes:
                raise ValueError(f"put_stream: {n} bytes written, {nbytes} expected for shape {shape}")
            f.seek(0)
            f.write(self._head(key, dtype, shape, h.hexdigest(), meta))
            f.seek(0, os.SEEK_END)
        return atomic_write(self.path(key), write)

    def put(self, key: str, array: np.ndarray, meta: dict | None = None) -> Path:
        """Store ``array`` (and small JSON ``meta``) under ``key`` atomically."""
        a = np.ascontiguousarray(array)
        head = self._head(key, a.dtype, a.shape, hashlib.sha256(a.data).hexdigest(), meta)

        def write(f):
            f.write(head)
            f.write(a.data)
        return atomic_write(self.path(key), write)

    def get(self, key: str, mmap: bool = False, with_meta: bool = False):
        """The verified array under ``key`` (``(array, meta)`` with ``with_meta``), or None when absent or
        bad. ``mmap`` maps the data read-only (for large entries read piecewise); its checksum is verified
        once per entry file by this instance (the first get), in chunks, never all in memory."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            arr, header = self._read(p, key, mmap)
        except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
            self._reject(p, str(e) or type(e).__name__)
            return None
        return (arr, header.get("meta", {})) if with_meta else arr

    def _read(self, p: Path, key: str, mmap: bool):
        with open(p, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ValueError("not a vidcat store entry (old format or garbled)")
            (n,) = struct.unpack("<I", f.read(4))
            header = json.loads(f.read(n).decode())
        if header.get("key") != key or header.get("version") != self.version:
            raise ValueError("entry belongs to another key or version")
        dtype, shape = np.dtype(header["dtype"]), tuple(header["shape"])
        offset = len(MAGIC) + 4 + n
        offset += (-offset) % _ALIGN
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if p.stat().st_size != offset + nbytes:
            raise ValueError(f"size {p.stat().st_size} != {offset + nbytes} (truncated or padded)")
        if mmap:
            st = p.stat()
            stamp = (str(p), st.st_size, st.st_mtime_ns)
            if stamp not in self._verified:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    f.seek(offset)
                    for chunk in iter(lambda: f.read(8 * _MIB), b""):
                        h.update(chunk)
                if h.hexdigest() != header["sha256"]:
                    raise ValueError("checksum mismatch (garbled)")
                self._verified.add(stamp)
            return np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=shape), header
        with open(p, "rb") as f:
            f.seek(offset)
            raw = f.read(nbytes)
        if hashlib.sha256(raw).hexdigest() != header["sha256"]:
            raise ValueError("checksum mismatch (garbled)")
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError("non-finite values")
        return arr, header

    def _reject(self, p: Path, why: str) -> None:
        self.rejected += 1
        self.log(f"vidcat: cache entry {p} is bad ({why}); recomputing it")
        try:
            p.unlink()
        except OSError:
            pass

    def sweep(self) -> int:
        return sweep_temp(self.root) if self.root.exists() else 0
