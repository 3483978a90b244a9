"""Checkpoints that carry everything needed to rebuild the model and its input pipeline."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vidcat.errors import VidcatError


def save(path, payload: dict) -> None:
    """``torch.save`` to a temp name, then rename: a killed run never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise VidcatError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for a damaged file
        raise VidcatError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "state_dict" not in ckpt:
        raise VidcatError(f"{path}: not a vidcat checkpoint (no model name / state_dict)")
    return ckpt


def build_model(ckpt: dict):
    """Rebuild the network recorded in ``ckpt`` with its trained weights (random init, no download)."""
    from vidcat.models.registry import create_model

    kwargs = dict(ckpt.get("model_kwargs", {}))
    kwargs.pop("pretrained", None)
    model = create_model(ckpt["model"], num_classes=len(ckpt["classes"]), **kwargs)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
