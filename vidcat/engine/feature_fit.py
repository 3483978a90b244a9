"""Feature fit, the trainer's other fit strategy (the default model's): frozen stream features cached in
the store, heads and their fusion chosen by grouped cross-validation (:mod:`vidcat.featurefit`)."""
from __future__ import annotations

from vidcat.config import TrainConfig
from vidcat.engine.result import FitResult
from vidcat.featurefit.recipe import fit_default
from vidcat.io.console import echo


def fit_features(cfg: TrainConfig, train_ds, val_ds, setup, device) -> FitResult:
    """Fit ``setup``'s model on cached features; writes best.pt/last.pt (one model)."""
    res = fit_default(cfg, train_ds, val_ds, setup, log=echo)
    rep = res["report"]
    return FitResult(res["history"], res["best"], 1, 0, dict(rep["skipped"]), dict(rep["damaged"]),
                     {"expected": rep["line"], "recipe": rep})
