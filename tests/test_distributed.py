"""Data-parallel training under torch's elastic launcher: 2 CPU processes (gloo) on real encoded clips.

Both ranks must end with identical weights (DDP), each trained on its half of the data; the evaluation
gathered from both ranks (eval sampler padded 7 -> 8, padding removed) must equal a 1-process
evaluation of the same weights, row for row.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from vidcat.data.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("ddp")
    generate(root, SynthConfig(per_class=2, size=32, frames=8, seed=7), progress=False)
    rows = list(csv.DictReader(open(root / "val.csv")))[:7]  # odd: the eval sampler pads rank 1
    with open(root / "val7.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_torchrun_two_processes(clips, tmp_path, monkeypatch):
    from dist_train_loop import CFG

    from vidcat.data.dataset import VideoClips, collate
    from vidcat.data.manifest import load_dataset
    from vidcat.engine.distributed import launch
    from vidcat.models.registry import create_model

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import this checkout's vidcat
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ranks = launch(2, sys.executable, str(ROOT / "tests" / "dist_train_loop.py"), str(clips / "train.csv"),
                   str(clips / "val7.csv"), str(tmp_path))
    assert sorted(ranks) == [0, 1]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    ev = torch.load(tmp_path / "eval.pt")
    # 8 train clips / 2 ranks / batch 2 = 2 steps per epoch per rank; rank 0 evaluated 4 of the 7 rows
    assert ev["world"] == 2 and ev["steps"] == 4 and ev["local_rows"] == 4
    torch.manual_seed(100)
    init = create_model("tiny3d", num_classes=4).state_dict()
    assert any(not torch.equal(init[k], w0[k]) for k in w0 if w0[k].is_floating_point())  # it trained

    train_ds = load_dataset(clips / "train.csv")
    model = create_model("tiny3d", num_classes=len(train_ds.classes))
    model.load_state_dict(w0)
    model.eval()
    val = VideoClips(load_dataset(clips / "val7.csv", classes=train_ds.classes), CFG, train=False)
    batch = collate([val[i] for i in range(len(val))])
    with torch.no_grad():
        ref = torch.softmax(model(batch["video"]), -1)
    assert ev["scores"].shape == ref.shape == (7, 4)
    assert torch.equal(ev["labels"], batch["label"])
    assert torch.allclose(ev["scores"], ref, atol=1e-5)


def test_a_failed_rank_is_one_error_naming_it():
    from vidcat.engine.distributed import launch
    from vidcat.errors import VidcatError

    with pytest.raises(VidcatError, match=r"^rank 1 of 2 failed: exit status 3$"):
        launch(2, sys.executable, "-c", "import os, sys; sys.exit(3 if os.environ['RANK'] == '1' else 0)")


def test_single_process_is_a_no_op():
    from vidcat.engine import distributed as D

    info = D.init_from_env("cpu")
    assert (info.rank, info.world_size, info.distributed) == (0, 1, False) and D.is_main()
    m = torch.nn.Linear(2, 2)
    assert D.wrap_model(m) is m and D.unwrap(m) is m and D.distributed_sampler(range(5)) is None
    s, y = torch.rand(3, 2), torch.arange(3)
    assert D.gather_eval(s, y, 3) == (s, y)
    D.barrier()


def test_joining_a_group_leaves_it_at_exit(monkeypatch):
    """A rank that exits with its gloo group still up can abort on the way out (SIGABRT from gloo's threads
    outliving the interpreter): joining registers the group's destruction to run at exit."""
    import atexit
    import socket

    import torch.distributed as dist

    from vidcat.engine import distributed as D

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    at_exit = []
    monkeypatch.setattr(atexit, "register", at_exit.append)
    D.init_from_env("cpu", timeout_s=30)
    assert dist.is_initialized() and at_exit == [D.shutdown]
    at_exit[0]()
    assert not dist.is_initialized()
    D.shutdown()  # a second call (already left) is a no-op
