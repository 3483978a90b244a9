"""The one trainer: ``vidcat train`` and ``vidcat.train()``.

It resolves the data sets and the model once, hands them to a fit strategy -- gradient training
(:mod:`vidcat.engine.gradient`) or, for the default model, feature fit (:mod:`vidcat.engine.feature_fit`) --
and writes one summary (``config.json``, ``history.csv``, ``curves.png``) from the :class:`FitResult`
either returns.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from vidcat.config import TrainConfig
from vidcat.data.manifest import Dataset, load_dataset
from vidcat.data.splits import given_groups, train_val_split
from vidcat.engine import distributed as D
from vidcat.engine.plots import plot_curves
from vidcat.engine.result import FitResult, write_history
from vidcat.engine.scoring import setup_threads
from vidcat.errors import VidcatError
from vidcat.io.console import echo
from vidcat.io.store import atomic_write_json, sweep_temp
from vidcat.models.build import check_request, setup_model

FEATURE_FIT_FAMILIES = ("streams",)   # models fitted on cached frozen features


def resolve_sources(cfg: TrainConfig, split: bool = True) -> tuple[Dataset, Dataset | None]:
    """Training set and validation set (``--val``, a sibling ``val.csv``, or -- with ``split`` -- a grouped,
    stratified split: :func:`vidcat.data.splits.train_val_split`)."""
    train = load_dataset(cfg.source)
    if not train.classes:
        raise VidcatError(f"{cfg.source}: no labels found (folder-per-class tree or a label column needed)")
    val_src = cfg.val
    src = Path(cfg.source)
    if val_src is None:
        sibling = (src if src.is_dir() else src.parent) / "val.csv"
        if sibling.exists() and sibling != src:
            val_src = str(sibling)
    if val_src:
        return train, load_dataset(val_src, classes=train.classes)
    if split and cfg.val_split > 0:
        groups = given_groups(train, cfg.group_regex) or list(range(len(train.items)))
        labels = [it.labels[0] if it.labels else "" for it in train.items]
        tr, va = train_val_split(labels, groups, cfg.val_split, cfg.seed)
        if len(va):
            return (Dataset([train.items[i] for i in tr], train.classes, train.multilabel, train.source),
                    Dataset([train.items[i] for i in va], train.classes, train.multilabel,
                            train.source + f" (val {cfg.val_split:.0%})"))
    return train, None


def prepare_run(cfg: TrainConfig):
    """Data sets and the resolved model setup of a run: one :func:`setup_model`; a request that cannot work
    fails before any video is read."""
    _, spec, _ = check_request(cfg.model, cfg.data, model_kwargs=cfg.model_kwargs)
    feature_fit = spec.family in FEATURE_FIT_FAMILIES
    # the default model validates by grouped cross-validation on every clip, never by a random split
    train_ds, val_ds = resolve_sources(cfg, split=not feature_fit)
    setup = setup_model(cfg.model, cfg.data, train_ds.classes, train_ds.multilabel, cfg.model_kwargs, cfg.weights)
    if feature_fit and setup.spec.family not in FEATURE_FIT_FAMILIES:   # multi-label data: the gradient-trained
        train_ds, val_ds = resolve_sources(cfg)                          # fallback validates like any such model
    return train_ds, val_ds, setup


def train(cfg: TrainConfig) -> dict:
    """Train on ``cfg.source``; returns the final summary (also in ``out/config.json``)."""
    # 2 cores with loader workers decoding: 1 intra-op thread is fastest (`vidcat bench train`)
    setup_threads(cfg.threads or (1 if cfg.workers > 0 and (os.cpu_count() or 1) <= 2 else 0))
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    device = torch.device(D.init_from_env(cfg.device).device)  # torchrun: this rank's device (gloo / nccl)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidcatError("--device cuda given but no CUDA device is available")
    _check_run_dir(cfg, out)
    train_ds, val_ds, setup = prepare_run(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if D.is_main():  # temp files of a killed run (one writer per run folder: none is in use now)
        sweep_temp(out, older_than_s=0, recursive=False)
    if cfg.model is None and cfg.progress:
        echo(_default_notice(setup))
    if setup.spec.family in FEATURE_FIT_FAMILIES:
        from vidcat.engine.feature_fit import fit_features as fit
    else:
        from vidcat.engine.gradient import fit_gradient as fit
    result = fit(cfg, train_ds, val_ds, setup, device)
    summary = summarise(cfg, setup, result, train_ds.multilabel)
    if D.is_main():
        write_history(out / "history.csv", result.history)
        plot_curves(result.history, out / "curves.png")
        atomic_write_json(out / "config.json", summary)
    D.barrier()
    if result.skipped and D.is_main():
        echo(f"{len(result.skipped)} unreadable file(s) skipped")
    return summary


def summarise(cfg: TrainConfig, setup, result: FitResult, multilabel: bool) -> dict:
    """The run's summary (``config.json``), the same keys for every fit strategy."""
    return {"model": setup.name, "model_kwargs": setup.kwargs, "data": setup.data.as_dict(),
            "train": {k: v for k, v in asdict(cfg).items() if k != "data"}, "classes": setup.classes,
            "multilabel": multilabel, "epochs_done": result.epochs_done, "best_score": result.best_score,
            "nonfinite_steps": result.nonfinite_steps, "skipped_files": result.skipped,
            "damaged_files": result.damaged, "history": result.history, **result.extra}


def _check_run_dir(cfg: TrainConfig, out: Path) -> None:
    """Never damage a run silently: refuse a file as --out, a fresh start over existing checkpoints, and
    --resume with nothing to resume (unless --resume auto)."""
    if out.exists() and not out.is_dir():
        raise VidcatError(f"--out {out} is a file, not a folder")
    has_run = (out / "last.pt").exists()
    if cfg.resume == "yes" and not has_run:
        raise VidcatError(f"--resume: {out} holds no last.pt to continue (--resume auto starts it then)")
    if not cfg.resume and has_run:
        raise VidcatError(f"{out} already holds a run (last.pt): --resume continues it, or choose another --out")


def _default_notice(setup) -> str:
    from vidcat.models.build import RECIPE, recipe_available

    if setup.name == RECIPE:
        return (f"model: {RECIPE}, the default (every stream the clips have -- appearance, motion, pose, sound, "
                "words -- each with its own head, fused by stacking; features cached); --model picks another")
    why = recipe_available()
    if why:
        why = f"the default {RECIPE} needs pretrained weights: {why}"
    elif setup.multilabel:
        why = f"the default {RECIPE} fits single-label data; some clips here have several labels"
    return f"model: {setup.name}" + (f" ({why})" if why and setup.name == "tiny3d" else "") + "; --model picks another"
