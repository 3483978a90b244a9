"""Training ``frame_head``, the default on real footage: cached frozen features, a head chosen on the
user's own clips by grouped cross-validation, an honest estimate, and an ordinary checkpoint.

1. every labelled clip (training and ``--val`` clips alike) goes through the model's own data path
   (:mod:`vidcat.transfer.extract`): its centre view and :data:`AUG_VIEWS` augmented views, cached;
2. groups come from the manifest's ``group`` column, ``--group-regex``, or -- with neither --
   :func:`~vidcat.transfer.select.auto_groups` (near-duplicate clips merged), and the run says how many;
3. :func:`~vidcat.transfer.select.select` scores the candidate heads by stratified grouped k-fold and
   keeps the simplest within one standard error of the best; its (nested) out-of-fold accuracy is
   ``best_score`` and the printed ``expected top-1`` line; a learning curve shows what more labels buy;
4. the kept head is refitted on every clip and saved inside an ordinary :class:`Checkpoint`, so
   ``eval``, ``predict``, ``timeline``, ``export`` and ``serve`` run it like any model.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidcat.config import TrainConfig
from vidcat.data.manifest import Dataset, item_groups
from vidcat.errors import VidcatError
from vidcat.io.store import Store
from vidcat.models.build import Checkpoint, ModelSetup, build_model
from vidcat.transfer import select as S
from vidcat.transfer.extract import NAMESPACE, extract

AUG_VIEWS = 2          # augmented training views per clip, beside the centre view
FOLDS = 5


def _merged(train_ds: Dataset, val_ds: Dataset | None) -> tuple[Dataset, int]:
    if not val_ds:
        return train_ds, len(train_ds.items)
    return Dataset(train_ds.items + val_ds.items, train_ds.classes), len(train_ds.items)


def _groups(ds: Dataset, fs, cfg: TrainConfig, log) -> tuple[np.ndarray, str]:
    given = item_groups(ds, cfg.group_regex)
    if given is not None:
        g = np.array([given[i] for i in fs.index])
        return np.unique(g, return_inverse=True)[1], "given"
    g = S.auto_groups(fs.feats, FOLDS)
    log(f"vidcat: no groups given (manifest 'group' column or --group-regex): {len(np.unique(g))} groups of "
        f"near-duplicate clips found automatically among {len(g)} clips")
    return g, "auto"


def _val_top1(feats, labels, groups, n_train_pos, index, best, num_classes) -> float | None:
    """Top-1 on the ``--val`` clips of a head fitted on the training clips alone (no shared group)."""
    is_val = np.array([i >= n_train_pos for i in index])
    if not is_val.any() or is_val.all():
        return None
    tr = ~is_val & ~np.isin(groups, groups[is_val])
    if len(np.unique(labels[tr])) < 2:
        return None
    head = S.fit_head(feats[tr], labels[tr], best, num_classes)
    import torch

    with torch.no_grad():
        pred = head(torch.from_numpy(feats[is_val, 0])).argmax(1).numpy()
    return float((pred == labels[is_val]).mean())


def fit_frame_head(cfg: TrainConfig, train_ds: Dataset, val_ds: Dataset | None, setup: ModelSetup,
                   log=None) -> dict:
    """Fit the recipe, write best.pt/last.pt (the same model) and return the summary parts."""
    log = log or (lambda s: print(s, file=sys.stderr))
    if train_ds.multilabel:
        raise VidcatError("frame_head fits single-label data; for multi-label data pick a model, e.g. --model tiny3d")
    t0 = time.time()
    if setup.data.short_side is None:            # the whole short side, centre square: nothing cut off
        setup.data = replace(setup.data, short_side=setup.data.size)
    model = build_model(setup, pretrained=True)
    ds, n_train = _merged(train_ds, val_ds)
    fs = extract(ds, setup.data, model, views=1 + AUG_VIEWS, store=Store(NAMESPACE, root=cfg.cache),
                 strict=cfg.strict, log=log, ray=(cfg.address or True) if cfg.ray else None)
    if len(fs.index) == 0:
        raise VidcatError(f"none of the {len(ds.items)} videos could be read")
    labels = np.array([ds.classes.index(ds.items[i].labels[0]) for i in fs.index])
    if len(np.unique(labels)) < 2:
        raise VidcatError("need readable labelled clips of at least 2 classes to train")
    groups, how = _groups(ds, fs, cfg, log)
    nc = len(ds.classes)
    sel = S.select(fs.feats, labels, groups, nc, k=FOLDS, seed=cfg.seed)
    curve = S.learning_curve(fs.feats, labels, groups, sel.best, nc, k=FOLDS, seed=cfg.seed) if sel.table else []
    val = _val_top1(fs.feats, labels, groups, n_train, fs.index, sel.best, nc) if val_ds else None
    model.head = S.fit_head(fs.feats, labels, sel.best, nc)
    setup.kwargs.update(sel.best.head_kwargs(), backbone=model.backbone_info.name)
    report = {**sel.as_dict(), "groups": how, "learning_curve": curve, "clips": len(fs.index),
              "computed": fs.computed, "extract_seconds": round(fs.seconds, 1), "seconds": round(time.time() - t0, 1),
              "skipped": fs.skipped, "damaged": fs.damaged, "val_top1": val}
    score = sel.estimate.get("top1")
    extra = {"epoch": 1, "score": score, "recipe": report}
    for name in ("best.pt", "last.pt"):
        Checkpoint(setup, model.state_dict(), extra).save(Path(cfg.out) / name)
    if cfg.progress:
        log(f"frame_head: {model.backbone_info.name} features ({fs.computed} clips computed, "
            f"{len(fs.index) - fs.computed} cached) + head {sel.best.name}; {sel.line()}"
            + (f"; --val top-1 {val:.3f}" if val is not None else ""))
    row = {"epoch": 1, "seconds": report["seconds"], "head": sel.best.name, "cv_top1": score, "val_top1": val}
    return {"history": [row], "best": score, "report": report}
