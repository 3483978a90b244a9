"""One decode per clip: a clip's views come from one pass over the frames they all need, each equal to the view
read alone; the extracted test view equals the streams model's own forward; clip workers lose only the clip
whose worker died."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import Dataset, Item
from vidcat.data.synth_media import mux_av, tone
from vidcat.featurefit.extract import NAMESPACE, extract_stream
from vidcat.featurefit.pool import ClipPool
from vidcat.io.store import Store

HALF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def _moving(n: int, h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    """A texture sliding right and down: consecutive frames differ, so flow and crops have something to see."""
    base = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, (i, 2 * i), (0, 1)) for i in range(n)])


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """300 frames of H.264 at 25 fps with a keyframe every 12 frames and a sound track."""
    path = tmp_path_factory.mktemp("views") / "clip.mp4"
    return mux_av(path, _moving(300), 25, audio=tone(440, 12.0), gop=12)


def _clips(path, modalities, **kw) -> VideoClips:
    data = DataConfig(frames=8, size=64, short_side=64, sampler="tsn", modalities=modalities, **HALF, **kw)
    return VideoClips(Dataset([Item(str(path), ["x"])], ["x"]), data)


def _draws():
    return [None, np.random.default_rng([7, 1]), np.random.default_rng([7, 2])]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]) if isinstance(v, torch.Tensor) else v == b[k], k


def test_views_decoded_together_equal_each_view_decoded_alone(long_clip):
    clips = _clips(long_clip, ("video", "flow"), flow_length=2, flow_method="dis_fast")
    item = clips.dataset.items[0]
    with clips.open(item) as r:
        together = clips.read_samples(r, item, _draws())
        shared = r.decoded
    alone, separate = [], 0
    for rng in _draws():
        with clips.open(item) as r:
            alone.append(clips.read_views(r, item, rng is not None, rng))
            separate += r.decoded
    for a, b in zip(together, alone):
        _assert_same(a, b)
    assert not torch.equal(together[0]["video"], together[1]["video"])    # the augmented views are other views
    assert not torch.equal(together[1]["video"], together[2]["video"])
    assert shared < separate


def test_flow_from_the_shared_decode_equals_flow_from_a_second_reader(long_clip, monkeypatch):
    clips = _clips(long_clip, ("flow",), flow_length=3, flow_method="dis_fast")
    item = clips.dataset.items[0]
    with clips.open(item) as r:
        shared = clips.read_samples(r, item, _draws())
    # as before: only the sampled frames decoded with the clip, the flow's partners read by a second reader
    monkeypatch.setattr(VideoClips, "frames_needed", lambda self, info, idx: np.asarray(idx, np.int64))
    with clips.open(item) as r:
        before = clips.read_samples(r, item, _draws())
    for a, b in zip(shared, before):
        _assert_same(a, b)
    assert shared[0]["flow"].abs().max() > 0.01


def test_a_sample_of_sound_alone_decodes_no_frame(long_clip, monkeypatch):
    clips = _clips(long_clip, ("audio",))
    item = clips.dataset.items[0]
    with clips.open(item) as r:
        sound = clips.read_samples(r, item, _draws())
        assert getattr(r, "decoded", 0) == 0
    monkeypatch.setattr(VideoClips, "frames_needed", lambda self, info, idx: np.asarray(idx, np.int64))
    with clips.open(item) as r:
        decoded = clips.read_samples(r, item, _draws())
        assert r.decoded > 0
    for a, b in zip(sound, decoded):        # the same windows and the same random draws
        _assert_same(a, b)
    assert sound[0]["audio_mask"] == 1.0 and sound[0]["audio"].std() > 0


def test_the_extracted_test_view_is_the_models_own_forward(long_clip, small_motion, tmp_path):
    from vidcat.models.stream_fusion import StreamFusion

    paths = [long_clip] + sorted((small_motion / "test").rglob("*.mp4"))[:2]
    ds = Dataset([Item(str(p), ["x"]) for p in paths], ["x"])
    model = StreamFusion(2, [{"name": "appearance", "kwargs": {"frames": 8, "runtime": "eager"},
                              "head": {"in_dim": 3840, "pool": "trend", "dims": 1280}}])
    stream = model.features["appearance"].eval()
    data = DataConfig(frames=8, size=64, short_side=64, sampler="tsn", modalities=("video",), **HALF)
    got = extract_stream(ds, data, stream, views=3, store=Store(NAMESPACE, root=tmp_path), workers=1,
                         log=lambda s: None)
    assert got.index == [0, 1, 2] and got.workers == 1 and got.loader_cpu_seconds > 0
    here = extract_stream(ds, data, stream, views=3, store=Store(NAMESPACE, root=tmp_path / "here"), workers=0,
                          log=lambda s: None)
    assert here.workers == 0
    np.testing.assert_allclose(here.feats, got.feats, rtol=1e-5, atol=1e-5)     # a worker computes what this does
    test = VideoClips(ds, data, train=False)
    with torch.no_grad():
        for i in range(len(paths)):
            own, present = stream(collate([test[i]]))
            # one clip through the network vs a batch of them: the same forward up to float32 batching noise
            np.testing.assert_allclose(got.feats[i, 0], own.reshape(-1).numpy(), rtol=1e-3, atol=1e-3)
            assert got.present[i, 0] == present[0] == 1
            assert np.abs(got.feats[i, 1] - got.feats[i, 0]).max() > 1e-3       # an augmented view differs


def _die_on_three(module, x: int) -> dict:
    if x == 3:
        os._exit(1)      # a decoder crash: the worker process is gone
    return {"x": x}


def test_a_worker_that_dies_loses_only_its_clip():
    with ClipPool(2, {"m": torch.nn.Identity()}) as pool:
        out = list(pool.map(_die_on_three, "m", [(i,) for i in range(8)], lost=lambda t: {"lost": t[0]}))
    assert sorted(r["x"] for r in out if "x" in r) == [0, 1, 2, 4, 5, 6, 7]
    assert [r for r in out if "lost" in r] == [{"lost": 3}]
