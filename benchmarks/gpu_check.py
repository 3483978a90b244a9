"""GPU readiness check: train + evaluate the 3D/TSM zoo with bf16 autocast and channels_last on the
synthetic motion benchmark, compare model vs loader throughput, and smoke-test torchrun. One JSON out.

    python benchmarks/gpu_check.py                          # CUDA, native input sizes (fits ~10 min on one GPU)
    python benchmarks/gpu_check.py --device cpu --max-steps 2 --size 32 --frames 4 --per-class 2   # CPU smoke

Per model (r3d_18, r2plus1d_18, x3d_m, tsm by default), at the model's native frames/size unless
overridden:
* ``train``: AdamW, bf16 autocast (CUDA), channels_last(_3d) weights and inputs, ``--epochs`` or
  ``--max-steps``; the loader decodes with decode-time resizing (``short_side``) in ``--workers`` processes;
* ``test_top1``: accuracy on the test split (goal on CUDA with full epochs: >= 0.90);
* ``model_clips_s``: train steps/s x batch on a fixed in-memory batch (the model alone);
* ``loader_clips_s``: clips/s the DataLoader delivers with no model; ``loader_feeds`` = loader / model
  (goal >= 0.90: the GPU never waits for decoding).
``torchrun``: ``torch.distributed.run --nproc-per-node 1`` running this file's ``--ddp-smoke`` (DDP on
the device, one all-reduce and two steps).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODELS = ("r3d_18", "r2plus1d_18", "x3d_m", "tsm")


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _memory_format(x):
    import torch

    return torch.channels_last_3d if x.dim() == 5 else torch.channels_last


def build(name: str, a, num_classes: int, device):
    """Model at its native input (or the overrides), on ``device``, channels_last; its DataConfig."""
    import torch

    from vidcat.config import DataConfig
    from vidcat.models.registry import create_model, get_spec

    spec = get_spec(name)
    cfg = DataConfig(frames=a.frames, size=a.size).resolved(spec)
    model = create_model(name, num_classes=num_classes).to(device)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last_3d if spec.temporal and name != "tsm"
                         else torch.channels_last) if str(device).startswith("cuda") else model
    return model, cfg


def loaders(data: Path, cfg, a):
    from vidcat.data.dataset import VideoClips, make_loader
    from vidcat.data.manifest import load_dataset

    train = load_dataset(data / "train.csv")
    test = load_dataset(data / "test.csv", classes=train.classes)
    tl = make_loader(VideoClips(train, cfg, train=True), a.batch_size, True, a.workers)
    el = make_loader(VideoClips(test, cfg, train=False), a.batch_size, False, a.workers)
    return train.classes, tl, el


def run_model(name: str, data: Path, a) -> dict:
    import torch
    import torch.nn.functional as F

    device = torch.device(a.device)
    amp = a.amp == "bf16" and device.type == "cuda"
    torch.manual_seed(0)
    from vidcat.data.manifest import load_dataset

    classes = load_dataset(data / "train.csv").classes
    model, cfg = build(name, a, len(classes), device)
    _, train_loader, test_loader = loaders(data, cfg, a)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
    steps_total = a.max_steps or a.epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=max(steps_total, 1), pct_start=0.15)

    def step(x, y):
        x = x.to(device, non_blocking=True)
        if a.channels_last and device.type == "cuda":
            x = x.contiguous(memory_format=_memory_format(x))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    # train
    model.train()
    steps, t0, first_batch = 0, time.perf_counter(), None
    losses = []
    while steps < steps_total:
        for batch in train_loader:
            if batch["size"] == 0:
                continue
            first_batch = first_batch or batch
            losses.append(float(step(batch["video"], batch["label"])))
            sched.step()
            steps += 1
            if steps >= steps_total:
                break
    _sync(device)
    train_s = time.perf_counter() - t0

    # model alone: train steps on one in-memory batch
    x, y = first_batch["video"], first_batch["label"]
    for _ in range(1 if a.max_steps else 3):  # warm-up (cuDNN autotuning on CUDA)
        step(x, y)
    _sync(device)
    reps = max(1, min(a.bench_steps, 50))
    t = time.perf_counter()
    for _ in range(reps):
        step(x, y)
    _sync(device)
    model_rate = reps * len(y) / (time.perf_counter() - t)

    # loader alone
    n, t = 0, time.perf_counter()
    for i, batch in enumerate(train_loader):
        n += batch["size"]
        if i + 1 >= reps:
            break
    loader_rate = n / (time.perf_counter() - t)

    # test accuracy
    model.eval()
    correct = total = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for batch in test_loader:
            if batch["size"] == 0:
                continue
            xb = batch["video"].to(device)
            if a.channels_last and device.type == "cuda":
                xb = xb.contiguous(memory_format=_memory_format(xb))
            pred = model(xb).float().argmax(1).cpu()
            correct += int((pred == batch["label"]).sum())
            total += len(pred)
    return {"model": name, "frames": cfg.frames, "size": cfg.size, "steps": steps, "train_s": round(train_s, 2),
            "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
            "test_top1": round(correct / max(total, 1), 4), "test_clips": total,
            "model_clips_s": round(model_rate, 1), "loader_clips_s": round(loader_rate, 1),
            "loader_feeds": round(loader_rate / model_rate, 3), "bf16": amp,
            "channels_last": bool(a.channels_last and device.type == "cuda")}


def ddp_smoke(device: str) -> None:
    """Body run under torchrun: DDP on ``device``, an all-reduce, two optimizer steps; prints one JSON line."""
    import torch
    import torch.distributed as dist

    from vidcat.engine import distributed as D

    info = D.init_from_env(device)
    model = D.wrap_model(torch.nn.Linear(8, 3).to(info.device))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        loss = model(torch.randn(4, 8, device=info.device)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    t = torch.ones(1, device=info.device)
    if dist.is_initialized():
        dist.all_reduce(t)
    print(json.dumps({"ddp_smoke": "ok", "world_size": info.world_size, "all_reduce": float(t),
                      "backend": dist.get_backend() if dist.is_initialized() else None}), flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


def torchrun_smoke(device: str) -> dict:
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", __file__,
           "--ddp-smoke", "--device", device]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = [line for line in r.stdout.splitlines() if line.startswith("{")]
    res = json.loads(out[-1]) if out else {"error": (r.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return {"returncode": r.returncode, "seconds": round(time.perf_counter() - t, 1), **res}


def environment(device: str) -> dict:
    import torch

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device,
           "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["bf16_supported"] = torch.cuda.is_bf16_supported()
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=None, help="stop each model after this many steps (smoke)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--workers", type=int, default=None, help="loader processes (default: CPUs - 2, at most 12)")
    ap.add_argument("--frames", type=int, default=None, help="override the models' native frames")
    ap.add_argument("--size", type=int, default=None, help="override the models' native input size")
    ap.add_argument("--per-class", type=int, default=60, help="synthetic motion videos per class (train)")
    ap.add_argument("--data", default=str(ROOT / "data" / "gpu_check"))
    ap.add_argument("--amp", default="bf16", choices=("bf16", "none"))
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    ap.add_argument("--bench-steps", type=int, default=10)
    ap.add_argument("--skip-torchrun", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--ddp-smoke", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    import torch

    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.ddp_smoke:
        ddp_smoke(a.device)
        return 0
    if a.workers is None:
        a.workers = max(0, min((os.cpu_count() or 2) - 2, 12))
    from vidcat.data.synthetic import SynthConfig, generate

    data = Path(a.data) / f"motion_pc{a.per_class}"
    t = time.perf_counter()
    if not (data / "test.csv").exists():
        generate(data, SynthConfig(per_class=a.per_class, seed=0), progress=False)
    result = {"env": environment(a.device), "data": {"path": str(data), "seconds": round(time.perf_counter() - t, 1)},
              "settings": {k: getattr(a, k) for k in ("epochs", "max_steps", "batch_size", "workers", "frames",
                                                         "size", "amp", "channels_last")},
              "models": []}
    for name in [m for m in a.models.split(",") if m]:
        try:
            result["models"].append(run_model(name, data, a))
        except Exception as e:  # report and go on: one broken model must not hide the others
            result["models"].append({"model": name, "error": f"{type(e).__name__}: {e}"[:400]})
        print(json.dumps(result["models"][-1]), file=sys.stderr, flush=True)
    if not a.skip_torchrun:
        result["torchrun"] = torchrun_smoke(a.device)
    text = json.dumps(result)
    if a.out:
        Path(a.out).write_text(text)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
