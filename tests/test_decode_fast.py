"""Fast decode paths (issue 11) give exactly the frames of a plain reference decode."""
import json
import shutil
from fractions import Fraction

import av
import numpy as np
import pytest

from vidcat.data.keyframes import keyframe_indices, snap_to_keyframes, tsn_keyframe_indices
from vidcat.io.video import VideoReader, iter_frames, output_size, read_frames


def _bframe_video(path, n=90, size=(64, 48), fps=25, gop=30, pts_ms=None):
    """x264 with B-frames (so skip_frame=NONREF has non-reference frames to drop); textured frames
    that differ from each other."""
    w, h = size
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"g": str(gop), "bf": "3", "crf": "20", "sc_threshold": "0"}
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.roll(base, (i, 2 * i), (0, 1)), format="rgb24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _reference(path, short_side=None, fmt="rgb24"):
    """Plain PyAV: every frame in display order, converted one by one (a fresh converter each)."""
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            w, h = output_size(f.width, f.height, short_side)
            out.append((f.time, f.to_ndarray(format=fmt, width=w, height=h)))
    return out


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def assert_matches(got, ref, resized: bool):
    """Exact at native size; a resize goes through RGBA (faster SIMD path): PSNR >= 40 dB."""
    assert got.shape == ref.shape
    if resized and got.ndim == 4:
        assert psnr(got, ref) >= 40, psnr(got, ref)
        assert np.abs(got.astype(int) - ref).max() <= 8
    else:
        assert np.array_equal(got, ref)


@pytest.fixture(scope="module")
def bvideo(tmp_path_factory):
    return _bframe_video(tmp_path_factory.mktemp("fast") / "b.mp4")


@pytest.mark.parametrize("short_side,fmt", [(None, "rgb24"), (32, "rgb24"), (32, "gray")])
def test_whole_file_equals_reference(bvideo, short_side, fmt):
    ref = np.stack([a for _, a in _reference(bvideo, short_side, fmt)])
    got = read_frames(bvideo, short_side=short_side, gray=fmt == "gray")
    assert_matches(got, ref, short_side is not None)
    streamed = np.stack(list(iter_frames(bvideo, short_side=short_side, gray=fmt == "gray", every=7)))
    assert np.array_equal(streamed, got[::7])


def test_abandoned_stream_does_not_leak_into_the_next_read(bvideo):
    with VideoReader(bvideo) as r:
        it = r.iter()
        first = [next(it) for _ in range(5)]
        it.close()
        again = list(r.iter(max_frames=5))
        mid = r.frames([40])
        assert [np.array_equal(a, b) for a, b in zip(first, again)] == [True] * 5
        assert len(list(r.iter())) == 90 and np.array_equal(next(r.iter(every=40, max_frames=2)), first[0])
        assert np.array_equal(list(r.iter(every=40))[1], mid[0])


def test_resize_without_rgba_is_exactly_the_reference(bvideo, monkeypatch):
    import vidcat.io.video as V

    monkeypatch.setattr(V, "RESIZE_VIA_RGBA", False)
    ref = np.stack([a for _, a in _reference(bvideo, 32)])
    assert np.array_equal(read_frames(bvideo, short_side=32), ref)


def test_sparse_and_dense_reads_with_skipping_equal_reference(bvideo):
    ref = np.stack([a for _, a in _reference(bvideo, 32)])
    rng = np.random.default_rng(0)
    reads = [np.sort(rng.choice(90, 8, replace=False)) for _ in range(4)] + [np.arange(40, 56), [89, 3, 3, 60]]
    with VideoReader(bvideo, threads=1) as fast, VideoReader(bvideo, threads=1) as plain:
        plain.skip_nonref = False
        skipped_any = False
        for idx in reads:
            a = fast.frames(idx, short_side=32)
            b = plain.frames(idx, short_side=32)
            assert_matches(a, ref[np.asarray(idx)], resized=True)
            assert np.array_equal(b, a)
            skipped_any |= fast.decoded < plain.decoded
            assert fast.warning is None
    assert skipped_any, "skip_frame=NONREF never dropped a frame: the fast path was not exercised"


