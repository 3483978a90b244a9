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
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from vidcat.config import CVConfig, EvalConfig, TrainConfig
from vidcat.data.manifest import Dataset, load_dataset, write_manifest
from vidcat.data.splits import given_groups, grouped_folds, natural_key
from vidcat.errors import VidcatError

log = logging.getLogger("vidcat")

def assign_groups(ds: Dataset, group_regex: str | None) -> list[str]:
    """The group of every item: :func:`vidcat.data.splits.given_groups`, or the path itself (every video its
    own group) when there is neither a ``--group-regex`` nor a ``group`` column."""
    return given_groups(ds, group_regex) or [it.path for it in ds.items]


def make_folds(ds: Dataset, groups: list[str], folds: int | None = None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(train_idx, test_idx), ...]`` from :func:`vidcat.data.splits.grouped_folds`: one fold per group
    (``folds=None``), or ``folds`` grouped folds, stratified by label where possible (single-label data)."""
    n_groups = len(set(groups))
    if n_groups < 2:
        raise VidcatError(f"cross-validation needs at least 2 groups; found {n_groups} ({groups[0]!r})")
    if folds is not None and folds > n_groups:
        raise VidcatError(f"--folds {folds} but only {n_groups} groups; use --folds {n_groups} or --logo")
    labels = [it.labels[0] if it.labels and not ds.multilabel else "" for it in ds.items]
    return grouped_folds(labels, groups, folds, seed, stratify=not ds.multilabel, min_classes=1)


def _fold_rows(ds: Dataset, index: np.ndarray, groups: list[str]) -> list[dict]:
    return [{"path": os.path.abspath(ds.items[i].path), "label": ds.items[i].labels, "group": groups[i]}
            for i in index]


def _check_folds(ds: Dataset, groups: list[str], splits) -> None:
    """Every fold must be able to train every class, or its model could not even name the test labels."""
    for k, (tr, te) in enumerate(splits, 1):
        have = {lab for i in tr for lab in ds.items[i].labels}
        lacking = [c for c in ds.classes if c not in have]
        if lacking:
            held = sorted({groups[i] for i in te}, key=natural_key)
            raise VidcatError(f"fold {k} (test groups {', '.join(held[:5])}): no training videos of class "
                              f"{', '.join(lacking[:5])}; use fewer folds or other groups")
        assert not {groups[i] for i in tr} & {groups[i] for i in te}


def _run_fold(k: int, n_folds: int, tr, te, ds: Dataset, groups: list[str], train_cfg: TrainConfig, cv: CVConfig,
              out: Path) -> tuple[dict, str]:
    """Train and score fold ``k`` (or reuse its eval.json under resume) -> (its record, the model name)."""
    from vidcat.engine.evaluate import evaluate
    from vidcat.engine.train import train

    fold_dir = out / f"fold_{k}"
    before = [f.read_text() if f.exists() else None for f in (fold_dir / "train.csv", fold_dir / "test.csv")]
    train_csv = write_manifest(fold_dir / "train.csv", _fold_rows(ds, tr, groups))
    test_csv = write_manifest(fold_dir / "test.csv", _fold_rows(ds, te, groups))
    same_split = before == [train_csv.read_text(), test_csv.read_text()]
    test_groups = sorted({groups[i] for i in te}, key=natural_key)
    eval_json = fold_dir / "eval.json"
    t0 = time.time()
    if train_cfg.resume and same_split and eval_json.exists():
        result = json.loads(eval_json.read_text())
        model = result.get("model", train_cfg.model)
        log.info("fold %d: reusing %s", k, eval_json)
    else:
        if train_cfg.progress:
            print(f"vidcat: cv fold {k}/{n_folds}: test groups {', '.join(test_groups[:8])}"
                  f"{' ...' if len(test_groups) > 8 else ''} ({len(tr)} train / {len(te)} test videos)", flush=True)
        if (fold_dir / "run").exists():  # this fold is trained again: its previous run goes
            import shutil

            shutil.rmtree(fold_dir / "run")
        cfg = replace(train_cfg, source=str(train_csv), out=str(fold_dir / "run"), val=None, resume=None)
        model = train(cfg)["model"]
        ckpt = fold_dir / "run" / ("best.pt" if train_cfg.val_split > 0 else "last.pt")
        result = evaluate(EvalConfig(
            checkpoint=str(ckpt), source=str(test_csv), clips=cv.clips, crops=cv.crops,
            batch_size=cfg.batch_size, workers=cfg.workers, device=cfg.device, json=str(eval_json),
            strict=cfg.strict, progress=False, threads=cfg.threads))
    rec = {"fold": k, "test_groups": test_groups,
           "train_groups": sorted({groups[i] for i in tr}, key=natural_key),
           "n_train": int(len(tr)), "n_test": int(len(te)), "n_scored": result["n"], "top1": result["top1"],
           "mean_class_acc": result.get("mean_class_acc"), "mAP": result.get("mAP"),
           "confusion": result.get("confusion"), "skipped": result.get("skipped", 0),
           "seconds": round(time.time() - t0, 1), "dir": str(fold_dir)}
    if train_cfg.progress:
        print(f"vidcat: cv fold {k}: top1={rec['top1']:.3f} n={rec['n_scored']} ({rec['seconds']:.0f} s)", flush=True)
    return rec, model


def cross_validate(train_cfg: TrainConfig, cv: CVConfig) -> dict:
    """Train and score a model on every fold of ``train_cfg.source`` (into folders under ``train_cfg.out``);
    returns (and writes to ``out/cv.json``) ``{"top1_mean", "top1_std", "pooled_top1", "mean_class_acc_mean",
    "folds": [...], "confusion", "classes", "groups", "protocol", ...}``.

    ``cv.folds=None``: leave-one-group-out; else grouped (stratified) k-fold. Every fold trains with
    ``train_cfg`` (its ``val_split`` is the inner validation fraction; best.pt is scored when it is set,
    else last.pt). ``train_cfg.resume`` reuses folds whose ``eval.json`` exists.
    """
    from vidcat.io.store import atomic_write_json

    source, folds = train_cfg.source, cv.folds
    group_regex, label_regex = train_cfg.group_regex, cv.label_regex
    t_start = time.time()
    out = Path(train_cfg.out)
    ds = load_dataset(source, label_regex=label_regex)
    if not ds.classes:
        raise VidcatError(f"{source}: no labels found (a class tree, a label column or --label-regex is needed)")
    groups = assign_groups(ds, group_regex)
    splits = make_folds(ds, groups, folds, train_cfg.seed)
    protocol = "leave-one-group-out" if folds is None else ("group-k-fold" if group_regex else "k-fold")
    _check_folds(ds, groups, splits)
    out.mkdir(parents=True, exist_ok=True)
    records, model = [], train_cfg.model
    for k, (tr, te) in enumerate(splits, 1):
        rec, model = _run_fold(k, len(splits), tr, te, ds, groups, train_cfg, cv, out)
        records.append(rec)

    top1 = np.array([r["top1"] for r in records])
    summary = {
        "model": model, "data": str(source), "protocol": protocol, "folds_requested": folds,
        "group_regex": group_regex, "label_regex": label_regex, "classes": ds.classes,
        "groups": {g: groups.count(g) for g in sorted(set(groups), key=natural_key)} if group_regex else None,
        "n_videos": len(ds), "n_folds": len(records),
        "top1_mean": float(top1.mean()), "top1_std": float(top1.std()),  # std over folds, ddof=0
        "top1_per_fold": top1.tolist(),
        "folds": records,
        "seconds": round(time.time() - t_start, 1),
        "train": {**{k: v for k, v in asdict(train_cfg).items() if k not in ("source", "out")},
                  "views": {"clips": cv.clips, "crops": cv.crops}},
    }
    mca = [r["mean_class_acc"] for r in records if r["mean_class_acc"] is not None]
    if mca:
        summary["mean_class_acc_mean"] = float(np.mean(mca))
    if all(r["confusion"] for r in records):
        cm = np.sum([np.asarray(r["confusion"]) for r in records], axis=0)
        summary["confusion"] = cm.tolist()
        summary["pooled_top1"] = float(np.trace(cm) / max(cm.sum(), 1))
    if cv.curve:
        summary["learning_curve"] = learning_curve(ds, groups, splits, records, train_cfg, cv, out)
    atomic_write_json(out / "cv.json", summary)
    plot_cv(summary, out / "cv.png")
    return summary


CURVE_FRACTIONS = (0.25, 0.5, 0.75)


def learning_curve(ds: Dataset, groups: list[str], splits, records: list[dict], train_cfg: TrainConfig,
                   cv: CVConfig, out: Path) -> list[dict]:
    """Pooled top-1 (Wilson 95 %) when every fold trains on a fraction of its training groups; the last
    point is the full run (``records``). Folds whose subset lacks a class are left out of that point."""
    from vidcat.metrics import wilson

    rng, rows = np.random.default_rng(train_cfg.seed), []
    for f in CURVE_FRACTIONS + (1.0,):
        recs = records if f == 1.0 else []
        for k, (tr, te) in enumerate(splits, 1) if f < 1.0 else ():
            g = sorted({groups[i] for i in tr}, key=natural_key)
            keep = set(rng.permutation(g)[: max(2, int(round(f * len(g))))].tolist())
            sub = np.array([i for i in tr if groups[i] in keep])
            if {lab for i in sub for lab in ds.items[i].labels} != set(ds.classes):
                continue
            recs.append(_run_fold(k, len(splits), sub, te, ds, groups, train_cfg, cv, out / f"curve_{int(f * 100)}")[0])
        n = sum(r["n_scored"] for r in recs)
        k_ok = int(round(sum(r["top1"] * r["n_scored"] for r in recs)))
        lo, hi = wilson(k_ok, n)
        rows.append({"fraction": f, "top1": round(k_ok / n, 4) if n else None, "lo": round(lo, 4),
                     "hi": round(hi, 4), "n": n, "folds": len(recs)})
        if train_cfg.progress and n:
            print(f"vidcat: learning curve {f:.0%} of the training groups: top-1 {k_ok / n:.3f} "
                  f"(95% CI {lo:.2f}-{hi:.2f}, {n} clips)", flush=True)
    return rows


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
