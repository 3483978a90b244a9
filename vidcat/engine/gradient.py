"""Gradient training, one of the trainer's two fit strategies: AdamW, warm-up + cosine schedule, gradient
clipping, optional bf16 autocast, a non-finite-step guard, best/last checkpoints, exact resume, and the
auxiliary per-stream losses of multi-stream models."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vidcat.config import MULTI_STREAM, TrainConfig
from vidcat.data.dataset import VideoClips, make_loader
from vidcat.engine import distributed as D
from vidcat.engine.plots import plot_curves
from vidcat.engine.result import FitResult, write_history
from vidcat.engine.scoring import NoReadableVideos, evaluate_loader
from vidcat.errors import VidcatError
from vidcat.io.console import SkipReport, echo
from vidcat.io.progress import progress as progress_bar
from vidcat.io.store import atomic_write_json
from vidcat.metrics import compute_metrics
from vidcat.models.build import Checkpoint, build_model
from vidcat.models.fusion import stream_loss_terms
from vidcat.models.inputs import autocast, model_input, split_output, to_device

log = logging.getLogger("vidcat")
STREAM_LOSS_WEIGHT = 0.5  # auxiliary loss on each stream's own logits keeps every stream useful alone


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


def fit_gradient(cfg: TrainConfig, train_ds, val_ds, setup, device) -> FitResult:
    """Train ``setup``'s network by gradient descent; writes best.pt/last.pt/history.csv/curves.png per epoch."""
    out = Path(cfg.out)
    net = build_model(setup, pretrained=cfg.pretrained, weights=cfg.weights).to(device)
    optimizer = make_optimizer(net, cfg)
    multilabel = train_ds.multilabel
    train_clips, sampler, order, train_loader, val_loader = _loaders(cfg, train_ds, val_ds, setup.data)
    steps_per_epoch = max(1, math.ceil(len(train_ds) / (cfg.batch_size * D.world_size())))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.epochs * steps_per_epoch, max(1, int(cfg.warmup_epochs * steps_per_epoch))))
    state = {"epoch": 0, "step": 0, "best": None, "history": [], "nonfinite_steps": 0}
    if cfg.resume and (out / "last.pt").exists():
        _resume(cfg, out, setup, net, optimizer, scheduler, state)
    model = D.wrap_model(net)  # DistributedDataParallel under torchrun, else net itself
    if D.is_main():
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
        if D.is_main():  # one writer: rank 0 (every rank holds the same weights)
            _save_epoch(out, setup, net, optimizer, scheduler, state, score, improved)
        D.barrier()
        if cfg.progress and D.is_main():
            echo(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if v is not None))
        if cfg.max_steps and state["step"] >= cfg.max_steps:
            break
    extra = {}
    if getattr(net, "fusion", None) == "weighted" and val_loader is not None and D.is_main() and not D.is_distributed():
        from vidcat.engine.fusion_weights import tune_checkpoint

        extra["fusion_tuning"] = tune_checkpoint(out / "best.pt", net, val_loader, device)
    return FitResult(state["history"], state["best"], state["epoch"], state["nonfinite_steps"], dict(skips.seen),
                     dict(skips.warned), extra)


def _no_step_taken(cfg: TrainConfig, nonfinite: int, unreadable: int) -> VidcatError:
    """Why the first epoch took no step: every step's loss or gradient was non-finite, or no video was readable."""
    if nonfinite:
        advice = "try --amp none or a lower --lr" if cfg.amp != "none" else "try a lower --lr"
        return VidcatError(f"every training step was non-finite ({nonfinite} steps): {advice}")
    return VidcatError(f"{cfg.source}: no readable video to train on ({unreadable} unreadable)")


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
    write_history(out / "history.csv", state["history"])
    plot_curves(state["history"], out / "curves.png")
    atomic_write_json(out / "config.json", {"model": setup.name, "model_kwargs": setup.kwargs,
                                     "data": setup.data.as_dict(), "classes": setup.classes,
                                     "epochs_done": state["epoch"], "best_score": state["best"],
                                     "history": state["history"], "running": True})

