"""Checkpoint files that hold data only: what is saved is made plain, what is loaded is never executed.

``torch.load(weights_only=False)`` runs whatever a pickle asks for, so a ``best.pt`` from someone
else could run code on load. Every vidcat checkpoint is therefore saved as :func:`plain` values
(tensors, dicts, lists, tuples, str, int, float, bool, None) and read with
:func:`load_plain`, which uses ``weights_only=True`` and turns a refusal into one line::

    torch.save(plain({"score": np.float64(0.5), "data": DataConfig()}), path)
    d = load_plain(path)          # VidcatError: <path> is not a vidcat checkpoint (...)
"""
from __future__ import annotations

import dataclasses
import pickle
import re
from pathlib import PurePath

import numpy as np
import torch

from vidcat.errors import VidcatError

_SCALARS = (str, int, float, bool, type(None))


def plain(obj):
    """``obj`` as values ``torch.load(weights_only=True)`` reads back: dataclasses become dicts, numpy
    arrays tensors, numpy scalars Python numbers, paths strings; anything else is a TypeError (a bug)."""
    if isinstance(obj, torch.Tensor) or type(obj) in _SCALARS:
        return obj
    if isinstance(obj, np.generic):  # before the subclass test: np.float64 is a float
        return obj.item()
    if isinstance(obj, _SCALARS):  # a subclass of str / int / float (a str enum, a bool-like int)
        return _base(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()) and all(isinstance(k, str) for k in obj):
            return obj  # a state dict: kept as torch saves it (an OrderedDict with its version _metadata)
        return {plain(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [plain(v) for v in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (plain values only)")


def _base(obj):
    """The plain built-in value of a subclass instance of str / int / float / bool."""
    for t in (bool, int, float, str):
        if isinstance(obj, t):
            return t(obj)
    return obj


def _numpy_globals() -> list:
    """numpy scalars and arrays that older checkpoints may hold: data only, no callable runs."""
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    multiarray = multiarray.multiarray
    kinds = [np.dtype, multiarray.scalar, multiarray._reconstruct, np.ndarray]
    kinds += [type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "u1", "b1", "f2")]
    return kinds


def refused_global(e: Exception) -> str | None:
    """The object a ``weights_only`` load refused to call or import (``posix.system``), if that was why."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    return found.group(1) if found else None


def load_plain(path, map_location="cpu"):
    """The object saved at ``path``, read with ``weights_only=True``; a file holding pickled Python
    objects (or not a torch file at all) is one :class:`VidcatError` line and nothing of it runs."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if refused_global(e):
            raise VidcatError(f"{path} is not a vidcat checkpoint (it holds pickled Python objects, never loaded: "
                              f"it asks to run {refused_global(e)})") from None
        raise VidcatError(f"{path} is not a vidcat checkpoint (unreadable: {str(e).splitlines()[0][:120]})") from None
    except Exception as e:  # torch raises many types for a damaged or foreign file
        raise VidcatError(f"{path} is not a vidcat checkpoint (unreadable: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
