"""``vidcat prepare``: real clips re-encoded at the training size with a short GOP, layout/manifest kept."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest

from vidcat.data.manifest import load_dataset
from vidcat.data.prepare import PrepareConfig, prepare, run_prepare
from vidcat.errors import VidcatError
from vidcat.io.video import probe, read_frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def _keyframe_gaps(path) -> int:
    with av.open(str(path)) as c:
        keys = [i for i, p in enumerate(p for p in c.demux(c.streams.video[0]) if p.size) if p.is_keyframe]
    return max(np.diff(keys)) if len(keys) > 1 else 0


@pytest.fixture()
def tree(shared_data, tmp_path):
    """A folder-per-class tree of real clips (symlinks) plus one broken file."""
    media = shared_data / "media"
    root = tmp_path / "data"
    (root / "walk").mkdir(parents=True)
    (root / "talk" / "sub").mkdir(parents=True)
    (root / "walk" / "demo.mp4").symlink_to(media / "mmaction2_demo.mp4")
    (root / "talk" / "sub" / "test.avi").symlink_to(media / "mmaction2_test.avi")  # mpeg4 + mp3 audio
    (root / "talk" / "nasa.mp4").symlink_to(media / "torchcodec_nasa_13013.mp4")  # 2 audio + 2 subtitle streams
    (root / "talk" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    return root


def test_prepare_tree_keeps_layout_audio_subtitles(tree, tmp_path, capsys):
    out = tmp_path / "prepared"
    lines = []
    report = prepare(PrepareConfig(str(tree), str(out), short_side=64, gop=8, measure=2, frames=8), log=lines.append)
    assert report["encoded"] == 3 and report["skipped"] == 1
    assert len(lines) == 1 and "broken.mp4" in lines[0] and "\n" not in lines[0]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["talk/nasa.mp4", "talk/sub/test.mp4", "walk/demo.mp4"]  # no temp file left, broken one absent
    ds = load_dataset(out)
    assert ds.classes == ["talk", "walk"] and len(ds.items) == 3

    demo, src = out / "walk" / "demo.mp4", tree / "walk" / "demo.mp4"
    a, b = probe(src), probe(demo)
    assert (b.height, b.width) == read_frames(src, [0], short_side=64).shape[1:3] and b.num_frames == a.num_frames and abs(b.duration - a.duration) < 0.05
    assert _keyframe_gaps(demo) <= 8
    idx = [0, 50, 200]
    assert _psnr(read_frames(demo, idx), read_frames(src, idx, short_side=64)) > 28
    test = probe(out / "talk" / "sub" / "test.mp4")
    assert test.has_audio and test.codec == "h264"
    nasa = probe(out / "talk" / "nasa.mp4")
    assert nasa.has_audio and nasa.has_subtitles and nasa.streams.count("subtitle:mov_text") == 2
    assert report["epoch_decode_speedup"] > 0 and report["measured_on"] == 2

    again = prepare(PrepareConfig(str(tree), str(out), short_side=64, gop=8, measure=0), log=lines.append)
    assert again["already_there"] == 3 and again["encoded"] == 0  # resumable: done files are kept


def test_prepare_rewrites_manifest_paths(shared_data, tmp_path):
    media = shared_data / "media"
    manifest = tmp_path / "set" / "train.csv"
    manifest.parent.mkdir()
    (manifest.parent / "clips").mkdir()
    (manifest.parent / "clips" / "a.mp4").symlink_to(media / "mmaction2_demo.mp4")
    manifest.write_text(f"path,label,split\nclips/a.mp4,walk,x\n{media / 'torchcodec_h265_video.mp4'},talk,y\n")
    out = tmp_path / "out"
    assert run_prepare(PrepareConfig(str(manifest), str(out), short_side=32, measure=1)) == 0
    ds = load_dataset(out / "train.csv")
    assert [it.labels for it in ds.items] == [["walk"], ["talk"]]
    assert [it.meta["split"] for it in ds.items] == ["x", "y"]
    assert all(probe(it.path).height == 32 for it in ds.items)
    assert "_external" in ds.items[1].path


def test_prepare_options_are_checked(tree, tmp_path):
    with pytest.raises(VidcatError, match="--out must differ"):
        PrepareConfig(str(tree), str(tree))
    with pytest.raises(VidcatError, match="--short-side must be an even number"):
        PrepareConfig(str(tree), str(tmp_path / "o"), short_side=63)
    with pytest.raises(VidcatError, match="no such file"):
        PrepareConfig(str(tmp_path / "missing"), str(tmp_path / "o"))
