"""Shared fixtures: the real sample media in ../shared/data (skipped when absent), small synthetic datasets
of real encoded H.264 videos generated once per test session, tiny checkpoints, one torch thread, a
private cache folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"sample media not found at {SHARED} (../shared/data beside the project)")
    return SHARED


@pytest.fixture(scope="session")
def media_files(shared_data) -> list[Path]:
    files = sorted(p for p in (shared_data / "media").iterdir() if p.suffix != ".wav")
    assert files, "../shared/data/media is empty"
    return files


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """``synth(**SynthConfig fields) -> folder``: a synthetic benchmark of real encoded videos, written once per
    session for each setting (``vidcat synth``); read it, never write into it."""
    from vidcat.data.synthetic import SynthConfig, generate

    made: dict = {}

    def make(**fields) -> Path:
        key = tuple(sorted(fields.items()))
        if key not in made:
            made[key] = tmp_path_factory.mktemp("synth")
            generate(made[key], SynthConfig(**fields), progress=False)
        return made[key]

    return make


@pytest.fixture(scope="session")
def motion_data(synth) -> Path:
    """A small `motion` benchmark: 4 classes x 24 train / 6 val / 6 test videos."""
    return synth(per_class=24, seed=1)


@pytest.fixture()
def bad_files(tmp_path) -> dict[str, Path]:
    """Files that must never crash a batch job."""
    from vidcat.data.synthetic import SynthConfig
    from vidcat.data.synth_video import render_motion
    from vidcat.data.synth_media import mux_av
    import numpy as np

    good = mux_av(tmp_path / "good.mp4", render_motion(np.random.default_rng(0), "left", SynthConfig()), 12)
    data = good.read_bytes()
    files = {"good": good, "empty": tmp_path / "empty.mp4", "truncated": tmp_path / "truncated.mp4",
             "text": tmp_path / "notes.mp4", "garbage": tmp_path / "garbage.avi"}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["text"].write_text("this is not a video\n" * 20)
    files["garbage"].write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return files


@pytest.fixture(scope="session")
def small_motion(synth) -> Path:
    """A 4-class `motion` set, 4 videos per class and split (64 px, 24 frames); read it, never write into it."""
    return synth(per_class=4, seed=3)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> tuple[Path, list[Path]]:
    """tiny3d trained for 1 step on a 4-per-class, 12-frame, 32 px synthetic set: (last.pt, its test videos)."""
    import torch

    import vidcat
    from vidcat.data.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("tiny_ckpt")
    generate(root / "data", SynthConfig(per_class=4, frames=12, size=32, seed=5), progress=False)
    torch.manual_seed(0)
    vidcat.train(root / "data" / "train.csv", root / "run", model="tiny3d", epochs=1, batch_size=4, max_steps=1,
                 workers=0, progress=False, val=str(root / "data" / "val.csv"))
    return root / "run" / "last.pt", sorted((root / "data" / "test").rglob("*.mp4"))


CHECKPOINT_CLASSES = ["a", "b", "c", "d", "e"]


def _random_checkpoint(path: Path, model: str, seed: int = 0, **data) -> Path:
    """A checkpoint of ``model`` (random init, 5 classes a-e) with the model's own data config plus ``data``
    overrides (``model_kwargs=`` goes to the builder)."""
    import torch

    from vidcat.config import DataConfig
    from vidcat.models.build import Checkpoint
    from vidcat.models.registry import create_model, get_spec

    kwargs = data.pop("model_kwargs", {})
    cfg = DataConfig(**data).resolved(get_spec(model))
    torch.manual_seed(seed)
    net = create_model(model, num_classes=len(CHECKPOINT_CLASSES), **kwargs).eval()
    Checkpoint.from_dict({"model": model, "model_kwargs": kwargs, "classes": CHECKPOINT_CLASSES, "multilabel": False,
                          "data": cfg.as_dict(), "state_dict": net.state_dict()}).save(path)
    return path


@pytest.fixture(scope="session")
def make_checkpoint():
    """``make_checkpoint(path, model, seed=0, **data)`` writes a random-init checkpoint (see _random_checkpoint)."""
    return _random_checkpoint


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module of small models: on a shared 2-core machine a second OpenMP
    thread mostly spins (several times the CPU for the same steps). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def seeded():
    """torch's global generator seeded with 0 before the test (model initialisation, random inputs)."""
    import torch

    torch.manual_seed(0)


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """VIDCAT_CACHE pointed at an empty folder of this test's own."""
    monkeypatch.setenv("VIDCAT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
