"""The default recipe's parts: features on the one data path and their store, head selection by grouped CV,
automatic grouping of near-duplicates, the learning curve (vidcat.transfer).

Tiny and offline: a small conv net stands in for the backbone where the weights do not matter.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips
from vidcat.data.manifest import Dataset, Item
from vidcat.errors import VideoError
from vidcat.io.store import Store
from vidcat.models.frame_encoder import BackboneInfo
from vidcat.models.frame_head import MOTION_DIM, FrameHead, PooledHead
from vidcat.transfer import select as S
from vidcat.transfer.extract import NAMESPACE, extract

DATA = DataConfig(frames=4, size=32, short_side=32, sampler="tsn", stride=1, mean=(0.5,) * 3, std=(0.5,) * 3,
                  modalities=("video",))


class Counting(nn.Module):
    """Tiny conv backbone (N, 3, H, W) → (N, 3·8) (the avg | x | y layout) that counts the frames it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 24, 3, stride=2)
        self.frames = 0

    def forward(self, x):
        self.frames += len(x)
        return self.conv(x).mean((2, 3))


def tiny_model(seed_sha="tiny:0"):
    m = FrameHead(Counting(), PooledHead(3, "absdiff", 8, False, 24 + MOTION_DIM))
    m.backbone_info = BackboneInfo(name="tiny", pretrained=False, feat_dim=24, weights_sha256=seed_sha, pooling="avgpos")
    return m.eval()


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


def _store(tmp_path, lines=None):
    return Store(NAMESPACE, root=tmp_path / "cache", log=(lines.append if lines is not None else None))


def test_features_are_cached_by_content_and_recomputed_bit_identically(clips, tmp_path):
    model, lines = tiny_model(), []
    a = extract(clips, DATA, model, views=2, store=_store(tmp_path, lines), workers=0)
    assert a.feats.shape == (6, 2, 4, 24 + MOTION_DIM) and a.computed == 6 and model.backbone.frames == 6 * 2 * 4
    b = extract(clips, DATA, model, views=2, store=_store(tmp_path), workers=0)
    assert b.computed == 0 and model.backbone.frames == 48 and np.array_equal(a.feats, b.feats)
    # a renamed copy shares the entries (content key); another encoder does not
    copy = tmp_path / "renamed.mp4"
    shutil.copy(clips.items[0].path, copy)
    c = extract(Dataset([Item(str(copy), ["left"])], clips.classes), DATA, model, views=2, store=_store(tmp_path),
                workers=0)
    assert c.computed == 0 and np.array_equal(c.feats[0], a.feats[0])
    d = extract(clips, DATA, tiny_model("tiny:1"), views=1, store=_store(tmp_path), workers=0)
    assert d.computed == 6
    # truncate one entry: one line, recomputed in a different batch, bit-identical to the first run
    st = _store(tmp_path, lines)
    key = next(p for p in st.root.rglob("*.vca"))
    key.write_bytes(key.read_bytes()[:-10])
    e = extract(clips, DATA, model, views=2, store=st, workers=0)
    assert e.computed == 1 and np.array_equal(e.feats, a.feats)
    assert len([ln for ln in lines if "is bad" in ln]) == 1


def test_training_features_come_from_exactly_the_predict_input(clips, tmp_path):
    """One sampling definition: view 0 of the feature extraction is what VideoClips feeds eval/predict."""
    model = tiny_model()
    fs = extract(clips, DATA, model, views=1, store=_store(tmp_path), workers=0)
    clip = VideoClips(clips, DATA, train=False)[2]["video"]
    with torch.no_grad():
        direct = model.frame_features(clip[None]).numpy()[0]
    assert np.array_equal(fs.feats[2, 0], direct)


def test_workers_give_the_same_features(clips, tmp_path):
    a = extract(clips, DATA, tiny_model(), views=2, store=_store(tmp_path / "a"), workers=0)
    b = extract(clips, DATA, tiny_model(), views=2, store=_store(tmp_path / "b"), workers=2)
    assert np.array_equal(a.feats, b.feats)


