"""Training: AdamW, warm-up + cosine schedule, gradient clipping, optional bf16 autocast,
non-finite-step guard, best/last checkpoints, resume, history CSV and curves."""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidcat.config import MULTI_STREAM, TrainConfig
from vidcat.data.dataset import VideoClips, make_loader
from vidcat.data.manifest import Dataset, item_groups, load_dataset
from vidcat.engine import distributed as D
from vidcat.engine.metrics import compute_metrics
from vidcat.engine.plots import plot_curves
from vidcat.engine.scoring import NoReadableVideos, evaluate_loader, setup_threads
from vidcat.io.console import SkipReport, echo
from vidcat.models.inputs import autocast, model_input, split_output, to_device
from vidcat.errors import VidcatError
from vidcat.io.progress import progress as progress_bar
from vidcat.models.build import Checkpoint, build_model, setup_model
from vidcat.models.fusion import stream_loss_terms
from vidcat.io.store import atomic_open, atomic_write_json, sweep_temp
from vidcat.transfer.recipe import fit_frame_head

log = logging.getLogger("vidcat")
STREAM_LOSS_WEIGHT = 0.5  # auxiliary loss on each stream's own logits keeps every stream useful alone


def resolve_sources(cfg: TrainConfig, split: bool = True) -> tuple[Dataset, Dataset | None]:
    """Training set and validation set (``--val``, a sibling ``val.csv``, or -- with ``split`` -- a stratified
    split that keeps each group on one side)."""
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
        train_part, val_part = stratified_split(train, cfg.val_split, cfg.seed, item_groups(train, cfg.group_regex))
        if len(val_part):
            return train_part, val_part
    return train, None


def stratified_split(ds: Dataset, fraction: float, seed: int, groups: list | None = None) -> tuple[Dataset, Dataset]:
    """About ``fraction`` of each class's groups (each video its own group when ``groups`` is None) held out."""
    rng = np.random.default_rng(seed)
    groups = groups if groups is not None else list(range(len(ds.items)))
    by_class: dict[str, dict] = {}
    for i, (it, g) in enumerate(zip(ds.items, groups)):
        by_class.setdefault(it.labels[0] if it.labels else "", {}).setdefault(g, []).append(i)
    val_groups = set()
    for class_groups in by_class.values():
        keys = list(class_groups)
        n = max(1, int(round(len(keys) * fraction))) if len(keys) > 1 else 0
        val_groups.update(keys[j] for j in rng.permutation(len(keys))[:n])
    val_idx = {i for i, g in enumerate(groups) if g in val_groups}
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


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, multilabel: bool, reduction: str = "mean") -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction=reduction)
    return F.cross_entropy(logits.float(), labels, reduction=reduction)


def training_loss(out, labels: torch.Tensor, multilabel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits): the fused logits' loss plus, for multi-stream models, the auxiliary loss of each
    stream's own logits on the samples where that stream is present (masked, never on absent ones)."""
    logits, streams = split_output(out)
    loss = loss_fn(logits, labels, multilabel)
    if streams:
        terms = stream_loss_terms(out, labels, lambda x, y: loss_fn(x, y, multilabel, reduction="none"))
        if terms:
            loss = loss + STREAM_LOSS_WEIGHT * sum(terms) / len(terms)
    return loss, logits


def make_optimizer(model, cfg: TrainConfig):
    from vidcat.models.surgery import freeze_backbone, param_groups

    if cfg.freeze_backbone:
        freeze_backbone(model)
    groups = param_groups(model, cfg.lr, cfg.backbone_lr_mult)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for h in history for k in h))
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def prepare_run(cfg: TrainConfig):
    """Data sets and resolved model setup of a run (modalities decide the model when none is named)."""
    probe = setup_model(cfg.model, cfg.data, ["?"], model_kwargs=cfg.model_kwargs)  # bad options fail before I/O
    # the default recipe validates by grouped cross-validation on every clip, never by a random split
    train_ds, val_ds = resolve_sources(cfg, split=probe.spec.family != "transfer")
    setup = setup_model(cfg.model, cfg.data, train_ds.classes, train_ds.multilabel, cfg.model_kwargs)
    return train_ds, val_ds, setup


