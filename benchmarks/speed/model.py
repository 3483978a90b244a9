"""``vidcat bench model NAME``: ms/clip of every inference variant against eager fp32, with accuracy beside it.

    vidcat bench model tiny3d                          # trains tiny3d briefly on a synthetic motion set
    vidcat bench model r2plus1d_18                     # random weights: agreement with eager instead of top-1
    vidcat bench model tiny3d --checkpoint runs/x/best.pt --data data/motion

Variants are :mod:`vidcat.inference.fast`'s; accuracy is on the motion set's test split (int8 is
calibrated on its val split). ``best_variant`` is the fastest at batch 1 within 1 point of eager's
top-1 (agreement >= 0.99 without trained weights), which is what ``--fast`` would pick.
:func:`bench_model` also keeps the older ``forward_ms_per_clip`` / ``train_ms_per_clip`` figures.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from vidcat.config import BenchModelConfig
from vidcat.errors import VidcatError
from vidcat.models.registry import count_parameters, create_model, get_spec


# -- the older summary (kept for `vidcat bench model` callers and the README) -------------------------
def _time_model(name: str, repeat: int, batch: int = 2) -> dict:
    spec = get_spec(name)
    model = create_model(name, num_classes=10)
    x = torch.randn(batch, 3, spec.frames, spec.size, spec.size)
    model.eval()
    with torch.no_grad():
        model(x)
        t = time.perf_counter()
        for _ in range(repeat):
            model(x)
        fwd = (time.perf_counter() - t) / repeat / batch
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    t = time.perf_counter()
    for _ in range(repeat):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    step = (time.perf_counter() - t) / repeat / batch
    return {"params": count_parameters(model), "input": [spec.frames, spec.size, spec.size],
            "forward_ms_per_clip": round(fwd * 1e3, 2), "train_ms_per_clip": round(step * 1e3, 2)}


def bench_model(name: str, repeat: int = 3) -> dict:
    """Forward and train-step ms/clip of ``name`` with random weights, relative to ``tiny3d``."""
    base = _time_model("tiny3d", repeat)
    res = _time_model(name, repeat) if name != "tiny3d" else base
    return {"model": name, **res, "baseline": "tiny3d", "baseline_forward_ms_per_clip": base["forward_ms_per_clip"],
            "forward_ratio_vs_baseline": round(res["forward_ms_per_clip"] / base["forward_ms_per_clip"], 2),
            "threads": torch.get_num_threads()}


# -- variants ---------------------------------------------------------------------------------------
def _clips(dataset, data_cfg, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``limit`` centred test clips of ``dataset`` spread over its classes, and their labels."""
    import numpy as np

    from vidcat.data.dataset import VideoClips, collate
    from vidcat.data.manifest import Dataset

    items = dataset.items
    picks = sorted({int(round(i)) for i in np.linspace(0, len(items) - 1, min(limit, len(items)))})
    clips = VideoClips(Dataset([items[i] for i in picks], dataset.classes, dataset.multilabel), data_cfg)
    batch = collate([clips[i] for i in range(len(clips))])
    if not batch["size"]:
        raise VidcatError("bench model: none of the test clips could be read")
    return batch["video"], batch["label"]


def _setup(cfg: BenchModelConfig, tmp: str, log) -> tuple:
    """(model, data_cfg, test clips, test labels or None, calibration clips, how the weights were made)."""
    from benchmarks.speed.train import model_data_config, quick_train, synth_motion
    from vidcat.config import DataConfig
    from vidcat.data.manifest import load_dataset

    root = Path(cfg.data) if cfg.data else Path(synth_motion(tmp)["train"]).parent
    if not (root / "test.csv").is_file():
        raise VidcatError(f"{root}: no test.csv (make one with: vidcat synth DIR --kind motion)")
    test = load_dataset(root / "test.csv")
    val = load_dataset(root / "val.csv", classes=test.classes) if (root / "val.csv").is_file() else test
    if cfg.checkpoint:
        from vidcat.models.build import Checkpoint

        ckpt = Checkpoint.load(cfg.checkpoint).to_dict()
        model, data_cfg, weights = Checkpoint.from_dict(ckpt).build(), DataConfig.from_dict(ckpt["data"]), "checkpoint"
        if ckpt["classes"] != test.classes:
            raise VidcatError(f"{cfg.checkpoint}: trained on classes {ckpt['classes']}, the data has {test.classes}")
    else:
        data_cfg = model_data_config(cfg.model)
        torch.manual_seed(0)
        model = create_model(cfg.model, num_classes=len(test.classes))
        weights = "random"
        if cfg.train == "yes" or (cfg.train == "auto" and cfg.model == "tiny3d"):
            losses = quick_train(model, load_dataset(root / "train.csv", classes=test.classes), data_cfg,
                                 epochs=cfg.train_epochs, log=log, cache=Path(tmp) / "clip_cache")
            weights = f"quick_train {cfg.train_epochs} epochs (loss {losses[0]:.3f} -> {losses[-1]:.3f})"
    x, y = _clips(test, data_cfg, cfg.clips)
    calib, _ = _clips(val, data_cfg, 8)
    return model.eval(), data_cfg, x, (y if weights != "random" else None), calib, weights


def bench_variants(cfg: BenchModelConfig, log=None) -> dict:
    """Every variant's ms/clip at ``cfg.batches`` and its accuracy; the best one at batch 1."""
    from vidcat.inference.fast import DEFAULT_VARIANTS, measure_variants, pick_best, resolve_clock

    get_spec(cfg.model)  # an unknown name: one error line before any work
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="vidcat-bench-model-") as tmp:
            model, data_cfg, x, y, calib, weights = _setup(cfg, tmp, log)
        variants = DEFAULT_VARIANTS + (("compile", "compile_bf16") if cfg.compile else ())
        clock = resolve_clock(cfg.clock)
        results = measure_variants(model, x, y, variants, cfg.batches, calib=list(calib), repeat=cfg.repeat,
                                   log=log, clock=clock)
    finally:
        torch.set_num_threads(before)
    eager, b1 = results[0], min(cfg.batches)
    out = {"model": cfg.model, "weights": weights, "input": [data_cfg.frames, data_cfg.size, data_cfg.size],
           "params": count_parameters(model), "threads": cfg.threads or before, "clock": clock, "test_clips": len(x),
           "accuracy_on": "top1 on the motion test split" if y is not None else "top-1 agreement with eager fp32",
           "eager_top1": None if y is None else round(eager.top1, 4),
           "variants": [r.as_dict() for r in results]}
    for b in cfg.batches:
        best = pick_best(results, b)
        drop = (eager.top1 - best.top1) if y is not None else (1.0 - best.agreement)
        row = {"best_variant": best.name, "best_speedup_vs_eager": round(best.speedup[b], 2),
               "best_top1_drop": round(drop, 4)}
        if b == b1:
            out.update(row)  # the headline: batch 1, what predict/serve run
        out.setdefault("best_by_batch", {})[str(b)] = row
    out["goal_3x_met"] = out["best_speedup_vs_eager"] >= 3.0
    return out


def run_bench_model(cfg: BenchModelConfig) -> int:
    from vidcat.io.console import echo

    print(json.dumps(bench_variants(cfg, log=echo), indent=1))
    return 0
