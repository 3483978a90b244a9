"""Clip embeddings for classical classifiers, retrieval or clustering: ``vidcat features``.

The embedding is a model's penultimate activation: the input of its classifier (the head named by
:func:`vidcat.models.surgery.get_classifier`, replaced by ``Identity`` in a copy of the model), or
``model.features(x)`` for stream models that define ``features``/``feat_dim`` (audio, text). Frame
models (TSN, TSM) average their per-segment features exactly as their consensus averages scores.

    arr, paths, labels = extract_embeddings("runs/demo/best.pt", "data/motion/test.csv")
    arr, paths, labels = extract_embeddings("r3d_18", "videos/", pretrained=True, clips=4, per_clip=True)

``vidcat features --model NAME_OR_CHECKPOINT SOURCE --out FILE.npy`` writes ``FILE.npy`` (N, D)
float32 (one row per readable video, the mean over ``--clips`` views) and ``FILE.json`` (paths,
labels when known, model, input); ``--per-clip`` adds ``FILE.clips.npy`` (N, clips, D). An ``--out``
ending in ``.parquet`` writes one table instead (columns path, label, embedding[, clip_embeddings];
needs pyarrow). Unreadable files get one line each and are left out (``--strict``: stop instead).
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from vidcat.config import MULTI_STREAM, FeaturesConfig
from vidcat.errors import VidcatError
from vidcat.io.store import atomic_path, json_text

# torch / numpy are imported inside the functions: the CLI imports this module for its parser on every
# command, and `vidcat --help` should not pay for torch.

__all__ = ["FeaturesConfig", "extract_embeddings", "embedding_model", "run_features", "write_embeddings"]

_FUSION_MSG = "multi-stream (fusion) models have no single embedding; extract each stream's model separately"


def embedding_model(model):
    """A module returning ``model``'s penultimate features (B, D) instead of logits; ``model`` itself
    is not changed (its classifier is replaced by ``Identity`` in a copy)."""
    import torch.nn as nn

    if getattr(model, "input_key", None) == MULTI_STREAM:
        raise VidcatError(_FUSION_MSG)

    class Embedder(nn.Module):
        def __init__(self, net: nn.Module):
            super().__init__()
            self.use_features = callable(getattr(net, "features", None)) and isinstance(getattr(net, "feat_dim", None), int)
            if not self.use_features:  # ``features`` of tiny3d/s3d is a conv trunk, not an embedding
                from vidcat.models.surgery import get_classifier

                name, _ = get_classifier(net)
                net = copy.deepcopy(net)
                parent, _, leaf = name.rpartition(".")
                setattr(net.get_submodule(parent) if parent else net, leaf, nn.Identity())
            self.model = net
            self.input_key = getattr(net, "input_key", "video")

        def forward(self, x):
            out = self.model.features(x) if self.use_features else self.model(x)
            if isinstance(out, dict):
                raise VidcatError(_FUSION_MSG)
            return out.flatten(1)

    return Embedder(model).eval()


def _resolve_model(model_or_ckpt, pretrained: bool, weights, frames, size, model_kwargs):
    """(model, DataConfig, description) from a module, a checkpoint file or a registered name."""
    from dataclasses import replace

    import torch.nn as nn

    from vidcat.config import DataConfig
    from vidcat.models.build import Checkpoint, build_model, setup_model

    overrides = DataConfig(frames=frames, size=size)
    if isinstance(model_or_ckpt, nn.Module):
        spec = getattr(model_or_ckpt, "vidcat_spec", None)
        if spec is None:
            raise VidcatError("a model passed to extract_embeddings needs its vidcat_spec (build it with create_model)")
        return model_or_ckpt, overrides.resolved(spec), spec.name
    text = str(model_or_ckpt)
    if Path(text).is_file() or text.endswith((".pt", ".pth", ".ckpt")):
        ck = Checkpoint.load(text)
        data = replace(ck.data, **{k: v for k, v in (("frames", frames), ("size", size)) if v is not None})
        return ck.build(), data, f"{ck.setup.name} ({text})"
    # the head is dropped, so its size is irrelevant: 400 keeps a pretrained Kinetics head untouched
    setup = setup_model(text, overrides, [str(i) for i in range(400)], model_kwargs=model_kwargs, weights=weights)
    return build_model(setup, pretrained=pretrained, weights=weights), setup.data, text


def _load_source(source, label_regex=None):
    """A Dataset for ``source``; a folder that is neither a manifest folder nor a class tree is read
    flat (every video, unlabelled), as is a list of files."""
    from vidcat.data.manifest import Dataset, Item, load_dataset
    from vidcat.io.video import find_videos, is_video_file

    if isinstance(source, (list, tuple)):
        items = [Item(str(p)) for p in source]
        return Dataset(items, [], False, "files")
    src = Path(source)
    if not src.exists():
        raise VidcatError(f"{src}: no such file or directory")
    if src.is_file() and is_video_file(src):
        return Dataset([Item(str(src))], [], False, str(src))
    if src.is_dir() and not label_regex and not (src / "train.csv").exists():
        # class tree only when every video sits in a class folder; otherwise read flat, unlabelled
        top = [p for p in src.iterdir() if p.is_file() and is_video_file(p)]
        if top or not any(d.is_dir() and find_videos(d) for d in src.iterdir()):
            items = [Item(str(p)) for p in find_videos(src)]
            if not items:
                raise VidcatError(f"{src}: no videos found")
            return Dataset(items, [], False, str(src))
    return load_dataset(src, label_regex=label_regex)


def extract_embeddings(model_or_ckpt, source, *, clips: int = 1, per_clip: bool = False, frames: int | None = None,
                     size: int | None = None, batch_size: int = 8, workers: int = 0, device: str = "cpu",
                     pretrained: bool = False, weights: str | None = None, model_kwargs: dict | None = None,
                     label_regex: str | None = None, strict: bool = False, progress: bool = False,
                     return_info: bool = False):
    """Penultimate-layer embeddings of every readable video in ``source``.

    ``model_or_ckpt``: a vidcat checkpoint (``best.pt``), a registered model name (random init, or
    ``pretrained`` / ``weights``), or a module from :func:`vidcat.models.registry.create_model`.
    ``source``: anything ``load_dataset`` reads, a flat folder of videos, a file, or a list of files.
    ``clips`` evenly spaced test views per video (centre crop each).

    Returns ``(array, paths, labels)``: ``array`` float32 (N, D), the mean over the views, or
    (N, clips, D) with ``per_clip``; ``paths`` the N readable videos in order; ``labels`` their labels
    (``;``-joined when multi-label, None when unknown). Unreadable files are reported once each and
    left out (``strict``: raise). ``return_info`` adds a dict (model, input, skipped files) as a 4th value.
    """
    import numpy as np
    import torch
    from tqdm import tqdm

    from vidcat.io.progress import progress as progress_bar

    from vidcat.data.dataset import VideoClips, make_loader
    from vidcat.io.console import SkipReport
    from vidcat.models.inputs import fold_views, model_input, to_device

    if clips < 1:
        raise VidcatError("--clips must be at least 1")
    model, data_cfg, described = _resolve_model(model_or_ckpt, pretrained, weights, frames, size, model_kwargs)
    embedder = embedding_model(model).to(device)
    ds = _load_source(source, label_regex)
    by_path = {it.path: it for it in ds.items}
    views = VideoClips(ds, data_cfg, train=False, clips=clips, crops=1)
    skips = SkipReport(strict, write=lambda m: tqdm.write(f"vidcat: {m}", file=sys.stderr))  # stdout: results only
    feats, paths = [], []
    for batch in progress_bar(make_loader(views, batch_size, False, workers), desc="features", enabled=progress,
                              unit="batch", leave=False):
        skips(batch["skipped"])
        if not batch["size"]:
            continue
        b = to_device(fold_views(batch, views.num_views), device)
        with torch.no_grad():
            f = embedder(model_input(embedder, b)).float().cpu()
        feats.append(f.view(batch["size"], views.num_views, -1))
        paths += batch["path"]
    if not feats:
        raise VidcatError(f"{ds.source}: no readable videos to extract features from")
    arr = torch.cat(feats).numpy().astype(np.float32)
    if not per_clip:
        arr = arr.mean(1)
    labels = [";".join(by_path[p].labels) if by_path[p].labels else None for p in paths]
    if return_info:
        info = {"model": described, "dim": int(arr.shape[-1]), "clips": clips, "frames": data_cfg.frames,
                "size": data_cfg.size, "sampler": data_cfg.sampler, "stride": data_cfg.stride,
                "skipped": dict(skips.seen)}
        return arr, paths, labels, info
    return arr, paths, labels


def _atomic(path: Path, write) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def write_embeddings(out, arr, paths: list[str], labels: list, info: dict | None = None, clip_arr=None) -> list[Path]:
    """Write embeddings (N, D) as ``.npy`` + ``.json`` sidecar (+ ``.clips.npy`` for ``clip_arr``
    (N, clips, D)), or one ``.parquet`` table; every file is written to a temp name and renamed.
    Returns the files written."""
    import numpy as np

    out = Path(out)
    info = dict(info or {})
    if out.suffix.lower() == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ModuleNotFoundError:
            raise VidcatError("writing .parquet needs pyarrow (pip install pyarrow); or use --out FILE.npy") from None
        def fixed(a):  # (N, ..., D) -> nested fixed-size lists of float32
            col = pa.array(np.ascontiguousarray(a, dtype=np.float32).ravel())
            for n in reversed(a.shape[1:]):
                col = pa.FixedSizeListArray.from_arrays(col, n)
            return col

        cols = {"path": pa.array(paths, pa.string()), "label": pa.array(labels, pa.string()), "embedding": fixed(arr)}
        if clip_arr is not None:
            cols["clip_embeddings"] = fixed(clip_arr)
        table = pa.table(cols).replace_schema_metadata({"vidcat": json_text(info)})
        return [_atomic(out, lambda t: pq.write_table(table, t))]
    if out.suffix.lower() != ".npy":
        raise VidcatError(f"--out {out}: want a .npy file (+ .json sidecar) or a .parquet file")

    def save_npy(path: Path, a) -> Path:
        def w(tmp):
            with open(tmp, "wb") as f:
                np.save(f, a)
        return _atomic(path, w)

    written = [save_npy(out, arr.astype(np.float32))]
    if clip_arr is not None:
        written.append(save_npy(out.with_suffix(".clips.npy"), clip_arr.astype(np.float32)))
        info["per_clip_file"] = written[-1].name
    sidecar = {**info, "features_file": out.name, "n": len(paths), "paths": paths, "labels": labels}
    written.append(_atomic(out.with_suffix(".json"),
                           lambda t: t.write_text(json_text(sidecar, indent=1))))
    return written


def run_features(cfg: FeaturesConfig) -> int:
    arr, paths, labels, info = extract_embeddings(
        cfg.model, cfg.source, clips=cfg.clips, per_clip=cfg.per_clip, frames=cfg.frames, size=cfg.size,
        batch_size=cfg.batch_size, workers=cfg.workers, device=cfg.device, pretrained=cfg.pretrained,
        weights=cfg.weights, model_kwargs=cfg.model_kwargs, label_regex=cfg.label_regex, strict=cfg.strict,
        progress=cfg.progress, return_info=True)
    clip_arr = arr if cfg.per_clip else None
    written = write_embeddings(cfg.out, arr.mean(1) if cfg.per_clip else arr, paths, labels, info, clip_arr)
    print(json.dumps({"out": [str(p) for p in written], "n": len(paths), "dim": info["dim"],
                      "skipped": len(info["skipped"])}))
    if info["skipped"]:
        print(f"vidcat: {len(info['skipped'])} file(s) could not be read", file=sys.stderr)
    return 0
