"""Small-data evaluation protocols: grouped k-fold and leave-one-group-out cross-validation.

With a few dozen videos a single split says little, and clips of the same person (or scene, or
source video) on both sides of a split say too much. Here every video gets a group from a regex on
its path (``P(\\d)`` -> the person in ``PS7A1P2T3.avi``); no group is ever in a fold's training and
test sets together. For each fold a model is trained from scratch with :func:`vidcat.engine.train.train`
on ``OUT/fold_k/train.csv``, scored on ``OUT/fold_k/test.csv`` with :func:`vidcat.engine.evaluate.evaluate`,
and the folds are summarised in ``OUT/cv.json`` (mean ± std top-1, per fold, summed confusion matrix)
and ``OUT/cv.png``.

    vidcat cv --data ../shared/data/ud810-actions --label-regex 'PS7(A\\d)' --group-regex 'P(\\d)' --logo \\
              --model tiny3d --epochs 20 --out runs/ud810_lopo
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np

from vidcat.config import TrainConfig
from vidcat.data.manifest import Dataset, compile_regex, load_dataset, regex_field, write_manifest
from vidcat.errors import VidcatError

log = logging.getLogger("vidcat")

# TrainConfig fields a caller may set through ``cross_validate(**train_kwargs)``
_PER_FOLD = {"source", "out", "val", "resume", "model", "seed", "workers", "threads", "device", "strict", "progress"}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - _PER_FOLD


def assign_groups(ds: Dataset, group_regex: str | None) -> list[str]:
    """The group of every item: :func:`regex_field` of ``group_regex`` on its path (file name first),
    or the path itself (every video its own group) when no regex is given."""
    if not group_regex:
        return [it.path for it in ds.items]
    rx = compile_regex(group_regex, "--group-regex")
    groups = [regex_field(rx, it.path) for it in ds.items]
    missing = [it.path for it, g in zip(ds.items, groups) if g is None]
    if missing:
        raise VidcatError(f"--group-regex {group_regex!r} matches neither the file name nor the path of "
                          f"{len(missing)} video(s), e.g. {missing[0]}")
    return groups


def _natural(s: str):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def make_folds(ds: Dataset, groups: list[str], folds: int | None = None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(train_idx, test_idx), ...]``: one fold per group (``folds=None``: leave-one-group-out), or
    ``folds`` grouped folds, stratified by label where possible (single-label data)."""
    uniq = sorted(set(groups), key=_natural)
    g = np.array([uniq.index(x) for x in groups])
    idx = np.arange(len(groups))
    if len(uniq) < 2:
        raise VidcatError(f"cross-validation needs at least 2 groups; found {len(uniq)} ({uniq[0]!r})")
    if folds is None:
        return [(idx[g != k], idx[g == k]) for k in range(len(uniq))]
    if folds < 2:
        raise VidcatError("--folds must be at least 2")
    if folds > len(uniq):
        raise VidcatError(f"--folds {folds} but only {len(uniq)} groups; use --folds {len(uniq)} or --logo")
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    if ds.multilabel:
        splitter, y = GroupKFold(n_splits=folds), np.zeros(len(groups))
    else:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        y = np.array([ds.classes.index(it.labels[0]) for it in ds.items])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer members than n_splits"
        return [(tr, te) for tr, te in splitter.split(idx, y, g)]


def _fold_rows(ds: Dataset, index: np.ndarray, groups: list[str]) -> list[dict]:
    return [{"path": os.path.abspath(ds.items[i].path), "label": ds.items[i].labels, "group": groups[i]}
            for i in index]


