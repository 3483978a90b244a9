"""Training: AdamW, warm-up + cosine schedule, gradient clipping, optional bf16 autocast,
non-finite-step guard, best/last checkpoints, resume, history CSV and curves."""
from __future__ import annotations

import csv
import inspect
import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vidcat.config import DataConfig, TrainConfig
from vidcat.data.dataset import VideoClips, make_loader
from vidcat.data.manifest import Dataset, load_dataset
from vidcat.engine import checkpoint
from vidcat.engine.metrics import compute_metrics
from vidcat.engine.plots import plot_curves
from vidcat.engine.step import SkipReport, autocast, echo, model_input, predict_scores, split_output, to_device
from vidcat.errors import VidcatError
from vidcat.models.registry import create_model, get_spec

log = logging.getLogger("vidcat")
STREAM_LOSS_WEIGHT = 0.5  # auxiliary loss on each stream's own logits keeps every stream useful alone


def setup_threads(threads: int) -> None:
    """Pin torch's intra-op threads (the 2-core default is already right; oversubscription hurts)."""
    if threads > 0:
        torch.set_num_threads(threads)


def resolve_sources(cfg: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """Training set and validation set (``--val``, a sibling ``val.csv``, or a stratified split)."""
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
    if cfg.val_split > 0:
        return stratified_split(train, cfg.val_split, cfg.seed)
    return train, None


def stratified_split(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, it in enumerate(ds.items):
        by_class.setdefault(it.labels[0] if it.labels else "", []).append(i)
    val_idx = set()
    for idx in by_class.values():
        n = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else 0
        val_idx.update(rng.permutation(idx)[:n].tolist())
    pick = lambda keep: [it for i, it in enumerate(ds.items) if (i in val_idx) == keep]  # noqa: E731
    return (Dataset(pick(False), ds.classes, ds.multilabel, ds.source),
            Dataset(pick(True), ds.classes, ds.multilabel, ds.source + f" (val {fraction:.0%})"))


def lr_lambda(total_steps: int, warmup_steps: int):
    """Linear warm-up then cosine decay to 1% of the peak learning rate."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return f


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def make_optimizer(model, cfg: TrainConfig):
    from vidcat.models.weights import freeze_backbone, param_groups

    if cfg.freeze_backbone:
        freeze_backbone(model)
    groups = param_groups(model, cfg.lr, cfg.backbone_lr_mult)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def evaluate_loader(model, loader, views: int, multilabel: bool, device, amp: str, skips: SkipReport,
                    progress: bool = False, desc: str = "eval", drop=()):
    """Run ``model`` over ``loader`` → (scores (N,K), labels, paths, per-stream scores, loss);
    ``drop``: modalities removed from every sample (mask 0), for ablations."""
    model.eval()
    scores, labels, paths, streams = [], [], [], {}
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch"):
        skips(batch["skipped"])
        if not batch["size"]:
            continue
        p, per_stream = predict_scores(model, batch, views, multilabel, device, amp, drop=drop)
        scores.append(p.cpu())
        labels.append(batch["label"])
        paths += batch["path"]
        for name, s in per_stream.items():
            streams.setdefault(name, []).append(s.cpu())
    if not scores:
        raise VidcatError("no readable videos to evaluate")
    s, y = torch.cat(scores), torch.cat(labels)
    eps = 1e-7
    if multilabel:
        loss = float(F.binary_cross_entropy(s.clamp(eps, 1 - eps), y.float()))
    else:
        loss = float(F.nll_loss(torch.log(s.clamp_min(eps)), y))
    return s.numpy(), y.numpy(), paths, {k: torch.cat(v).numpy() for k, v in streams.items()}, loss


def _write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for h in history for k in h))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> dict:
    """Train ``cfg.model`` on ``cfg.source``; returns the final summary (also in ``out/config.json``)."""
    setup_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidcatError("--device cuda given but no CUDA device is available")

    train_ds, val_ds = resolve_sources(cfg)
    spec = get_spec(cfg.model)
    data_cfg = DataConfig.for_model(spec, **cfg.data_overrides)
    model_kwargs = dict(cfg.model_kwargs)
    if spec.modality == "multi":
        model_kwargs.setdefault("modalities", list(data_cfg.modalities))
    elif spec.modality == "video" and len(data_cfg.modalities) == 1 and data_cfg.modalities[0] != "video":
        model_kwargs.setdefault("input_key", data_cfg.modalities[0])  # e.g. a tsn temporal stream on "flow"
    motion_in = model_kwargs.get("input_key") in ("flow", "mv") or spec.modality == "multi"
    for key, value in (("in_channels", 2 * data_cfg.flow_length), ("flow_length", data_cfg.flow_length)):
        if motion_in and key not in model_kwargs and key in inspect.signature(spec.builder).parameters:
            model_kwargs[key] = value  # (2L, T, H, W) motion input: in_channels of one stream, L of two_stream
    model = create_model(cfg.model, num_classes=len(train_ds.classes), pretrained=cfg.pretrained,
                         weights=cfg.weights, **model_kwargs).to(device)
    optimizer = make_optimizer(model, cfg)

    train_loader = make_loader(VideoClips(train_ds, data_cfg, train=True), cfg.batch_size, True, cfg.workers)
    val_loader = make_loader(VideoClips(val_ds, data_cfg), cfg.batch_size, False, cfg.workers) if val_ds else None
    steps_per_epoch = max(1, math.ceil(len(train_ds) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total, max(1, int(cfg.warmup_epochs * steps_per_epoch))))

    state = {"epoch": 0, "step": 0, "best": -float("inf"), "history": [], "nonfinite_steps": 0}
    if cfg.resume and (out / "last.pt").exists():
        ck = checkpoint.load(out / "last.pt")
        if ck["model"] != cfg.model or ck["classes"] != train_ds.classes:
            raise VidcatError(f"{out / 'last.pt'}: cannot resume, it holds {ck['model']} with classes "
                              f"{ck['classes']}")
        model.load_state_dict(ck["state_dict"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        state.update(ck["train_state"])
        torch.set_rng_state(ck["rng"])
        log.info("resumed from %s at epoch %d", out / "last.pt", state["epoch"])

    skips = SkipReport(cfg.strict)
    run_config = {"model": cfg.model, "model_kwargs": model_kwargs, "data": data_cfg.as_dict(),
                  "train": {k: v for k, v in asdict(cfg).items() if k != "data_overrides"},
                  "classes": train_ds.classes, "multilabel": train_ds.multilabel}

    def payload(extra: dict) -> dict:
        return {"model": cfg.model, "model_kwargs": model_kwargs, "classes": train_ds.classes,
                "multilabel": train_ds.multilabel, "data": data_cfg.as_dict(),
                "state_dict": model.state_dict(), "vidcat_version": _version(), **extra}

    for epoch in range(state["epoch"], cfg.epochs):
        model.train()
        t0, seen, correct, loss_sum, n_batches = time.time(), 0, 0, 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, unit="batch")
        for batch in bar:
            skips(batch["skipped"])
            if not batch["size"]:
                continue
            batch = to_device(batch, device)
            with autocast(device, cfg.amp):
                logits, streams = split_output(model(model_input(model, batch)))
                loss = loss_fn(logits, batch["label"], train_ds.multilabel)
                if streams:
                    loss = loss + STREAM_LOSS_WEIGHT * sum(
                        loss_fn(s, batch["label"], train_ds.multilabel) for s in streams.values()) / len(streams)
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                state["nonfinite_steps"] += 1
                scheduler.step()
                continue
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            if not torch.isfinite(grad_norm):
                # skip rather than corrupt the weights (seen with bf16 3D convs on CPU)
                state["nonfinite_steps"] += 1
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                continue
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            b = batch["size"]
            seen += b
            n_batches += 1
            loss_sum += loss.item()
            if not train_ds.multilabel:
                correct += int((logits.argmax(1) == batch["label"]).sum())
            bar.set_postfix(loss=f"{loss_sum / n_batches:.3f}", acc=f"{correct / max(seen, 1):.2f}",
                            clips_s=f"{seen / (time.time() - t0):.1f}")
            if cfg.max_steps and state["step"] >= cfg.max_steps:
                break
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_batches, 1),
               "train_top1": correct / max(seen, 1) if not train_ds.multilabel else float("nan"),
               "lr": optimizer.param_groups[0]["lr"], "clips_per_s": seen / max(time.time() - t0, 1e-9),
               "seconds": time.time() - t0}
        if val_loader is not None:
            s, y, _, _, vloss = evaluate_loader(model, val_loader, 1, val_ds.multilabel, device, cfg.amp, skips)
            m = compute_metrics(s, y, val_ds.classes, val_ds.multilabel)
            row.update(val_loss=vloss, val_top1=m["top1"], val_mAP=m.get("mAP"))
            score = m["mAP"] if val_ds.multilabel else m["top1"]
        else:
            score = -row["train_loss"]
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if score > state["best"]:
            state["best"] = score
            checkpoint.save(out / "best.pt", payload({"epoch": epoch + 1, "score": score}))
        checkpoint.save(out / "last.pt", payload({
            "epoch": epoch + 1, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "train_state": state, "rng": torch.get_rng_state()}))
        _write_history(out / "history.csv", state["history"])
        plot_curves(state["history"], out / "curves.png")
        msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if v is not None)
        echo(msg) if cfg.progress else log.info(msg)
        if cfg.max_steps and state["step"] >= cfg.max_steps:
            break

    summary = {**run_config, "epochs_done": state["epoch"], "best_score": state["best"],
               "nonfinite_steps": state["nonfinite_steps"], "skipped_files": dict(skips.seen),
               "history": state["history"]}
    if callable(getattr(model, "after_training", None)) and val_loader is not None and (out / "best.pt").exists():
        summary["after_training"] = model.after_training(out / "best.pt", val_loader, device)  # two_stream: tune
    tmp = out / f".config.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, out / "config.json")
    if skips.seen:
        echo(f"{len(skips.seen)} unreadable file(s) skipped")
    return summary


def _version() -> str:
    from vidcat import __version__
    return __version__
