"""Shared fixtures: the real sample media in ../shared/data (skipped when absent) and small
synthetic datasets of real encoded H.264 videos generated once per test session."""
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
def motion_data(tmp_path_factory) -> Path:
    """A small `motion` benchmark: 4 classes x 24 train / 6 val / 6 test videos."""
    from vidcat.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("motion")
    generate(out, SynthConfig(per_class=24, seed=1), progress=False)
    return out


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