def cross_validate(source, out, *, model: str = "tiny3d", group_regex: str | None = None, folds: int | None = None,
                   label_regex: str | None = None, seed: int = 0, clips: int = 1, crops: int = 1,
                   workers: int = 2, threads: int = 0, device: str = "cpu", strict: bool = False,
                   resume: bool = False, progress: bool = True, **train_kwargs) -> dict:
    """Train and score ``model`` on every fold of ``source``; returns (and writes to ``out/cv.json``)
    ``{"top1_mean", "top1_std", "pooled_top1", "mean_class_acc_mean", "folds": [...], "confusion",
    "classes", "groups", "protocol", ...}``.

    ``folds=None``: leave-one-group-out; else grouped (stratified) k-fold. ``train_kwargs``: any
    :class:`~vidcat.config.TrainConfig` field (epochs, batch_size, lr, data_overrides, model_kwargs,
    max_steps, val_split, ...). Each fold is scored with its last checkpoint (its best on an inner
    validation split with ``val_split``). ``resume`` reuses folds whose ``eval.json`` exists.
    """
    from vidcat.engine.evaluate import evaluate, write_json
    from vidcat.engine.train import train

    unknown = set(train_kwargs) - TRAIN_KEYS
    if unknown:
        raise TypeError(f"cross_validate got unknown training options: {', '.join(sorted(unknown))}")
    t_start = time.time()
    out = Path(out)
    ds = load_dataset(source, label_regex=label_regex)
    if not ds.classes:
        raise VidcatError(f"{source}: no labels found (a class tree, a label column or --label-regex is needed)")
    groups = assign_groups(ds, group_regex)
    splits = make_folds(ds, groups, folds, seed)
    protocol = "leave-one-group-out" if folds is None else ("group-k-fold" if group_regex else "k-fold")
    # every fold must be able to train every class, or its model could not even name the test labels
    for k, (tr, te) in enumerate(splits, 1):
        have = {lab for i in tr for lab in ds.items[i].labels}
        lacking = [c for c in ds.classes if c not in have]
        if lacking:
            held = sorted({groups[i] for i in te}, key=_natural)
            raise VidcatError(f"fold {k} (test groups {', '.join(held[:5])}): no training videos of class "
                              f"{', '.join(lacking[:5])}; use fewer folds or other groups")
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
    out.mkdir(parents=True, exist_ok=True)
    use_best = float(train_kwargs.get("val_split") or 0) > 0
    records = []
    for k, (tr, te) in enumerate(splits, 1):
        fold_dir = out / f"fold_{k}"
        before = [f.read_text() if f.exists() else None for f in (fold_dir / "train.csv", fold_dir / "test.csv")]
        train_csv = write_manifest(fold_dir / "train.csv", _fold_rows(ds, tr, groups))
        test_csv = write_manifest(fold_dir / "test.csv", _fold_rows(ds, te, groups))
        same_split = before == [train_csv.read_text(), test_csv.read_text()]
        test_groups = sorted({groups[i] for i in te}, key=_natural)
        eval_json = fold_dir / "eval.json"
        t0 = time.time()
        if resume and same_split and eval_json.exists():
            result = json.loads(eval_json.read_text())
            log.info("fold %d: reusing %s", k, eval_json)
        else:
            if progress:
                print(f"vidcat: cv fold {k}/{len(splits)}: test groups {', '.join(test_groups[:8])}"
                      f"{' ...' if len(test_groups) > 8 else ''} ({len(tr)} train / {len(te)} test videos)", flush=True)
            cfg = TrainConfig(source=str(train_csv), out=str(fold_dir / "run"), model=model, seed=seed,
                              workers=workers, threads=threads, device=device, strict=strict, progress=progress,
                              **train_kwargs)
            train(cfg)
            ckpt = fold_dir / "run" / ("best.pt" if use_best else "last.pt")
            result = evaluate(ckpt, test_csv, clips=clips, crops=crops, batch_size=cfg.batch_size, workers=workers,
                              device=device, json_out=eval_json, strict=strict, progress=False, threads=threads)
        rec = {"fold": k, "test_groups": test_groups,
               "train_groups": sorted({groups[i] for i in tr}, key=_natural),
               "n_train": int(len(tr)), "n_test": int(len(te)), "n_scored": result["n"], "top1": result["top1"],
               "mean_class_acc": result.get("mean_class_acc"), "mAP": result.get("mAP"),
               "confusion": result.get("confusion"), "skipped": result.get("skipped", 0),
               "seconds": round(time.time() - t0, 1), "dir": str(fold_dir)}
        records.append(rec)
        if progress:
            print(f"vidcat: cv fold {k}: top1={rec['top1']:.3f} n={rec['n_scored']} ({rec['seconds']:.0f} s)", flush=True)

    top1 = np.array([r["top1"] for r in records])
    summary = {
        "model": model, "data": str(source), "protocol": protocol, "folds_requested": folds,
        "group_regex": group_regex, "label_regex": label_regex, "classes": ds.classes,
        "groups": {g: groups.count(g) for g in sorted(set(groups), key=_natural)} if group_regex else None,
        "n_videos": len(ds), "n_folds": len(records),
        "top1_mean": float(top1.mean()), "top1_std": float(top1.std()),  # std over folds, ddof=0
        "top1_per_fold": top1.tolist(),
        "folds": records,
        "seconds": round(time.time() - t_start, 1),
        "train": {"seed": seed, "views": {"clips": clips, "crops": crops},
                  **{k: v for k, v in train_kwargs.items()}},
    }
    mca = [r["mean_class_acc"] for r in records if r["mean_class_acc"] is not None]
    if mca:
        summary["mean_class_acc_mean"] = float(np.mean(mca))
    if all(r["confusion"] for r in records):
        cm = np.sum([np.asarray(r["confusion"]) for r in records], axis=0)
        summary["confusion"] = cm.tolist()
        summary["pooled_top1"] = float(np.trace(cm) / max(cm.sum(), 1))
    write_json(out / "cv.json", summary)
    plot_cv(summary, out / "cv.png")
    return summary


