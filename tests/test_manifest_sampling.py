import json

import numpy as np
import pytest
import torch

from vidcat.config import DataConfig
from vidcat.data import transforms as T
from vidcat.data.manifest import load_dataset, read_split_list
from vidcat.data.sampling import SamplerConfig, clip_indices, sample_indices, tsn_indices, view_positions
from vidcat.errors import VidcatError


def _touch(root, rel):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_folder_per_class(tmp_path):
    for rel in ("cat/a.mp4", "cat/sub/b.avi", "dog/c.mkv", "dog/notes.txt", ".hidden/d.mp4"):
        _touch(tmp_path, rel)
    ds = load_dataset(tmp_path)
    assert ds.classes == ["cat", "dog"] and not ds.multilabel
    assert sorted((it.labels[0], it.path.rsplit("/", 1)[1]) for it in ds.items) == [
        ("cat", "a.mp4"), ("cat", "b.avi"), ("dog", "c.mkv")]


def test_csv_relative_paths_text_and_multilabel(tmp_path):
    (tmp_path / "m.csv").write_text("path,labels,text,group\nv/a.mp4,cat;dog,hello,1\n/abs/b.mp4,dog,,2\n")
    ds = load_dataset(tmp_path / "m.csv")
    assert ds.multilabel and ds.classes == ["cat", "dog"]
    a, b = ds.items
    assert a.path == str(tmp_path / "v/a.mp4") and a.labels == ["cat", "dog"] and a.text == "hello"
    assert a.meta == {"group": "1"} and b.path == "/abs/b.mp4" and b.text is None


def test_jsonl(tmp_path):
    rows = [{"path": "a.mp4", "label": "x"}, {"path": "b.mp4", "labels": ["x", "y"], "text": "t"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = load_dataset(tmp_path / "m.jsonl")
    assert ds.multilabel and [it.labels for it in ds.items] == [["x"], ["x", "y"]]


def test_split_lists(tmp_path):
    ucf = tmp_path / "trainlist01.txt"
    ucf.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBasketball/v_Basketball_g01_c01.avi 8\n")
    items = read_split_list(ucf, video_root=tmp_path / "UCF-101")
    assert [i.labels for i in items] == [["ApplyEyeMakeup"], ["Basketball"]]
    assert items[0].path == str(tmp_path / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
    hmdb = tmp_path / "brush_hair_test_split1.txt"
    hmdb.write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    assert [i.path.rsplit("/", 2)[1:] for i in read_split_list(hmdb)] == [["brush_hair", "a.avi"]]
    assert [i.path.rsplit("/", 1)[1] for i in read_split_list(hmdb, class_index={"keep": "2"})] == ["b.avi"]


def test_manifest_errors(tmp_path):
    with pytest.raises(VidcatError, match="no such file"):
        load_dataset(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("file,label\na.mp4,x\n")
    with pytest.raises(VidcatError, match="needs a header with 'path'"):
        load_dataset(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(VidcatError, match="the dataset is empty"):
        load_dataset(tmp_path / "empty.csv")
    (tmp_path / "m.csv").write_text("path,label\na.mp4,zebra\n")
    with pytest.raises(VidcatError, match="labels not known to the model: zebra"):
        load_dataset(tmp_path / "m.csv", classes=["cat", "dog"])
    (tmp_path / "m.jsonl").write_text("{oops\n")
    with pytest.raises(VidcatError, match=r"m.jsonl:1: not valid JSON"):
        load_dataset(tmp_path / "m.jsonl")


def test_tsn_segments_cover_the_video():
    rng = np.random.default_rng(0)
    idx = tsn_indices(100, 8, train=False)
    assert idx.tolist() == [6, 18, 31, 43, 56, 68, 81, 93]
    for _ in range(20):
        r = tsn_indices(100, 8, train=True, rng=rng)
        assert all(int(12.5 * s) <= v < 12.5 * (s + 1) for s, v in enumerate(r))
    assert tsn_indices(3, 8, train=False).max() <= 2  # short video: indices repeat, never overflow


def test_clip_sampling():
    rng = np.random.default_rng(0)
    assert clip_indices(100, 4, 2, train=False).tolist() == [46, 48, 50, 52]
    starts = {int(clip_indices(100, 4, 2, True, rng)[0]) for _ in range(50)}
    assert len(starts) > 10 and max(starts) <= 93
    assert clip_indices(5, 8, 1, train=False).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert view_positions(1) == [0.5] and view_positions(4) == [0.125, 0.375, 0.625, 0.875]
    first, last = (sample_indices(100, SamplerConfig("clip", 4, 1), False, view=v)[0] for v in (0.125, 0.875))
    assert first < last
    with pytest.raises(ValueError):
        sample_indices(10, SamplerConfig("bogus", 4, 1), False)


def test_transforms_shapes_and_normalisation():
    x = T.to_video(np.full((4, 48, 80, 3), 255, np.uint8))
    assert x.shape == (4, 3, 48, 80) and x.dtype == torch.uint8
    rng = np.random.default_rng(0)
    assert T.crop_resize(x, T.random_box(48, 80, rng), 32).shape == (4, 3, 32, 32)
    assert T.test_boxes(48, 80, 1) == [T.crop_box(48, 80)] == [(0, 16, 48)]
    assert T.test_boxes(48, 80, 3) == [(0, 0, 48), (0, 16, 48), (0, 32, 48)]
    assert T.test_boxes(80, 48, 3) == [(0, 0, 48), (16, 0, 48), (32, 0, 48)]
    crops = [T.crop_resize(x, b, 32) for b in T.test_boxes(48, 80, 3)]
    assert len(crops) == 3 and all(c.shape == (4, 3, 32, 32) and c.dtype == torch.float32 for c in crops)
    y = T.model_input(crops[0], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert y.shape == (3, 4, 32, 32) and torch.allclose(y, torch.ones_like(y))  # 255 -> 1.0 -> (1 - .5) / .5
    ramp = torch.arange(80, dtype=torch.float32).repeat(3, 1, 48, 1)
    left, _, right = (T.crop_resize(ramp, b, 48) for b in T.test_boxes(48, 80, 3))
    assert left.mean() < right.mean() and torch.equal(left, ramp[..., :48])  # same size: cut, not resampled


def test_flip_is_off_by_default_because_it_changes_direction_labels():
    assert DataConfig().hflip is False
    assert DataConfig(modalities=("rgb", "flow")).modalities == ("video", "flow")