def _train_epoch(model, loader, optimizer, scheduler, cfg: TrainConfig, state: dict, skips: SkipReport,
                 multilabel: bool, device, desc: str) -> dict:
    """One pass over ``loader``; skips (and counts) non-finite steps instead of corrupting the weights."""
    model.train()
    t0, seen, correct, loss_sum, n_batches = time.time(), 0, 0, 0.0, 0
    # a bar on a terminal only; a log file gets train()'s one line per epoch
    bar = progress_bar(loader, enabled=cfg.progress and D.is_main(), desc=desc, unit="batch", summary=False)
    for batch in bar:
        skips(batch["skipped"])
        skips.warn(batch.get("warnings", ()))
        if not batch["size"]:
            continue
        batch = to_device(batch, device)
        with autocast(device, cfg.amp):
            loss, logits = training_loss(model(model_input(D.unwrap(model), batch)), batch["label"], multilabel)
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            state["nonfinite_steps"] += 1
            scheduler.step()
            continue
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        if not torch.isfinite(grad_norm):  # seen with bf16 3D convs on CPU
            state["nonfinite_steps"] += 1
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            continue
        optimizer.step()
        scheduler.step()
        state["step"] += 1
        seen += batch["size"]
        n_batches += 1
        loss_sum += loss.item()
        if not multilabel:
            correct += int((logits.argmax(1) == batch["label"]).sum())
        bar.set_postfix(loss=f"{loss_sum / n_batches:.3f}", acc=f"{correct / max(seen, 1):.2f}",
                        clips_s=f"{seen / (time.time() - t0):.1f}")
        if cfg.max_steps and state["step"] >= cfg.max_steps:
            break
    return {"train_loss": loss_sum / max(n_batches, 1),
            "train_top1": correct / max(seen, 1) if not multilabel else None,
            "lr": optimizer.param_groups[0]["lr"], "clips_per_s": seen / max(time.time() - t0, 1e-9),
            "seconds": time.time() - t0, "_seen": seen}


def _no_step_taken(cfg: TrainConfig, nonfinite: int, unreadable: int) -> VidcatError:
    """Why the first epoch took no step: every step's loss or gradient was non-finite, or no video was readable."""
    if nonfinite:
        advice = "try --amp none or a lower --lr" if cfg.amp != "none" else "try a lower --lr"
        return VidcatError(f"every training step was non-finite ({nonfinite} steps): {advice}")
    return VidcatError(f"{cfg.source}: no readable video to train on ({unreadable} unreadable)")


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
    if setup.spec.family == "transfer":  # frozen backbone: cached features + a head fitted in seconds
        return _finish_transfer(cfg, train_ds, val_ds, setup)
    net = build_model(setup, pretrained=cfg.pretrained, weights=cfg.weights).to(device)
    optimizer = make_optimizer(net, cfg)
    data_cfg, multilabel = setup.data, train_ds.multilabel

    train_clips, sampler, order, train_loader, val_loader = _loaders(cfg, train_ds, val_ds, data_cfg)
    steps_per_epoch = max(1, math.ceil(len(train_ds) / (cfg.batch_size * D.world_size())))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.epochs * steps_per_epoch, max(1, int(cfg.warmup_epochs * steps_per_epoch))))

    state = {"epoch": 0, "step": 0, "best": None, "history": [], "nonfinite_steps": 0}
    if cfg.resume and (out / "last.pt").exists():
        _resume(cfg, out, setup, net, optimizer, scheduler, state)
    model = D.wrap_model(net)  # DistributedDataParallel under torchrun, else net itself
    main = D.is_main()
    if main:
        _announce(cfg, setup, train_ds, val_ds, val_loader is not None)

    skips = SkipReport(cfg.strict)
    for epoch in range(state["epoch"], cfg.epochs):
        train_clips.epoch = epoch  # crops, flips, clip positions: f(seed, epoch, item)
        order.manual_seed(cfg.seed * 1_000_003 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        row = {"epoch": epoch + 1, **_train_epoch(model, train_loader, optimizer, scheduler, cfg, state, skips,
                                                  multilabel, device, f"epoch {epoch + 1}/{cfg.epochs}")}
        if not row.pop("_seen") and not state["history"]:
            raise _no_step_taken(cfg, state["nonfinite_steps"], len(skips))
        score = -row["train_loss"]
        if val_loader is not None:
            D.sync_buffers(model)
            val = _validate(net, val_loader, val_ds.classes, multilabel, device, cfg.amp, skips, row)
            score, val_loader = (score, None) if val is None else (val, val_loader)
        state["history"].append(row)
        state["epoch"] = epoch + 1
        D.sync_buffers(model)
        improved = state["best"] is None or score > state["best"]
        if improved:
            state["best"] = score
        if main:  # one writer: rank 0 (every rank holds the same weights)
            _save_epoch(out, setup, net, optimizer, scheduler, state, score, improved)
        D.barrier()
        if cfg.progress and main:
            echo(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if v is not None))
        if cfg.max_steps and state["step"] >= cfg.max_steps:
            break

    summary = _summary(cfg, setup, state, skips, multilabel)
    if getattr(net, "fusion", None) == "weighted" and val_loader is not None and main and not D.is_distributed():
        from vidcat.engine.fusion_weights import tune_checkpoint

        summary["fusion_tuning"] = tune_checkpoint(out / "best.pt", net, val_loader, device)
    if main:
        atomic_write_json(out / "config.json", summary)
    D.barrier()
    if skips.seen and main:
        echo(f"{len(skips.seen)} unreadable file(s) skipped")
    return summary


