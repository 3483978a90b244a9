"""A tiny data-parallel training loop for tests/test_distributed.py; run it under torchrun:

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/dist_train_loop.py TRAIN.csv VAL.csv OUT

Trains tiny3d for 2 epochs on real encoded clips (DistributedSampler), then every rank saves its
weights and rank 0 saves the gathered evaluation (eval sampler, padding removed) of VAL.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import load_dataset
from vidcat.engine import distributed as D
from vidcat.models.registry import create_model

CFG = DataConfig(frames=4, size=32)


def main(train_csv: str, val_csv: str, out: str) -> None:
    info = D.init_from_env("cpu")
    torch.manual_seed(100 + info.rank)  # different init per rank: DDP must broadcast rank 0's
    out = Path(out)
    train_ds = load_dataset(train_csv)
    train = VideoClips(train_ds, CFG, train=True)
    model = D.wrap_model(create_model("tiny3d", num_classes=len(train_ds.classes)))
    sampler = D.distributed_sampler(train, shuffle=True, seed=0)
    loader = torch.utils.data.DataLoader(train, batch_size=2, sampler=sampler, shuffle=sampler is None,
                                         collate_fn=collate)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    steps = 0
    for epoch in range(2):
        if sampler is not None:
            sampler.set_epoch(epoch)
        for batch in loader:
            loss = F.cross_entropy(model(batch["video"]), batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    D.sync_buffers(model)
    net = D.unwrap(model).eval()
    torch.save(net.state_dict(), out / f"rank{info.rank}.pt")

    val = VideoClips(load_dataset(val_csv, classes=train_ds.classes), CFG, train=False)
    eloader = torch.utils.data.DataLoader(val, batch_size=2, sampler=D.eval_sampler(val), collate_fn=collate)
    scores, labels = [], []
    with torch.no_grad():
        for batch in eloader:
            scores.append(torch.softmax(net(batch["video"]), -1))
            labels.append(batch["label"])
    s, y = D.gather_eval(torch.cat(scores), torch.cat(labels), len(val))
    if D.is_main():
        torch.save({"scores": s, "labels": y, "world": info.world_size, "steps": steps,
                    "local_rows": len(torch.cat(labels))}, out / "eval.pt")
    D.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:4])