def test_skipping_is_safe_on_variable_frame_rate_gaps(tmp_path):
    # long gaps (0.5 s) between some frames: a skipped non-reference frame may be the one on screen
    pts = [i * 40 for i in range(20)] + [800 + i * 500 for i in range(8)] + [4800 + i * 40 for i in range(20)]
    path = _bframe_video(tmp_path / "vfr.mp4", n=len(pts), fps=25, gop=48, pts_ms=pts)
    ref = _reference(path)
    times = np.array([f[0] for f in ref])
    rng = np.random.default_rng(1)
    for _ in range(4):
        want = np.sort(rng.uniform(0, times[-1], 6))
        expect = [ref[int(np.searchsorted(times, t + 1e-4, side="right")) - 1][1] for t in want]
        with VideoReader(path, threads=1) as r:
            got = r.frames_at(want - r.info.start_time)
        assert np.array_equal(got, np.stack(expect))


def test_keyframe_snapping(bvideo):
    keys = keyframe_indices(bvideo)
    assert keys.tolist() == [0, 30, 60]
    tsn = np.array([5, 16, 27, 38, 50, 61, 72, 84])   # one per segment of 90 frames
    snapped = snap_to_keyframes(tsn, keys, 90)
    # segments [0,11.25) [22.5,33.75) [56.25,67.5) hold keyframes 0, 30, 60; the rest keep theirs
    assert snapped.tolist() == [0, 16, 30, 38, 50, 60, 72, 84]
    idx = tsn_keyframe_indices(90, 3, keys, train=False)
    assert idx.tolist() == [0, 30, 60]
    with VideoReader(bvideo, threads=1) as r:
        frames = r.frames(idx, short_side=32)
        assert r.decoded <= 2 * len(idx)   # one seek + about one decoded frame per keyframe
    ref = np.stack([a for _, a in _reference(bvideo, 32)])
    assert_matches(frames, ref[idx], resized=True)


def test_bench_decode_reports_the_ratios(bvideo, tmp_path):
    from benchmarks.speed.decode import BenchDecodeConfig, bench_file

    res = bench_file(str(bvideo), BenchDecodeConfig(repeat=1, short_side=32, segments=4, clip_frames=8))
    for key in ("rgb_decode_over_ffmpeg", "sparse_speedup_vs_naive", "sparse_over_min_decode"):
        assert isinstance(res[key], float) and res[key] > 0, key
    assert res["frames"] == 90 and res["gop_s"] == pytest.approx(1.2)
    assert ("ffmpeg_null" in res["whole_fps"]) == bool(shutil.which("ffmpeg"))
    json.dumps(res)


@pytest.mark.parametrize("gop", [12, 300])
def test_only_a_wanted_frame_a_keyframe_away_is_sought(tmp_path, monkeypatch, gop):
    """Frames SEEK_GAP_FRAMES or more apart with a keyframe between: one seek each; nearer ones, or a file with
    one keyframe: decoded straight through from the probe's first frame, never a seek."""
    import vidcat.io.video as V

    seeks = []
    real_seek = V.VideoReader._seek
    monkeypatch.setattr(V.VideoReader, "_seek", lambda self, t: (seeks.append(t), real_seek(self, t))[1])
    path = _bframe_video(tmp_path / "v.mp4", n=200, gop=gop)
    ref = np.stack([a for _, a in _reference(path, 32)])
    far = np.arange(3, 200, 3 * V.SEEK_GAP_FRAMES)
    near = np.arange(3, 200, V.SEEK_GAP_FRAMES // 2)
    for idx, expect in ((far, len(far) - 1 if gop < V.SEEK_GAP_FRAMES else 0), (near, 0)):
        seeks.clear()
        with VideoReader(path, threads=1) as r:
            assert_matches(r.frames(idx, short_side=32), ref[idx], resized=True)
        assert len(seeks) == expect, (idx, seeks)