def test_unreadable_files_are_skipped_with_one_line_or_fail_under_strict(clips, bad_files, tmp_path):
    bad = {k: v for k, v in bad_files.items() if k in ("empty", "text", "garbage")}
    items = clips.items[:2] + [Item(str(p), ["left"]) for p in bad.values()]
    ds, lines = Dataset(items, clips.classes), []
    fs = extract(ds, DATA, tiny_model(), store=_store(tmp_path), workers=0, log=lines.append)
    assert fs.index == [0, 1] and [p for p, _ in fs.skipped] == [str(p) for p in bad.values()]
    assert len(lines) == len(bad) and all(ln.startswith("vidcat: skipped ") for ln in lines)
    with pytest.raises(VideoError):
        extract(ds, DATA, tiny_model(), store=_store(tmp_path), workers=0, strict=True, log=lines.append)


def _planted(n_groups=12, per_group=3, d=16, t=4, seed=0):
    """Per-frame features where the class shows only in the signed slope of one positional channel."""
    rng = np.random.default_rng(seed)
    f = 3 * d + MOTION_DIM
    feats, labels, groups = [], [], []
    for g in range(n_groups):
        base = rng.normal(size=f)
        for _ in range(per_group):
            y = int(rng.integers(0, 2))
            x = base + 0.3 * rng.normal(size=(2, t, f))
            x[:, :, d + 3:d + 6] += (2 if y else -2) * np.linspace(-1, 1, t)[:, None]   # x-centroids move
            feats.append(x)
            labels.append(y)
            groups.append(g)
    return np.array(feats, np.float32), np.array(labels), np.array(groups)


def test_selection_picks_the_planted_better_candidate():
    feats, labels, groups = _planted()
    cands = (S.Candidate("mean", "global"), S.Candidate("mean", "positional"), S.Candidate("trend", "positional"))
    sel = S.select(feats, labels, groups, 2, cands=cands, k=4)
    assert sel.best == S.Candidate("trend", "positional")
    assert {r["candidate"] for r in sel.table} == {c.name for c in cands}
    assert sel.estimate["top1"] >= 0.9 and sel.estimate["nested"]
    assert "expected top-1" in sel.line() and "4-fold grouped CV, 36 clips, 12 groups" in sel.line()
    head = S.fit_head(feats, labels, sel.best, 2)
    with torch.no_grad():
        assert (head(torch.from_numpy(feats[:, 0])).argmax(1).numpy() == labels).mean() >= 0.95


def test_one_se_rule_keeps_the_simpler_of_two_equals():
    small, big = S.Candidate("mean", "global", C=0.01), S.Candidate("trend", "positional", C=0.1)
    scores = {big: ([0.9, 0.8, 0.85], None), small: ([0.85, 0.8, 0.85], None)}
    assert S.one_se_choice(scores, 16) == small
    scores[big] = ([1.0, 1.0, 1.0], None)
    assert S.one_se_choice(scores, 16) == big


def test_near_constant_features_never_get_huge_weights():
    """Issue 21: an exact-zero channel recomputed as ~1e-8 must not be divided by its ~1e-9 spread."""
    feats, labels, groups = _planted(seed=1)
    feats[..., 5] = 0.0
    feats[0, :, :, 5] = 3e-8                 # one recomputed entry
    head = S.fit_head(feats, labels, S.Candidate("mean", "global"), 2)
    assert float(head.keep[5]) == 0.0 and float(head.fc.weight.abs().max()) < 100
    clean = feats.copy()
    clean[..., 5] = 0.0
    h2 = S.fit_head(clean, labels, S.Candidate("mean", "global"), 2)
    with torch.no_grad():
        assert torch.equal(head(torch.from_numpy(feats[:, 0])).argmax(1), h2(torch.from_numpy(clean[:, 0])).argmax(1))


