"""The default model's feature extraction (vidcat.featurefit.extract) on real encoded clips: store entries keyed by
content and verified on read, features made from exactly the input prediction feeds the model, loader processes,
unreadable files, two runs sharing one cache, a killed run resuming, and the same entries from a Ray job.

A small seeded conv net stands in for the frozen encoder where the weights do not matter.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from vidcat.config import DataConfig
from vidcat.data.manifest import Dataset, Item
from vidcat.errors import VideoError
from vidcat.featurefit.extract import NAMESPACE, extract_stream, view_keys
from vidcat.inference.predictor import video_batch
from vidcat.io.store import Store
from vidcat.models.streams.base import StreamFeatures

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 4
DATA = DataConfig(frames=FRAMES, size=32, short_side=32, sampler="tsn", stride=1, mean=(0.5,) * 3, std=(0.5,) * 3,
                  modalities=("video",))

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyFrames(StreamFeatures):
    """A per-frame stream: a seeded conv net (N, 3, H, W) -> 8 numbers per frame, counting the frames it sees;
    ``delay`` seconds per clip make a run slow enough to be killed half-way."""

    name = "tiny"
    reads = ("video",)
    per_frame = True

    def __init__(self, tag: str = "tiny:0", delay: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.tag, self.frames, self.feat_dim, self.seen, self.delay = tag, FRAMES, 8, 0, delay

    def spec(self) -> dict:
        return {**super().spec(), "tag": self.tag}

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["video"]
        b, c, t, h, w = x.shape
        self.seen += b * t
        time.sleep(self.delay)
        feats = self.conv(x.transpose(1, 2).reshape(b * t, c, h, w)).mean((2, 3)).reshape(b, t, -1)
        return feats, torch.ones(b)


@pytest.fixture(scope="module")
def clips(motion_data, tmp_path_factory):
    """6 real H.264 clips (2 per class of 3) copied to a private folder, as a Dataset."""
    out = tmp_path_factory.mktemp("clips")
    items = []
    for name in ["left", "right", "up"]:
        for i in range(2):
            dst = out / f"{name}_{i}.mp4"
            shutil.copy(motion_data / "train" / name / f"{name}_{i:04d}.mp4", dst)
            items.append(Item(str(dst), [name]))
    return Dataset(items, ["left", "right", "up"])


def _store(root, lines=None):
    return Store(NAMESPACE, root=root, log=(lines.append if lines is not None else lambda s: None))


def _extract(ds, root, stream=None, views=2, **kw):
    return extract_stream(ds, DATA, stream or TinyFrames(), views=views, store=_store(root, kw.pop("lines", None)),
                          workers=kw.pop("workers", 0), log=kw.pop("log", lambda s: None), **kw)


def test_features_are_cached_by_content_and_recomputed_bit_identically(clips, tmp_path):
    stream, lines = TinyFrames(), []
    a = _extract(clips, tmp_path, stream)
    assert a.feats.shape == (6, 2, FRAMES * 8) and a.present.shape == (6, 2) and a.present.all()
    assert a.computed == 6 and stream.seen == 6 * 2 * FRAMES and a.index == list(range(6))
    b = _extract(clips, tmp_path, stream)
    assert b.computed == 0 and stream.seen == 48 and np.array_equal(a.feats, b.feats)
    # a renamed copy shares the entries (content key); a stream with other settings does not
    copy = tmp_path / "renamed.mp4"
    shutil.copy(clips.items[0].path, copy)
    c = _extract(Dataset([Item(str(copy), ["left"])], clips.classes), tmp_path, stream)
    assert c.computed == 0 and np.array_equal(c.feats[0], a.feats[0])
    assert _extract(clips, tmp_path, TinyFrames("tiny:1"), views=1).computed == 6
    # clip 1's centre view truncated, clip 4's augmented view garbled: one line each, both recomputed
    # bit-identically (in batches other than the first run's)
    store = _store(tmp_path)
    cut, garbled = (store.path(view_keys(store, clips.items[i].path, stream, DATA, 2)[v]) for i, v in ((1, 0), (4, 1)))
    cut.write_bytes(cut.read_bytes()[:-10])
    raw = bytearray(garbled.read_bytes())
    raw[-20] ^= 0xFF
    garbled.write_bytes(bytes(raw))
    e = _extract(clips, tmp_path, stream, lines=lines)
    assert e.computed == 2 and np.array_equal(e.feats, a.feats)
    assert len([ln for ln in lines if "is bad" in ln]) == 2, lines
    assert _extract(clips, tmp_path, stream).computed == 0


def test_view_0_is_exactly_the_input_predict_feeds_the_model(clips, tmp_path):
    """One sampling definition: the centre view a training feature is made from is what ``predict`` reads."""
    stream = TinyFrames().eval()
    fs = _extract(clips, tmp_path, stream, views=1)
    for i in (0, 3):
        batch, views = video_batch(clips.items[i].path, DATA, clips.classes)
        with torch.no_grad():
            direct = stream(batch)[0].reshape(views, -1).numpy()
        assert views == 1 and np.array_equal(fs.feats[i, 0], direct[0])


def test_augmented_views_differ_from_the_centre_and_do_not_depend_on_the_file_name(clips, tmp_path):
    fs = _extract(clips, tmp_path / "a", views=3)
    assert not np.array_equal(fs.feats[:, 0], fs.feats[:, 1]) and not np.array_equal(fs.feats[:, 1], fs.feats[:, 2])
    copy = tmp_path / "elsewhere.mp4"
    shutil.copy(clips.items[2].path, copy)
    other = _extract(Dataset([Item(str(copy), ["right"])], clips.classes), tmp_path / "b", views=3)
    assert np.array_equal(other.feats[0], fs.feats[2])          # views are seeded by the file's content


def test_loader_processes_give_the_same_features(clips, tmp_path):
    a = _extract(clips, tmp_path / "a")
    b = _extract(clips, tmp_path / "b", workers=2)
    assert np.array_equal(a.feats, b.feats)


def test_unreadable_files_are_skipped_with_one_line_or_fail_under_strict(clips, bad_files, tmp_path):
    bad = {k: v for k, v in bad_files.items() if k in ("empty", "text", "garbage")}
    ds, lines = Dataset(clips.items[:2] + [Item(str(p), ["left"]) for p in bad.values()], clips.classes), []
    fs = _extract(ds, tmp_path, log=lines.append)
    assert fs.index == [0, 1] and [p for p, _ in fs.skipped] == [str(p) for p in bad.values()]
    assert len(lines) == len(bad) and all(ln.startswith("vidcat: skipped ") for ln in lines)
    with pytest.raises(VideoError):
        _extract(ds, tmp_path / "strict", strict=True, log=lines.append)


_CHILD = """
import sys
import numpy as np
sys.path.insert(0, {root!r})
from tests.test_featurefit_extract import TinyFrames, _extract
from vidcat.data.manifest import Dataset, Item
ds = Dataset([Item(p, ["a"]) for p in {paths!r}], ["a"])
np.save({out!r}, _extract(ds, {store!r}, TinyFrames(delay={delay!r})).feats)
"""


def _child(clips, store_root, out, delay: float = 0.0) -> subprocess.Popen:
    code = _CHILD.format(root=str(ROOT), paths=[it.path for it in clips.items], store=str(store_root), out=str(out),
                         delay=delay)
    return subprocess.Popen([sys.executable, "-c", code])


def test_two_runs_sharing_a_cache_both_finish_with_the_solo_result(clips, tmp_path):
    solo = _extract(clips, tmp_path / "solo")
    procs = [_child(clips, tmp_path / "shared", tmp_path / f"r{i}.npy") for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    for i in range(2):
        assert np.array_equal(np.load(tmp_path / f"r{i}.npy"), solo.feats)
    assert not list((tmp_path / "shared").rglob("*.tmp-*"))


def test_a_killed_extraction_resumes_with_what_it_finished(clips, tmp_path):
    store_root = tmp_path / "store"
    p = _child(clips, store_root, tmp_path / "never.npy", delay=1.0)
    t0 = time.time()
    while len(list(store_root.rglob("*.vca"))) < 4 and time.time() - t0 < 240 and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL and not (tmp_path / "never.npy").exists()
    done = len(list(store_root.rglob("*.vca")))        # finished clips wrote both their views
    assert 4 <= done < 12
    fs = _extract(clips, store_root)
    assert fs.computed == 6 - done // 2
    assert np.array_equal(fs.feats, _extract(clips, tmp_path / "fresh").feats)


def test_extraction_as_a_ray_job_writes_the_same_entries(clips, tmp_path):
    pytest.importorskip("ray")
    from vidcat.models.streams.appearance import AppearanceFeatures

    def stream():          # importable by the Ray workers: a random-init Lite0, seeded, eager
        return AppearanceFeatures(frames=FRAMES, pretrained=False, runtime="eager").eval()

    local = _extract(clips, tmp_path / "local", stream())
    on_ray = _extract(clips, tmp_path / "ray", stream(), ray=True)
    assert on_ray.computed == 6 and not on_ray.skipped
    np.testing.assert_allclose(on_ray.feats, local.feats, atol=1e-5)
    again = _extract(clips, tmp_path / "ray", stream())
    assert again.computed == 0 and np.array_equal(again.feats, on_ray.feats)
