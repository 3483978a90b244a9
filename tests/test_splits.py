"""The one split module: grouped folds, train/val splits, learning-curve subsets, and automatic groups
(near-duplicate clips, and recording sessions told by the files' metadata, never by their names)."""
from __future__ import annotations

import numpy as np
import pytest

from vidcat.data import splits as S


def test_grouped_folds_never_split_a_group_and_logo_holds_one_group_out():
    y = np.repeat([0, 1, 2], 20)
    g = np.arange(60) // 5                      # 12 groups of 5 clips
    for k in (3, 5, None):
        folds = S.grouped_folds(y, g, k)
        assert len(folds) == (12 if k is None else k)
        for tr, te in folds:
            assert not set(g[tr]) & set(g[te])
        assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(60))
    assert S.grouped_folds(y, np.zeros(60), 5) == []          # one group: nothing to cross-validate


def test_train_val_split_keeps_groups_whole_and_every_class_in_training():
    y = np.repeat([0, 1], 30)
    g = np.arange(60) // 3
    tr, va = S.train_val_split(y, g, 0.2, seed=1)
    assert not set(g[tr]) & set(g[va]) and len(va) and set(y[tr]) == {0, 1}
    assert 0.1 < len(va) / 60 < 0.35


def test_group_subset_takes_whole_groups():
    g = np.arange(40) // 4
    sub = S.group_subset(np.arange(40), g, 0.5, np.random.default_rng(0))
    assert len(np.unique(g[sub])) == 5 and all((g == x).sum() == (g[sub] == x).sum() for x in np.unique(g[sub]))


def test_near_duplicates_are_grouped():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 32))
    emb = np.repeat(base, 4, axis=0) + 0.01 * rng.normal(size=(24, 32))   # 6 recordings, 4 pieces each
    g = S.near_duplicate_groups(emb, k=3)
    assert len(np.unique(g)) == 6 and all(len(np.unique(g[i * 4:(i + 1) * 4])) == 1 for i in range(6))


def test_sessions_from_metadata_join_straddling_near_duplicates():
    metas = [{"encoder": "phoneA", "size": "1280x720", "fps": "30.00"}] * 4 + \
            [{"encoder": "phoneB", "size": "640x480", "fps": "25.00"}] * 4 + \
            [{"encoder": "phoneC", "size": "640x480", "fps": "25.00"}] * 4
    fine = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 3, 5])      # group 3 straddles phones B and C
    sessions = S.session_groups(metas, fine)
    assert len(np.unique(sessions[:4])) == 1 and len(np.unique(sessions[4:])) == 1
    assert sessions[0] != sessions[4]
    got = S.resolve_groups(None, np.random.default_rng(0).normal(size=(12, 8)), metas, k=3)
    assert got.how == "auto" and got.n_sessions >= 2
    given = S.resolve_groups(["a", "b"] * 6, np.zeros((12, 8)), metas)
    assert given.how == "given" and given.sessions is None and given.n == 2


def test_recording_metadata_tells_devices_apart_but_never_reads_the_name(tmp_path):
    from vidcat.data.synth_media import mux_av
    from vidcat.io.video import recording_metadata

    frames = np.zeros((6, 48, 64, 3), np.uint8)
    a = mux_av(tmp_path / "left_001.mp4", frames, 12)
    b = mux_av(tmp_path / "right_001.mp4", np.zeros((6, 32, 32, 3), np.uint8), 25)
    ma, mb = recording_metadata(a), recording_metadata(b)
    assert ma["size"] == "64x48" and mb["size"] == "32x32" and ma["fps"] != mb["fps"]
    assert not any("left" in str(v) or "right" in str(v) for v in (*ma.values(), *mb.values()))
    assert recording_metadata(tmp_path / "missing.mp4") == {}


@pytest.mark.parametrize("bad", ["(", "no_group_here"])
def test_a_group_regex_that_cannot_work_is_one_line(tmp_path, bad):
    from vidcat.data.manifest import Dataset, Item
    from vidcat.errors import VidcatError

    ds = Dataset([Item(str(tmp_path / "a_g1_.mp4"), ["x"])], ["x"])
    with pytest.raises(VidcatError, match="^--group-regex"):
        S.given_groups(ds, bad)