def _announce(cfg: TrainConfig, setup, train_ds, val_ds, has_val: bool) -> None:
    data_cfg = setup.data
    if not has_val:
        echo("no validation set (--val, val.csv, --val-split): best.pt is the epoch with the lowest training loss")
    model_name = f"{setup.name}" + (f" over {','.join(data_cfg.modalities)}" if setup.spec.modality == MULTI_STREAM else "")
    if cfg.progress:
        echo(f"training {model_name} on {len(train_ds)} videos ({len(val_ds) if val_ds else 0} for validation), "
             f"{data_cfg.frames}x{data_cfg.size}² clips, {cfg.epochs} epochs")


def _validate(net, val_loader, classes, multilabel: bool, device, amp: str, skips: SkipReport, row: dict):
    """Score the validation set into ``row`` -> the epoch's score (mAP or top-1), or None when the set
    holds no readable video (validation is then dropped)."""
    try:
        s, y, _, _, vloss = evaluate_loader(net, val_loader, 1, multilabel, device, amp, skips)
    except NoReadableVideos:
        echo("the validation set holds no readable video: best.pt is the epoch with the lowest training loss")
        return None
    m = compute_metrics(s, y, classes, multilabel)
    row.update(val_loss=vloss, val_top1=m["top1"], val_mAP=m.get("mAP"))
    return m["mAP"] if multilabel else m["top1"]


def _loaders(cfg: TrainConfig, train_ds, val_ds, data_cfg):
    """-> (train clips, distributed sampler or None, shuffle generator, train loader, val loader or None)."""
    train_clips = VideoClips(train_ds, data_cfg, train=True)
    train_clips.seed = cfg.seed
    sampler = D.distributed_sampler(train_clips, True, cfg.seed)  # None in one process
    order = torch.Generator()  # the shuffle order of epoch e: f(seed, e), reseeded each epoch
    train_loader = make_loader(train_clips, cfg.batch_size, True, cfg.workers, sampler=sampler, generator=order)
    val_loader = None
    if val_ds:
        val_clips = VideoClips(val_ds, data_cfg)
        val_loader = make_loader(val_clips, cfg.batch_size, False, cfg.workers, sampler=D.eval_sampler(val_clips))
    return train_clips, sampler, order, train_loader, val_loader