def test_auto_groups_merge_planted_near_duplicates():
    rng = np.random.default_rng(0)
    f = 3 * 32 + MOTION_DIM
    sources = rng.normal(size=(10, f))
    feats = np.stack([sources[i // 4] + 0.05 * rng.normal(size=(1, 4, f)) for i in range(40)]).astype(np.float32)
    g = S.auto_groups(feats, k=5)
    for s in range(10):
        assert len(set(g[s * 4:(s + 1) * 4])) == 1            # the 4 pieces of one recording: one group
    assert len(set(g)) == 10


def test_a_random_split_of_planted_duplicates_is_regrouped():
    """Without groups a random k-fold puts pieces of one recording on both sides and looks perfect; the
    automatic groups keep them together, so the estimate is honest (near chance on label-free features)."""
    rng = np.random.default_rng(3)
    f = 3 * 16 + MOTION_DIM
    src = rng.normal(size=(12, f))
    feats = np.stack([src[i // 4] + 0.02 * rng.normal(size=(2, 4, f)) for i in range(48)]).astype(np.float32)
    labels = np.repeat(rng.permutation([0, 1] * 6), 4)         # a label per recording, not in the pixels
    cands = (S.Candidate("mean", "global"),)
    naive = S.select(feats, labels, np.arange(48), 2, cands=cands, k=4)
    honest = S.select(feats, labels, S.auto_groups(feats, k=4), 2, cands=cands, k=4)
    assert naive.estimate["top1"] >= 0.85
    assert honest.estimate["top1"] <= 0.75 and honest.estimate["groups"] == 12


def test_learning_curve_has_one_point_per_fraction():
    feats, labels, groups = _planted(n_groups=16)
    rows = S.learning_curve(feats, labels, groups, S.Candidate("trend", "positional"), 2, k=4)
    assert [r["fraction"] for r in rows] == [0.25, 0.5, 0.75, 1.0]
    assert all(r["n"] == len(labels) and r["lo"] <= r["top1"] <= r["hi"] for r in rows)


def test_wilson_interval():
    lo, hi = S.wilson(24, 27)
    assert abs(lo - 0.7197) < 1e-3 and abs(hi - 0.9615) < 1e-3
    assert S.wilson(0, 0) == (0.0, 1.0)


_CHILD = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
from tests.test_transfer import DATA, tiny_model, _store_at
from vidcat.data.manifest import Dataset, Item
from vidcat.transfer.extract import extract
paths = {paths!r}
ds = Dataset([Item(p, ["a"]) for p in paths], ["a"])
fs = extract(ds, DATA, tiny_model(), views=2, store=_store_at({root_store!r}), workers=0, log=lambda s: None)
np.save({out!r}, fs.feats)
"""


def _store_at(root):
    return Store(NAMESPACE, root=root, log=lambda s: None)


def _child(clips, store_root, out):
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    paths = [it.path for it in clips.items]
    code = _CHILD.format(root=root, paths=paths, root_store=str(store_root), out=str(out))
    return subprocess.Popen([sys.executable, "-c", code])


def test_two_runs_sharing_a_cache_both_finish_with_the_solo_result(clips, tmp_path):
    solo = extract(clips, DATA, tiny_model(), views=2, store=_store_at(tmp_path / "solo"), workers=0)
    procs = [_child(clips, tmp_path / "shared", tmp_path / f"r{i}.npy") for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    for i in range(2):
        assert np.array_equal(np.load(tmp_path / f"r{i}.npy"), solo.feats)
    assert not list((tmp_path / "shared").rglob("*.tmp-*"))


def test_a_killed_extraction_resumes_with_what_it_finished(clips, tmp_path):
    import signal
    import time

    store_root = tmp_path / "store"
    p = _child(clips, store_root, tmp_path / "never.npy")
    t0 = time.time()
    while len(list(store_root.rglob("*.vca"))) < 4 and time.time() - t0 < 240 and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = len(list(store_root.rglob("*.vca")))
    model = tiny_model()
    fs = extract(clips, DATA, model, views=2, store=_store_at(store_root), workers=0)
    assert 0 < done and fs.computed <= 6 - done // 2
    fresh = extract(clips, DATA, tiny_model(), views=2, store=_store_at(tmp_path / "fresh"), workers=0)
    assert np.array_equal(fs.feats, fresh.feats)


def test_extraction_as_a_ray_job_writes_the_same_entries(clips, tmp_path):
    pytest.importorskip("ray")
    from vidcat.models.frame_head import frame_head

    def model():          # an importable model (Ray workers unpickle it): random-init Lite0, seeded
        return frame_head(3, pretrained=False).eval()

    local = extract(clips, DATA, model(), views=2, store=_store_at(tmp_path / "local"), workers=0)
    on_ray = extract(clips, DATA, model(), views=2, store=_store_at(tmp_path / "ray"), ray=True)
    assert on_ray.computed == 6 and np.allclose(on_ray.feats, local.feats, atol=1e-5)
    again = extract(clips, DATA, model(), views=2, store=_store_at(tmp_path / "ray"), workers=0)
    assert again.computed == 0 and np.array_equal(again.feats, on_ray.feats)
