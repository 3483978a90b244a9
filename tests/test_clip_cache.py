"""ClipCache: a cached clip equals a fresh decode; entries are atomic; keys follow content and size."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidcat.data.clip_cache import ClipCache, open_clips
from vidcat.errors import VideoError
from vidcat.io.store import content_key
from vidcat.io.video import VideoReader, read_frames


@pytest.fixture()
def demo(shared_data):
    return shared_data / "media" / "mmaction2_demo.mp4"


def test_cached_clip_equals_fresh_decode(demo, tmp_path):
    cache = ClipCache(tmp_path / "c", chunk_bytes=1 << 20)  # several chunks: exercises the streamed fill
    idx = np.array([0, 1, 2, 3, 97, 98, 250, 3, 10_000])  # out of order, repeats, past the end
    with VideoReader(demo) as r:
        fresh = r.frames(idx, short_side=64)
        info = r.info
    calls = []

    def decode(path, indices, side):
        calls.append(len(indices))
        return read_frames(path, indices, short_side=side)

    first = cache.get_or_decode(demo, idx, 64, decode)
    assert first.dtype == np.uint8 and first.shape == fresh.shape
    np.testing.assert_array_equal(first, fresh)
    assert sum(calls) == info.num_frames and len(calls) > 2
    again = cache.get_or_decode(demo, idx[::-1], 64, decode)  # a hit: no decoding
    np.testing.assert_array_equal(again, fresh[::-1])
    assert sum(calls) == info.num_frames
    with open_clips(demo, str(tmp_path / "c"), short_side=64) as reader:  # the dataset's entry point
        assert reader.info.num_frames == info.num_frames and reader.info.fps == info.fps
        np.testing.assert_array_equal(reader.frames([5, 6, 7]), read_frames(demo, [5, 6, 7], short_side=64))


def test_key_follows_content_and_size(demo, tmp_path):
    cache = ClipCache(tmp_path / "c")
    copy = tmp_path / "renamed.mp4"
    shutil.copy(demo, copy)
    assert content_key(copy) == content_key(demo)
    assert cache.key(copy, 64) == cache.key(demo, 64) != cache.key(demo, 96)
    assert ClipCache(tmp_path / "c", frame_stride=2).key(demo, 64) != cache.key(demo, 64)
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert content_key(copy) != content_key(demo)


def test_frame_stride_snaps_down(demo, tmp_path):
    cache = ClipCache(tmp_path / "c", frame_stride=3)
    got = cache.get_or_decode(demo, [0, 4, 8], 48)
    np.testing.assert_array_equal(got, read_frames(demo, [0, 3, 6], short_side=48))


def test_crash_mid_fill_leaves_no_entry(demo, tmp_path):
    cache = ClipCache(tmp_path / "c", chunk_bytes=1 << 20)
    calls = []

    def dies(path, indices, side):
        calls.append(1)
        if len(calls) == 3:
            raise VideoError(path, "simulated crash")
        return read_frames(path, indices, short_side=side)

    with pytest.raises(VideoError, match="simulated crash"):
        cache.get_or_decode(demo, [0, 1], 64, dies)
    assert list((tmp_path / "c").rglob("*")) == [p for p in (tmp_path / "c").rglob("*") if p.is_dir()]
    assert (demo, 64) not in cache
    np.testing.assert_array_equal(cache.get_or_decode(demo, [0, 1], 64), read_frames(demo, [0, 1], short_side=64))


def test_killed_writer_leaves_only_a_temp_file(demo, tmp_path):
    """A process killed mid-write (no cleanup runs) leaves a hidden temp file, never a readable entry."""
    code = f"""
import os
from vidcat.data.clip_cache import ClipCache
from vidcat.io.video import read_frames
n = []
def decode(path, idx, side):
    n.append(1)
    if len(n) == 3:
        os._exit(9)
    return read_frames(path, idx, short_side=side)
ClipCache({str(tmp_path / 'c')!r}, chunk_bytes=1 << 20).get_or_decode({str(demo)!r}, [0], 64, decode)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, env=env)
    assert proc.returncode == 9, proc.stderr
    files = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert files and all(p.name.startswith(".") and ".tmp-" in p.name for p in files)
    cache = ClipCache(tmp_path / "c")
    assert (demo, 64) not in cache
    np.testing.assert_array_equal(cache.get_or_decode(demo, [7], 64), read_frames(demo, [7], short_side=64))


def test_unreadable_file_is_a_video_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="not a readable media file"):
        ClipCache(tmp_path / "c").get_or_decode(bad, [0], 64)
    with pytest.raises(VideoError, match="file not found"):
        ClipCache(tmp_path / "c").get_or_decode(tmp_path / "missing.mp4", [0], 64)


def test_dataset_through_the_cache_gives_the_same_samples(demo, tmp_path):
    """The dataset wiring (VideoReader -> open_clips) changes no sample: test views are identical."""
    import torch

    from vidcat.data.clip_cache import cached_clips
    from benchmarks.speed.train import model_data_config
    from vidcat.data.dataset import VideoClips
    from vidcat.data.manifest import Dataset, Item

    cfg = model_data_config("tiny3d")
    ds = Dataset([Item(str(demo), ["x"])], ["x"])
    plain = VideoClips(ds, cfg, clips=2)[0]["video"]
    with cached_clips(cfg, tmp_path / "c"):
        cached = VideoClips(ds, cfg, clips=2)[0]["video"]
        assert (demo, cfg.decode_short_side) in ClipCache(tmp_path / "c")
    assert plain.shape == cached.shape == (2, 3, 16, 64, 64)
    assert torch.equal(plain, cached)