def plot_cv(summary: dict, path) -> Path:
    """Per-fold top-1 bars with the mean ± std band, beside the summed confusion matrix."""
    from vidcat.engine.plots import _save, plt

    recs = summary["folds"]
    has_cm = "confusion" in summary
    fig, axes = plt.subplots(1, 2 if has_cm else 1, figsize=(10 if has_cm else 5, 3.8), squeeze=False)
    ax = axes[0, 0]
    names = [",".join(r["test_groups"][:2]) + ("…" if len(r["test_groups"]) > 2 else "") for r in recs]
    ax.bar(range(len(recs)), [r["top1"] for r in recs], color="tab:blue")
    m, s = summary["top1_mean"], summary["top1_std"]
    ax.axhline(m, color="k", lw=1)
    ax.axhspan(m - s, m + s, color="k", alpha=0.1)
    ax.set_xticks(range(len(recs)), names, rotation=45 if len(recs) > 6 else 0, ha="right" if len(recs) > 6 else "center")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("held-out group(s)")
    ax.set_ylabel("top-1")
    ax.set_title(f"{summary['model']}: {summary['protocol']}, top-1 {m:.3f} ± {s:.3f}")
    if has_cm:
        cm, classes = np.asarray(summary["confusion"]), summary["classes"]
        ax = axes[0, 1]
        ax.imshow(cm, cmap="Blues")
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"summed over {len(recs)} folds (n={int(cm.sum())})")
    fig.tight_layout()
    return _save(fig, path)


def cv_main(a) -> int:
    from vidcat.cli import training_kwargs

    clips, crops = a.views
    summary = cross_validate(
        a.data, a.out, model=a.model, group_regex=a.group_regex, folds=None if a.logo else a.folds,
        label_regex=a.label_regex, clips=clips, crops=crops, workers=a.workers, threads=a.threads,
        device=a.device, strict=a.strict, resume=a.resume, progress=not a.quiet, **training_kwargs(a))
    print(json.dumps({"out": a.out, "json": str(Path(a.out) / "cv.json"), "png": str(Path(a.out) / "cv.png"),
                      "protocol": summary["protocol"], "folds": summary["n_folds"],
                      "top1_mean": round(summary["top1_mean"], 4), "top1_std": round(summary["top1_std"], 4),
                      "top1_per_fold": [round(x, 4) for x in summary["top1_per_fold"]]}))
    return 0


def add_parser(subparsers) -> None:
    """Register ``vidcat cv --data SRC --model NAME --group-regex RX [--folds K | --logo] --out DIR``."""
    from vidcat.cli import _views, add_runtime_arguments, add_training_arguments

    p = subparsers.add_parser("cv", help="grouped k-fold / leave-one-group-out cross-validation (cv.json, cv.png)")
    p.add_argument("--data", required=True, help="folder, CSV/JSONL manifest or split list (all videos to split)")
    p.add_argument("--model", default="tiny3d")
    p.add_argument("--out", required=True, help="writes OUT/fold_k/{train,test}.csv, run/, eval.json; OUT/cv.json, cv.png")
    p.add_argument("--group-regex", help="group from the file name (else the path), e.g. 'P(\\d)'; "
                                         "first capture group or the whole match. Default: every video its own group")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--folds", type=int, help="K grouped folds, stratified by label (default: --logo)")
    how.add_argument("--logo", action="store_true", help="leave one group out (the default)")
    p.add_argument("--label-regex", help="label videos from their file name, e.g. 'PS7(A\\d)' (flat folders)")
    p.add_argument("--views", type=_views, default=(1, 1), help="CLIPS,CROPS test views")
    p.add_argument("--resume", action="store_true", help="reuse folds whose eval.json exists")
    add_training_arguments(p)  # --val-split here is the inner validation fraction of each fold
    add_runtime_arguments(p)
    p.set_defaults(func=cv_main)
