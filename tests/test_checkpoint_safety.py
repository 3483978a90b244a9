"""Checkpoints are data, never code (issue 21): a pickle that would run something is refused in one
line before anything of it runs; edited metadata (unknown model, wrong class count) is one line too;
checkpoints written by this code base keep loading."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidcat.errors import VidcatError

CLASSES = ["a", "b", "c"]


class Payload:
    """Unpickling this writes a marker file (as a malicious best.pt would run a command)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _checkpoint(path: Path, **extra) -> Path:
    """A tiny3d checkpoint (random init) written by the current save path, as ``vidcat train`` does."""
    from vidcat.config import DataConfig
    from vidcat.models.build import Checkpoint, build_model, setup_model

    setup = setup_model("tiny3d", DataConfig(frames=4, size=32), CLASSES)
    torch.manual_seed(0)
    return Checkpoint(setup, build_model(setup).state_dict(), extra).save(path)


def _run(argv, capsys) -> tuple[int, list[str]]:
    from vidcat.cli import main

    rc = main(argv)
    err = capsys.readouterr().err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


def _commands(ckpt: Path, video: Path, data: Path) -> list[list[str]]:
    return [["eval", "--checkpoint", str(ckpt), "--data", str(data), "--workers", "0", "--quiet"],
            ["predict", "--checkpoint", str(ckpt), str(video), "--quiet"]]


def test_malicious_pickle_is_refused_without_running(tmp_path, bad_files, capsys):
    marker = tmp_path / "marker"
    good = torch.load(_checkpoint(tmp_path / "good.pt"), weights_only=True)
    ckpt = tmp_path / "run" / "best.pt"
    ckpt.parent.mkdir()
    torch.save({**good, "extra": Payload(marker)}, ckpt)  # a real checkpoint with one poisoned entry
    for argv in _commands(ckpt, bad_files["good"], bad_files["good"].parent):
        rc, lines = _run(argv, capsys)
        assert rc == 2, (argv, lines)
        assert lines == [f"vidcat: error: {ckpt} is not a vidcat checkpoint (it holds pickled Python objects, "
                         "never loaded: it asks to run io.open)"], lines
        assert not marker.exists(), f"{argv[0]} ran the pickle's payload"


def test_weights_file_refuses_pickles(tmp_path):
    from vidcat.models.surgery import load_weights

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"format": "vidcat-transfer/1", "report": Payload(marker)}, path)
    with pytest.raises(VidcatError, match="holds pickled Python objects, not only tensors: refused"):
        load_weights(torch.nn.Linear(2, 2), path)
    assert not marker.exists()


def test_checkpoints_of_this_code_base_still_load(tmp_path, bad_files, capsys):
    """Everything training stores (optimizer, scheduler, rng, numpy numbers from metrics) is saved as
    plain values and read back with weights_only=True; so is a file from before this change whose
    score was a numpy scalar."""
    from vidcat.models.build import Checkpoint

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    rng = torch.get_rng_state()
    extra = {"epoch": np.int64(1), "score": np.float64(0.5), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "rng": rng,
             "train_state": {"best": np.float32(0.5), "history": [{"epoch": 1, "val_top1": np.float64(0.5)}]},
             "recipe": {"curve": np.arange(3), "out": tmp_path}}
    ck = Checkpoint.load(_checkpoint(tmp_path / "last.pt", **extra))
    assert ck.extra["score"] == 0.5 and type(ck.extra["score"]) is float and ck.extra["epoch"] == 1
    assert torch.equal(ck.extra["recipe"]["curve"], torch.arange(3)) and ck.extra["recipe"]["out"] == str(tmp_path)
    torch.optim.AdamW(net.parameters()).load_state_dict(ck.extra["optimizer"])
    sched.load_state_dict(ck.extra["scheduler"])
    assert torch.equal(ck.extra["rng"], rng)
    # a file saved before plain(): numpy scalars and arrays pickled as such still load (data, not code)
    old = tmp_path / "old.pt"
    torch.save({**torch.load(tmp_path / "last.pt", weights_only=True), "score": np.float64(0.25),
                "curve": np.zeros(2)}, old)
    assert Checkpoint.load(old).extra["score"] == 0.25
    rc, lines = _run(["predict", "--checkpoint", str(old), str(bad_files["good"]), "--quiet"], capsys)
    assert rc == 0, lines


def test_edited_metadata_is_one_line(tmp_path, bad_files, capsys):
    d = torch.load(_checkpoint(tmp_path / "good.pt"), weights_only=True)
    cases = {"unknown.pt": ({**d, "model": "resnet9000"}, "unknown model 'resnet9000'"),
             "classes.pt": ({**d, "classes": CLASSES + ["extra"]},
                            "its weights do not fit tiny3d with 4 classes (size mismatch for"),
             "noclasses.pt": ({**d, "classes": []}, "is not a usable checkpoint (its class list"),
             "data.pt": ({**d, "data": {**d["data"], "frames": -3}}, "is not a usable checkpoint (its data settings")}
    for name, (content, want) in cases.items():
        path = tmp_path / name
        torch.save(content, path)
        for argv in _commands(path, bad_files["good"], bad_files["good"].parent):
            rc, lines = _run(argv, capsys)
            assert rc == 2 and len(lines) == 1, (name, argv[0], lines)
            assert lines[0].startswith(f"vidcat: error: {path}") and want in lines[0], (name, lines)


def test_state_dicts_keep_their_version_metadata(tmp_path):
    """A state dict is stored as torch stores it: BatchNorm & co. read their ``_metadata`` versions."""
    from vidcat.models.build import Checkpoint

    ck = Checkpoint.load(_checkpoint(tmp_path / "best.pt"))
    meta = getattr(ck.state_dict, "_metadata", None)
    assert meta and all("version" in v for v in meta.values())
    ck.build()  # loads strictly