def test_bench_loader_and_train_smoke(demo, motion_data, tmp_path):
    """`vidcat bench loader|train` on a tiny input: the JSON they print (no timing asserted)."""
    from benchmarks.speed.loader import BenchLoaderConfig, bench_loader
    from benchmarks.speed.train import BenchTrainConfig, bench_train
    from vidcat.errors import VidcatError

    r = bench_loader(BenchLoaderConfig(files=(str(demo),), epochs=2, repeat_items=1, batch_size=1, long_seconds=2))
    assert len(r["cache_clips_per_s_by_epoch"]) == 2 and r["clips_per_epoch"] == 1 and r["cache_mb"] > 0
    assert r["long_video"]["video_frames"] == 50 and isinstance(r["long_video"]["rss_flat"], bool)
    rows = (motion_data / "train.csv").read_text().splitlines()
    small = tmp_path / "small.csv"
    small.write_text("\n".join([rows[0]] + [f"{motion_data}/{r}" for r in rows[1::24]]) + "\n")  # 4 clips
    t = bench_train(BenchTrainConfig(data=str(small), threads=(1,), workers=(0,), steps=1,
                                     warmup=0, batch_size=2, clip_cache=str(tmp_path / "cc")))
    assert [s["clip_cache"] for s in t["settings"]] == [False, True]
    assert all(s["clips_per_s"] > 0 and s["nonfinite_steps"] == 0 for s in t["settings"])
    with pytest.raises(VidcatError, match="--workers must list counts >= 0"):
        BenchTrainConfig(workers="0,-1")


# -- caches that heal (issue 20): bad entries are recomputed, never trusted -------------------------
def _corrupt(entry: Path, how: str, donor: Path | None = None) -> None:
    data = bytearray(entry.read_bytes())
    if how == "truncated":
        entry.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbled":
        data[-100] ^= 0xFF                                   # one byte of the frames, not the header
        entry.write_bytes(bytes(data))
    elif how == "foreign":
        entry.write_bytes(donor.read_bytes())               # another file's entry copied in
    elif how == "old_format":
        np.save(open(entry, "wb"), np.zeros((2, 4, 4, 3), np.uint8))


@pytest.fixture()
def two_clips(tmp_path):
    from vidcat.data.synth_media import mux_av
    from vidcat.data.synth_video import render_motion
    from vidcat.data.synthetic import SynthConfig

    cfg = SynthConfig()
    return [mux_av(tmp_path / f"{d}.mp4", render_motion(np.random.default_rng(i), d, cfg), 12)
            for i, d in enumerate(("left", "up"))]


@pytest.mark.parametrize("how", ["truncated", "garbled", "foreign", "old_format"])
def test_bad_entry_is_recomputed_with_one_line(two_clips, tmp_path, how):
    a, b = two_clips
    fresh = read_frames(a, [0, 3, 5], short_side=32)
    ClipCache(tmp_path / "c").get_or_decode(a, [0], 32)
    ClipCache(tmp_path / "c").get_or_decode(b, [0], 32)
    cache = ClipCache(tmp_path / "c")
    entry, donor = cache.store.path(cache.key(a, 32)), cache.store.path(cache.key(b, 32))
    _corrupt(entry, how, donor)
    lines = []
    cache = ClipCache(tmp_path / "c", log=lines.append)      # a new process's view: nothing verified yet
    np.testing.assert_array_equal(cache.get_or_decode(a, [0, 3, 5], 32), fresh)
    assert len(lines) == 1 and str(entry) in lines[0] and "recomputing" in lines[0]
    np.testing.assert_array_equal(ClipCache(tmp_path / "c").get_or_decode(a, [0, 3, 5], 32), fresh)


def test_leftover_temp_file_is_swept(two_clips, tmp_path):
    cache = ClipCache(tmp_path / "c")
    cache.get_or_decode(two_clips[0], [0], 32)
    left = cache.store.path(cache.key(two_clips[0], 32)).with_name(".x.vca.tmp-99999")
    left.write_bytes(b"half an entry")
    os.utime(left, (0, 0))                                   # its writer died long ago
    ClipCache(tmp_path / "c")
    assert not left.exists()


def _fill_worker(args):
    root, paths, indices = args
    cache = ClipCache(root, chunk_bytes=1 << 14)             # many chunks: the writers interleave
    return [cache.get_or_decode(p, indices, 32).tobytes() for p in paths]


def test_two_processes_fill_one_cache(two_clips, tmp_path):
    import multiprocessing as mp

    idx = list(range(0, 24, 2))
    jobs = [(str(tmp_path / "c"), [str(p) for p in two_clips], idx),
            (str(tmp_path / "c"), [str(p) for p in two_clips[::-1]], idx)]
    with mp.get_context("spawn").Pool(2) as pool:
        r1, r2 = pool.map(_fill_worker, jobs)
    assert r1 == r2[::-1]
    for p, got in zip(two_clips, r1):
        assert got == read_frames(p, idx, short_side=32).tobytes()
    lines = []
    cache = ClipCache(tmp_path / "c", log=lines.append)
    assert all((p, 32) in cache for p in two_clips) and not list((tmp_path / "c").rglob("*.tmp-*"))
    cache.get_or_decode(two_clips[0], [0], 32)
    assert lines == []
