"""Training a ``frame_head`` model the fast way: frozen-backbone features cached on disk, a light head
fitted on them in seconds (:func:`vidcat.transfer.recipe.fit_recipe`), then saved as an ordinary
:class:`~vidcat.models.build.Checkpoint` that evaluation, prediction, export and serving read like any
other. :func:`vidcat.engine.train.train` hands ``frame_head`` runs to :func:`fit_frame_head`.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from vidcat.config import TrainConfig
from vidcat.io.console import echo
from vidcat.errors import VidcatError
from vidcat.models.build import Checkpoint, ModelSetup, build_model


def recipe_config(cfg: TrainConfig, setup: ModelSetup):
    """The recipe's options from the run's: backbone, pooling and head from the model keywords, the clip
    from the data config (``head`` "auto" picks the head on validation data)."""
    from vidcat.transfer.recipe import RecipeConfig

    kw, data = setup.kwargs, setup.data
    return RecipeConfig(backbone=kw.get("backbone", "efficientnet_lite0"), pooling=kw.get("pooling", "avgpos"),
                        frames=data.frames, size=data.size, head=kw.get("head", RecipeConfig().head),
                        seed=cfg.seed, strict=cfg.strict, cache=kw.get("feature_cache"))


def fit_frame_head(cfg: TrainConfig, train_ds, val_ds, setup: ModelSetup) -> dict:
    """Fit the recipe, write best.pt/last.pt (the same model), history.csv and return the summary rows."""
    from vidcat.transfer.recipe import fit_recipe

    if train_ds.multilabel:
        raise VidcatError("frame_head fits single-label data; for multi-label data pick a model, e.g. --model tiny3d")
    t0 = time.time()
    rc = recipe_config(cfg, setup)
    fitted = fit_recipe(train_ds.items, val_ds.items if val_ds else None, rc, classes=train_ds.classes)
    head_cfg = dict(fitted.head.config)
    setup.kwargs.update(backbone=rc.backbone, pooling=fitted.info.pooling, head=head_cfg["kind"],
                        hidden=head_cfg["hidden"], dropout=head_cfg["dropout"], frames=head_cfg["frames"])
    setup.kwargs.pop("feature_cache", None)
    # decode exactly as the cached features were made: TSN frames, short side = crop size, centre square
    setup.data = replace(setup.data, short_side=rc.size, mean=tuple(fitted.info.mean), std=tuple(fitted.info.std))
    model = build_model(setup)
    model.backbone.load_state_dict(fitted.backbone.state_dict())
    model.head.load_state_dict(fitted.head.state_dict())
    row = {"epoch": 1, "seconds": round(time.time() - t0, 2), "head": head_cfg["kind"]}
    score = None
    if val_ds is not None and len(val_ds):
        probs, kept, _ = fitted.predict([it.path for it in val_ds.items])
        labels = {it.path: val_ds.classes.index(it.labels[0]) for it in val_ds.items}
        if len(kept):
            score = float(sum(int(p.argmax()) == labels[k] for p, k in zip(probs, kept)) / len(kept))
            row["val_top1"] = score
    extra = {"epoch": 1, "score": score, "recipe": fitted.report}
    out = Path(cfg.out)
    for name in ("best.pt", "last.pt"):
        Checkpoint(setup, model.state_dict(), extra).save(out / name)
    if cfg.progress:
        echo(f"frame_head: {rc.backbone} features + {head_cfg['kind']} head"
             + (f", val_top1={score:.3f}" if score is not None else "") + f" ({row['seconds']:.0f} s)")
    return {"history": [row], "best": score, "report": fitted.report}
