"""``vidcat train`` and ``vidcat cv``: training options are TrainConfig's (+ DataConfig's) fields."""
from __future__ import annotations

import json
from pathlib import Path

from vidcat.cli.common import apply_views, command, views_alias
from vidcat.cli.options import add_options, build
from vidcat.config import CVConfig, TrainConfig


def run_train(cfg: TrainConfig) -> int:
    import os

    from vidcat.engine.train import train

    if cfg.nproc > 1 and "LOCAL_RANK" not in os.environ:  # every rank runs this function under torch's launcher
        from vidcat.engine.distributed import launch

        launch(cfg.nproc, run_train, cfg)
        return 0

    summary = train(cfg)
    from vidcat.engine.distributed import is_main

    if not is_main():
        return 0
    last = summary["history"][-1] if summary["history"] else {}
    print(json.dumps({"out": cfg.out, "model": summary["model"], "epochs": summary["epochs_done"],
                      "best_score": summary["best_score"], "last": last,
                      "skipped": len(summary["skipped_files"])}, default=str))
    return 0


def run_cv(a) -> int:
    from vidcat.engine.crossval import cross_validate

    cv = apply_views(a, CVConfig)
    summary = cross_validate(build(TrainConfig, a), cv)
    out = Path(a.out)
    print(json.dumps({"out": a.out, "json": str(out / "cv.json"), "png": str(out / "cv.png"),
                      "model": summary["model"], "protocol": summary["protocol"], "folds": summary["n_folds"],
                      "top1_mean": round(summary["top1_mean"], 4), "top1_std": round(summary["top1_std"], 4),
                      "top1_per_fold": [round(x, 4) for x in summary["top1_per_fold"]]}))
    return 0


def add_commands(sub) -> None:
    command(sub, "train", "train a model; writes best.pt, last.pt, history.csv, curves.png, config.json",
            TrainConfig, run_train)
    p = sub.add_parser("cv", help="grouped k-fold / leave-one-group-out cross-validation (cv.json, cv.png)",
                       description=CVConfig.__doc__.strip())
    add_options(p, CVConfig)
    add_options(p, TrainConfig, exclude=("val",))  # --val-split is each fold's inner validation fraction
    views_alias(p)
    p.set_defaults(func=run_cv, options=(CVConfig, TrainConfig))
