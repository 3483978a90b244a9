"""Model speed: ms per clip forward (and train step) on this machine, relative to ``tiny3d``."""
from __future__ import annotations

import time

import torch

from vidcat.models.registry import count_parameters, create_model, get_spec


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
    base = _time_model("tiny3d", repeat)
    res = _time_model(name, repeat) if name != "tiny3d" else base
    return {"model": name, **res, "baseline": "tiny3d", "baseline_forward_ms_per_clip": base["forward_ms_per_clip"],
            "forward_ratio_vs_baseline": round(res["forward_ms_per_clip"] / base["forward_ms_per_clip"], 2),
            "threads": torch.get_num_threads()}
