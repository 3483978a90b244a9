"""``vidcat bench train``: clips/s of a full training step (real loader -> forward -> loss -> backward ->
clipped optimizer step) for torch-threads x loader-workers settings, and the setting to use by default.

    vidcat bench train DATA --model tiny3d --threads 1,2 --workers 0,1,2

Every setting runs the same number of steps on the same data, after warm-up steps that start the
workers and fill their prefetch queue; the ratio to the first setting is measured in the same process.
Also home of :func:`quick_train`, the few-epoch trainer ``vidcat bench model`` uses for its tiny3d.
"""
from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time

import torch
import torch.nn.functional as F

from vidcat.config import BenchTrainConfig


class Stepper:
    """One full training step on a batch dict: forward (optional bf16 autocast), cross-entropy, backward,
    gradient clipping, AdamW step; a step with a non-finite loss or gradient is skipped and counted
    (bf16 3D-conv backward on CPU has produced non-finite gradients)."""

    def __init__(self, model, lr: float = 2e-3, weight_decay: float = 0.05, amp: str = "none", clip: float = 5.0):
        self.model, self.amp, self.clip = model, amp, clip
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.nonfinite = 0

    def __call__(self, batch: dict) -> float:
        from vidcat.models.inputs import model_input, split_output

        self.model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp == "bf16"):
            logits = split_output(self.model(model_input(self.model, batch)))[0]
            loss = F.cross_entropy(logits.float(), batch["label"])
        self.opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            self.nonfinite += 1
            return float("nan")
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if not torch.isfinite(norm):
            self.nonfinite += 1
            self.opt.zero_grad(set_to_none=True)
            return float("nan")
        self.opt.step()
        return float(loss.detach())


def quick_train(model, dataset, data_cfg, epochs: int = 4, batch_size: int = 8, workers: int = 0,
                lr: float = 3e-3, seed: int = 0, log=None, cache=None) -> list[float]:
    """Train ``model`` for ``epochs`` on ``dataset`` with the real loader (random clip positions and
    crops; cosine learning rate); returns the mean loss per epoch. ``cache``: a clip-cache folder, so
    epochs after the first decode nothing (:mod:`vidcat.data.clip_cache`)."""
    from vidcat.data.dataset import VideoClips, make_loader

    torch.manual_seed(seed)
    step = Stepper(model, lr=lr)
    total = epochs * max(1, math.ceil(len(dataset.items) / batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(step.opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i / total, 1))))
    losses = []
    with contextlib.ExitStack() as stack:
        if cache:
            from vidcat.data.clip_cache import cached_clips

            stack.enter_context(cached_clips(data_cfg, cache))
        loader = make_loader(VideoClips(dataset, data_cfg, train=True), batch_size, True, workers)
        for epoch in range(epochs):
            vals = []
            for b in loader:
                if b["size"]:
                    vals.append(step(b))
                    sched.step()
            losses.append(sum(v for v in vals if math.isfinite(v)) / max(len(vals), 1))
            if log:
                log(f"quick_train epoch {epoch + 1}/{epochs}: loss {losses[-1]:.3f}")
    return losses


def synth_motion(out, per_class: int = 20) -> dict:
    """A small synthetic motion set (train/val/test manifests) written under ``out``."""
    from vidcat.data.synthetic import SynthConfig, generate

    return generate(out, SynthConfig(kind="motion", per_class=per_class), progress=False)


def model_data_config(name: str):
    """The model's own input (frames, size, mean/std, sampler) as a DataConfig of the video stream."""
    from vidcat.config import DataConfig
    from vidcat.models.registry import get_spec

    spec = get_spec(name)
    return DataConfig(frames=spec.frames, size=spec.size, mean=tuple(spec.mean), std=tuple(spec.std),
                      sampler=spec.sampler, modalities=("video",))


def time_setting(model_name: str, dataset, data_cfg, threads: int, workers: int, cfg: BenchTrainConfig) -> dict:
    """Clips/s over ``cfg.steps`` full steps (after ``cfg.warmup``) with ``threads`` x ``workers``."""
    from vidcat.data.dataset import VideoClips, make_loader
    from vidcat.models.registry import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=len(dataset.classes))
    step = Stepper(model, amp=cfg.amp)
    clips = VideoClips(dataset, data_cfg, train=True)
    loader = make_loader(clips, cfg.batch_size, True, workers)
    n, t0, done, it = 0, time.perf_counter(), 0, iter(loader)
    while done < cfg.warmup + cfg.steps:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        if not batch["size"]:
            continue
        step(batch)
        done += 1
        if done == cfg.warmup:
            t0 = time.perf_counter()
        elif done > cfg.warmup:
            n += batch["size"]
    secs = time.perf_counter() - t0
    del it, loader
    return {"threads": threads, "workers": workers, "clips_per_s": round(n / secs, 2), "steps": cfg.steps,
            "nonfinite_steps": step.nonfinite}


def _fill(cache_dir, dataset, short_side: int) -> None:
    """Decode every video of ``dataset`` into the clip cache (unreadable ones are left to the loader)."""
    from vidcat.data.clip_cache import ClipCache
    from vidcat.errors import VideoError

    cache = ClipCache(cache_dir)
    for it in dataset.items:
        with contextlib.suppress(VideoError):
            cache.entry(it.path, short_side)


def bench_train(cfg: BenchTrainConfig, log=None) -> dict:
    """Every threads x workers (x clip cache off/on, with ``clip_cache``) setting's clips/s, the best one
    and its ratio to the first setting (1st threads, 1st workers, no cache)."""
    from vidcat.data.clip_cache import cached_clips
    from vidcat.data.manifest import load_dataset

    with tempfile.TemporaryDirectory(prefix="vidcat-bench-train-") as tmp:
        source = cfg.data or str(synth_motion(tmp)["train"])
        dataset = load_dataset(source)
        data_cfg = model_data_config(cfg.model)
        if cfg.clip_cache:
            _fill(cfg.clip_cache, dataset, data_cfg.decode_short_side)  # timed steps = epochs after the first
        before = torch.get_num_threads()
        rows = []
        try:
            for cached in (False, True) if cfg.clip_cache else (False,):
                with cached_clips(data_cfg, cfg.clip_cache) if cached else contextlib.nullcontext():
                    for threads in cfg.threads:
                        for workers in cfg.workers:
                            row = time_setting(cfg.model, dataset, data_cfg, threads, workers, cfg)
                            rows.append({**row, "clip_cache": cached})
                            if log:
                                log(json.dumps(rows[-1]))
        finally:
            torch.set_num_threads(before)
    base, best = rows[0], max(rows, key=lambda r: r["clips_per_s"])
    pick = ("threads", "workers", "clip_cache")
    return {"model": cfg.model, "data": cfg.data or "synthetic motion (20 per class)", "batch_size": cfg.batch_size,
            "amp": cfg.amp, "settings": rows, "baseline": {k: base[k] for k in pick},
            "best": {**{k: best[k] for k in pick}, "clips_per_s": best["clips_per_s"]},
            "best_speedup_vs_baseline": round(best["clips_per_s"] / base["clips_per_s"], 2),
            "cpu_count": _cpu_count()}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_bench_train(cfg: BenchTrainConfig) -> int:
    print(json.dumps(bench_train(cfg), indent=1))
    return 0
