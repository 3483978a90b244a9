"""Held-out evaluation of a checkpoint: metrics JSON, per-class table and confusion-matrix PNG."""
from __future__ import annotations

from pathlib import Path

import torch

from vidcat.config import DataConfig, EvalConfig, MULTI_STREAM
from vidcat.data.dataset import VideoClips, make_loader
from vidcat.data.manifest import load_dataset
from vidcat.metrics import compute_metrics
from vidcat.engine.plots import plot_confusion
from vidcat.io.console import SkipReport
from vidcat.engine.scoring import evaluate_loader, setup_threads
from vidcat.errors import VidcatError
from vidcat.models.build import Checkpoint
from vidcat.io.store import atomic_write_json


def evaluate(cfg: EvalConfig) -> dict:
    """Score ``cfg.source`` with the checkpoint; ``clips`` x ``crops`` test views per video are averaged.

    ``ablate`` (multi-modal models): modalities to remove one at a time at test time (their masks
    zeroed in every sample; empty = each of the model's modalities) -> ``result["without"] = {m: top1}``.
    """
    setup_threads(cfg.threads)
    ck = Checkpoint.load(cfg.checkpoint)
    device = torch.device(cfg.device)
    model = ck.build(device)
    ds = load_dataset(cfg.source, classes=ck.classes)
    if not any(it.labels for it in ds.items):
        raise VidcatError(f"{cfg.source}: no labels found (a folder-per-class tree or a label column is needed to evaluate)")
    clips_ds = VideoClips(ds, ck.data, train=False, clips=cfg.clips, crops=cfg.crops)
    ablate = _ablation_modalities(model, ck.data, cfg.ablate)
    skips = SkipReport(cfg.strict)
    loader = make_loader(clips_ds, cfg.batch_size, False, cfg.workers)
    run = lambda drop=(), desc="eval": evaluate_loader(  # noqa: E731
        model, loader, clips_ds.num_views, ck.multilabel, device, cfg.amp, skips, progress=cfg.progress,
        desc=desc, drop=drop)
    scores, labels, paths, streams, loss = run()
    result = compute_metrics(scores, labels, ck.classes, ck.multilabel)
    result.update(loss=loss, views={"clips": cfg.clips, "crops": cfg.crops}, model=ck.setup.name,
                  checkpoint=str(cfg.checkpoint), data=str(cfg.source), skipped=len(skips),
                  skipped_files=dict(skips.seen), damaged=len(skips.warned), damaged_files=dict(skips.warned))
    if streams:
        result["streams"] = {name: compute_metrics(s, labels, ck.classes, ck.multilabel)["top1"]
                             for name, s in streams.items()}
    if ablate is not None:
        result["without"] = {}
        for m in ablate:  # one more pass per modality: the same clips with that stream marked missing
            s, y, *_ = run(drop=(m,), desc=f"eval without {m}")
            result["without"][m] = compute_metrics(s, y, ck.classes, ck.multilabel)["top1"]
    if cfg.json:
        atomic_write_json(cfg.json, result)
        if not ck.multilabel:
            plot_confusion(result["confusion"], ck.classes, Path(cfg.json).with_name("confusion.png"),
                           title=f"{ck.setup.name}: top-1 {result['top1']:.3f} (n={result['n']})")
    return result


def _ablation_modalities(model, data_cfg: DataConfig, ablate):
    """Validated modality names for ``--ablate`` (None: no ablation; empty: all of the model's)."""
    if ablate is None:
        return None
    if getattr(model, "input_key", None) != MULTI_STREAM:
        raise VidcatError(f"--ablate needs a multi-modal model (e.g. fusion); {model.vidcat_spec.name} reads "
                          f"only '{getattr(model, 'input_key', 'video')}'")
    known = list(getattr(model, "names", None) or data_cfg.modalities)
    unknown = [m for m in ablate if m not in known]
    if unknown:
        raise VidcatError(f"--ablate {','.join(unknown)}: the model's modalities are {','.join(known)}")
    return list(ablate) or known


def format_table(result: dict) -> str:
    """Per-class accuracy (or AP) table plus the headline numbers, for the terminal."""
    rows = [f"{'class':<20} {'n':>5} {'acc' if 'confusion' in result else 'AP':>7}"]
    for name, r in result["per_class"].items():
        v = r.get("acc", r.get("ap"))
        rows.append(f"{name:<20} {r['n']:>5} {v if v is None else format(v, '.3f'):>7}")
    head = ["top1", "top5", "mean_class_acc", "mAP", "gap"]
    rows.append("  ".join(f"{k}={result[k]:.4f}" for k in head if k in result) + f"  n={result['n']}"
                + (f"  skipped={result['skipped']}" if result.get("skipped") else ""))
    streams, without = result.get("streams") or {}, result.get("without") or {}
    if streams or without:  # per modality: its own head alone, and the fused model without it
        rows.append(f"{'modality':<20} {'alone':>7} {'fused without':>14}")
        for m in dict.fromkeys([*streams, *without]):
            alone, wo = streams.get(m), without.get(m)
            rows.append(f"{m:<20} {'-' if alone is None else format(alone, '.3f'):>7} "
                        f"{'-' if wo is None else format(wo, '.3f'):>14}")
        rows.append(f"{'fused (all)':<20} {result['top1']:>7.3f}")
    return "\n".join(rows)