def _resume(cfg: TrainConfig, out: Path, setup, net, optimizer, scheduler, state: dict) -> None:
    """Load ``out/last.pt`` into the model, optimizer, scheduler, ``state`` and torch's RNG."""
    ck = Checkpoint.load(out / "last.pt")
    if ck.extra.get("epoch", 0) >= cfg.epochs:
        raise VidcatError(f"{out}: already trained {ck.extra.get('epoch')} epochs (--epochs {cfg.epochs}): nothing "
                          "to resume; raise --epochs to train on")
    if ck.setup.name != setup.name or ck.classes != setup.classes:
        raise VidcatError(f"{out / 'last.pt'}: cannot resume, it holds {ck.setup.name} with classes {ck.classes}")
    net.load_state_dict(ck.state_dict)
    optimizer.load_state_dict(ck.extra["optimizer"])
    scheduler.load_state_dict(ck.extra["scheduler"])
    state.update(ck.extra["train_state"])
    torch.set_rng_state(ck.extra["rng"])
    log.info("resumed from %s at epoch %d", out / "last.pt", state["epoch"])


def _save_epoch(out: Path, setup, net, optimizer, scheduler, state: dict, score: float, improved: bool) -> None:
    """best.pt (when improved), last.pt, history.csv, curves.png and a running config.json."""
    epoch = state["epoch"]
    if improved:
        Checkpoint(setup, net.state_dict(), {"epoch": epoch, "score": score}).save(out / "best.pt")
    Checkpoint(setup, net.state_dict(), {
        "epoch": epoch, "score": score, "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "train_state": state, "rng": torch.get_rng_state(),
        "world_size": D.world_size()}).save(out / "last.pt")
    _write_history(out / "history.csv", state["history"])
    plot_curves(state["history"], out / "curves.png")
    atomic_write_json(out / "config.json", {"model": setup.name, "model_kwargs": setup.kwargs,
                                      "data": setup.data.as_dict(), "classes": setup.classes,
                                      "epochs_done": state["epoch"], "best_score": state["best"],
                                      "history": state["history"], "running": True})


def _summary(cfg: TrainConfig, setup, state: dict, skips: SkipReport, multilabel: bool) -> dict:
    return {"model": setup.name, "model_kwargs": setup.kwargs, "data": setup.data.as_dict(),
            "train": {k: v for k, v in asdict(cfg).items() if k != "data"},
            "classes": setup.classes, "multilabel": multilabel, "epochs_done": state["epoch"],
            "best_score": state["best"], "nonfinite_steps": state["nonfinite_steps"],
            "skipped_files": dict(skips.seen), "damaged_files": dict(skips.warned), "history": state["history"]}


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
        return (f"recipe: {RECIPE} (frozen ImageNet efficientnet_lite0 per frame, features cached, temporal head "
                "fitted on them); --model picks another")
    why = recipe_available()
    return f"model: {setup.name}" + (f" (the {RECIPE} recipe needs pretrained weights: {why})" if why and
                                     setup.name == "tiny3d" else "") + "; --model picks another"


def _finish_transfer(cfg: TrainConfig, train_ds, val_ds, setup) -> dict:
    res = fit_frame_head(cfg, train_ds, val_ds, setup)
    out = Path(cfg.out)
    _write_history(out / "history.csv", res["history"])
    plot_curves(res["history"], out / "curves.png")  # one point: the fitted head's validation top-1
    summary = {"model": setup.name, "model_kwargs": setup.kwargs, "data": setup.data.as_dict(),
               "train": {k: v for k, v in asdict(cfg).items() if k != "data"}, "classes": setup.classes,
               "multilabel": False, "epochs_done": 1, "best_score": res["best"], "nonfinite_steps": 0,
               "skipped_files": dict(res["report"]["skipped"]), "damaged_files": dict(res["report"]["damaged"]),
               "expected": res["report"]["line"], "history": res["history"], "recipe": res["report"]}
    atomic_write_json(out / "config.json", summary)
    return summary
