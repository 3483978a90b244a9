"""vidcat.io.motion: flow/MV sign conventions on a real tiny H.264 clip, quantization, the cache
(resume, parameter keys, bad files, strict, SIGKILL safety), AV1 fallback, CLI and bench smoke."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidcat.errors import VidcatError, VideoError
from vidcat.io.motion.cache import load_entry
from vidcat.io.motion import (build_cache, compute_flow, compute_motion, dequantize, entry_path, load_cached,
                           quantize, read_motion_vectors, stack_flow)

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = ROOT.parent / "shared" / "data" / "media"
SIZE, N, STEP, TOP, SQ = 64, 12, 2, 20, 24


def _texture(rng, h, w):
    return cv2.resize(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


def moving_square(n=N, size=SIZE, step=STEP, seed=0, h=None):
    """A textured square moving right by ``step`` px/frame over a static, faintly textured background."""
    rng = np.random.default_rng(seed)
    h = h or size
    bg = (_texture(rng, h, size) // 4 + 80).astype(np.uint8)
    tex = _texture(rng, SQ, SQ)
    frames = np.repeat(bg[None], n, 0)
    for t in range(n):
        frames[t, TOP:TOP + SQ, 8 + step * t:8 + step * t + SQ] = tex
    return frames


def write_h264(path, frames, fps=12, bframes=0, gop=6):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "16", "preset": "veryfast",
                     "x264-params": f"bframes={bframes}:keyint={gop}:min-keyint={gop}:scenecut=0"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return Path(path)


def _object_x(t, margin=4):
    return slice(8 + STEP * t + margin, 8 + STEP * t + SQ - margin)


OBJ_Y = slice(TOP + 4, TOP + SQ - 4)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_h264(tmp_path_factory.mktemp("mv") / "square.mp4", moving_square())


# -- flow and motion vectors --------------------------------------------------------------------
def test_dis_flow_moves_right():
    frames = moving_square()
    q = compute_flow(frames, "dis_fast")
    assert q.shape == (N - 1, SIZE, SIZE, 2) and q.dtype == np.uint8
    f = dequantize(q)
    obj = np.stack([f[t, OBJ_Y, _object_x(t)] for t in range(N - 1)])
    assert 1.0 < obj[..., 0].mean() < 3.0
    assert abs(obj[..., 1].mean()) < 0.5


def test_motion_vectors_match_flow_sign(clip):
    mv = read_motion_vectors(clip)
    assert mv.shape == (N, SIZE, SIZE, 2) and mv.dtype == np.uint8
    f = dequantize(mv)
    # field t = motion into frame t: the object sits at its frame-t position
    obj = np.stack([f[t, OBJ_Y, _object_x(t)] for t in range(1, N)])
    flow_x = dequantize(compute_flow(moving_square(), "dis_fast"))[0, OBJ_Y, _object_x(0), 0].mean()
    assert obj[..., 0].mean() > 1.0 and np.sign(obj[..., 0].mean()) == np.sign(flow_x)
    assert abs(obj[..., 1].mean()) < 0.5
    bg = f[1:, :12, :].mean()  # static background strip above the square
    assert abs(bg) < 0.3
    # I-frames (0 and 6 with keyint=6) carry no vectors: filled from neighbours, not left at zero
    assert dequantize(mv[6])[OBJ_Y, _object_x(6), 0].mean() > 1.0
    # indices + size: vectors are rescaled with the picture
    small = dequantize(read_motion_vectors(clip, indices=[3, 3, 40], size=32))
    assert small.shape == (3, 32, 32, 2)
    assert 0.5 < small[0, 12:18, 8 + 3:14, 0].mean() < 1.5


def test_motion_vectors_b_frames_normalised(tmp_path):
    """With B-frames, P vectors span several frames; per-frame motion must still be ~STEP px."""
    path = write_h264(tmp_path / "b.mp4", moving_square(), bframes=2, gop=12)
    f = dequantize(read_motion_vectors(path))
    per_frame = [f[t, OBJ_Y, _object_x(t), 0].mean() for t in range(1, N - 1)]
    assert all(1.0 < v < 3.0 for v in per_frame), per_frame


def test_quantize_roundtrip():
    q = np.arange(256, dtype=np.uint8)
    assert np.array_equal(quantize(dequantize(q)), q)
    f = np.linspace(-25, 25, 1001, dtype=np.float32)
    back = dequantize(quantize(f))
    inside = np.abs(f) <= 20
    assert np.abs(back[inside] - f[inside]).max() <= 20 / 255 + 1e-4  # half a step
    assert back.min() == -20 and back.max() == 20 and quantize(np.zeros(1))[0] == 128


def test_stack_flow():
    flow = np.arange(6 * 2 * 3 * 2, dtype=np.uint8).reshape(6, 2, 3, 2)
    one = stack_flow(flow, 1, length=3)
    assert one.shape == (6, 2, 3)
    assert np.array_equal(one[0], flow[1, ..., 0]) and np.array_equal(one[1], flow[1, ..., 1])
    assert np.array_equal(one[5], flow[3, ..., 1])
    many = stack_flow(flow, [0, 5], length=3)
    assert many.shape == (2, 6, 2, 3) and np.array_equal(many[1, 4], flow[5, ..., 0])  # edge repeat


def test_optional_methods_fail_clearly(monkeypatch, tmp_path):
    frames = moving_square(n=2)
    if not hasattr(cv2, "optflow"):
        with pytest.raises(VidcatError, match="opencv-contrib"):
            compute_flow(frames, "tvl1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("VIDCAT_RAFT_WEIGHTS", raising=False)
    with pytest.raises(VidcatError, match="weights"):
        compute_flow(frames, "raft")
    with pytest.raises(VidcatError, match="unknown flow method"):
        compute_flow(frames, "lucas")
    # a local weights file is used (random weights here: only the plumbing is checked)
    import torch
    from torchvision.models.optical_flow import raft_small
    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft.pth")
    monkeypatch.setenv("VIDCAT_RAFT_WEIGHTS", str(tmp_path / "raft.pth"))
    out = compute_flow(frames[:, :60, :52], "raft", num_flow_updates=2)
    assert out.shape == (1, 60, 52, 2) and out.dtype == np.uint8


@pytest.mark.skipif(not (SHARED_MEDIA / "torchcodec_av1_video.mkv").exists(), reason="../shared/data absent")
def test_av1_falls_back_to_dis(caplog):
    path = SHARED_MEDIA / "torchcodec_av1_video.mkv"
    with caplog.at_level(logging.WARNING, logger="vidcat.io.motion"):
        mv = read_motion_vectors(path, indices=[0, 1, 2], size=64)
    assert mv.shape[0] == 3 and mv.shape[1] == 64 and mv.dtype == np.uint8
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "av1_video.mkv" in lines[0] and "motion vectors" in lines[0]


@pytest.mark.skipif(not (SHARED_MEDIA / "mmaction2_demo.mp4").exists(), reason="../shared/data absent")
def test_real_video_mv_agrees_with_flow():
    path = SHARED_MEDIA / "mmaction2_demo.mp4"
    mv = dequantize(read_motion_vectors(path, indices=range(1, 25)))
    from vidcat.io.video import read_frames
    fl = dequantize(compute_flow(read_frames(path, indices=range(0, 25)), "dis_fast"))
    m = np.abs(fl).sum(-1) > 1
    assert np.corrcoef(mv[..., 0][m], fl[..., 0][m])[0, 1] > 0.3


# -- cache --------------------------------------------------------------------------------------
@pytest.fixture()
def videos(tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    paths = [write_h264(d / f"v{i}.mp4", moving_square(n=6, seed=i)) for i in range(2)]
    return d, paths


def test_cache_build_resume_params_bad_files(videos, tmp_path, caplog):
    d, paths = videos
    cache = tmp_path / "cache"
    (d / "empty.mp4").write_bytes(b"")
    (d / "broken.mp4").write_bytes(paths[0].read_bytes()[:300])
    with caplog.at_level(logging.WARNING, logger="vidcat.io.motion"):
        s = build_cache([d], cache, "dis_fast", progress=False)
    assert (s["total"], s["computed"], s["cached"], s["failed"]) == (4, 2, 0, 2)
    lines = [r.getMessage() for r in caplog.records]
    assert any("empty.mp4" in x for x in lines) and any("broken.mp4" in x for x in lines)
    assert all("\n" not in x for x in lines)
    got = load_cached(paths[0], cache, "dis")  # alias resolves to the same entry
    assert np.array_equal(got, compute_motion(paths[0], "dis_fast"))
    assert build_cache(paths, cache, "dis_fast", progress=False)["cached"] == 2
    assert build_cache(paths, cache, "dis_fast", size=32, progress=False)["computed"] == 2
    assert load_cached(paths[0], cache, "dis_fast", size=32).shape == (5, 32, 32, 2)
    assert load_cached(paths[0], cache, "dis_medium") is None
    s = build_cache(paths, cache, "mv", progress=False)  # stored compact, expanded on load
    assert s["computed"] == 2 and np.array_equal(load_cached(paths[1], cache, "mv"), read_motion_vectors(paths[1]))
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same bytes -> same key
    assert build_cache(paths, cache, "mv", progress=False)["cached"] == 2
    with open(paths[0], "ab") as f:                                     # edited bytes -> new key
        f.write(b"\0" * 16)
    assert build_cache(paths, cache, "mv", progress=False)["computed"] == 1
    with pytest.raises(VideoError, match="empty.mp4"):
        build_cache([d / "empty.mp4"], cache, "dis_fast", progress=False, strict=True)


def test_cache_parallel_workers(videos, tmp_path):
    _, paths = videos
    s = build_cache(paths, tmp_path / "c", "mv", workers=2, progress=False)
    assert s["computed"] == 2 and s["failed"] == 0


def test_cache_survives_sigkill(tmp_path):
    vids = [write_h264(tmp_path / f"k{i}.mp4", moving_square(n=30, size=160, h=120, step=1, seed=i))
            for i in range(8)]
    cache = tmp_path / "cache"
    cache.mkdir()
    # a temp file of a dead writer, named like a real pending entry: must never be read
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    fake = entry_path(vids[-1], cache, "farneback")
    fake.parent.mkdir(parents=True)
    Path(f"{fake}.tmp-{dead}").write_bytes(b"VCST1\n half written")
    code = (f"from vidcat.io.motion import build_cache; "
            f"build_cache({[str(v) for v in vids]!r}, {str(cache)!r}, 'farneback', workers=1, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not list(cache.rglob("*.vca")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.kill()  # SIGKILL: no cleanup handlers run
    finally:
        proc.wait()
    done = list(cache.rglob("*.vca"))
    assert 1 <= len(done) < 8, "the run was not interrupted mid-way"
    assert load_cached(vids[-1], cache, "farneback") is None  # the .tmp is ignored
    for v in vids:  # every visible entry is complete
        got = load_entry(v, cache, "farneback")
        assert got is None or got[0].shape == (29, 120, 160, 2)
    s = build_cache(vids, cache, "farneback", progress=False)
    assert s["cached"] == len(done) and s["computed"] == 8 - len(done) and s["failed"] == 0
    for tmp in cache.rglob("*.tmp-*"):  # left by killed writers: swept once stale
        os.utime(tmp, (0, 0))
    assert build_cache(vids, cache, "farneback", progress=False)["cached"] == 8
    assert not list(cache.rglob("*.tmp-*"))
    assert load_cached(vids[-1], cache, "farneback").shape == (29, 120, 160, 2)


@pytest.mark.parametrize("how", ["truncated", "garbled", "foreign", "old_format"])
def test_bad_cache_entry_is_recomputed_with_one_line(videos, tmp_path, caplog, how):
    """Caches that heal (issue 20): a bad entry is rejected with one line and recomputed, never trusted."""
    _, (a, b) = videos
    cache = tmp_path / "cache"
    assert build_cache([a, b], cache, "dis_fast", progress=False)["computed"] == 2
    entry, donor = entry_path(a, cache, "dis_fast"), entry_path(b, cache, "dis_fast")
    data = bytearray(entry.read_bytes())
    if how == "truncated":
        entry.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbled":
        data[-7] ^= 0xFF
        entry.write_bytes(bytes(data))
    elif how == "foreign":
        entry.write_bytes(donor.read_bytes())
    else:  # an entry of the old .npz format under the new name
        np.savez(open(entry, "wb"), motion=np.zeros((2, 4, 4, 2), np.uint8))
    with caplog.at_level(logging.WARNING, logger="vidcat.io.motion"):
        s = build_cache([a, b], cache, "dis_fast", progress=False)
    assert (s["computed"], s["cached"], s["failed"]) == (1, 1, 0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and str(entry) in lines[0] and "recomputing" in lines[0]
    assert np.array_equal(load_cached(a, cache, "dis_fast"), compute_motion(a, "dis_fast"))


def test_bad_entry_on_load_is_none_then_rebuilt(videos, tmp_path):
    _, (a, _) = videos
    build_cache([a], tmp_path / "c", "mv", progress=False)
    entry = entry_path(a, tmp_path / "c", "mv")
    entry.write_bytes(entry.read_bytes()[:-3])
    assert load_cached(a, tmp_path / "c", "mv") is None and not entry.exists()
    assert build_cache([a], tmp_path / "c", "mv", progress=False)["computed"] == 1
    assert np.array_equal(load_cached(a, tmp_path / "c", "mv"), read_motion_vectors(a))


def test_stale_temp_file_is_swept(videos, tmp_path):
    _, (a, _) = videos
    build_cache([a], tmp_path / "c", "mv", progress=False)
    left = entry_path(a, tmp_path / "c", "mv").with_name(".x.vca.tmp-424242")
    left.write_bytes(b"half")
    os.utime(left, (0, 0))
    build_cache([a], tmp_path / "c", "mv", progress=False)
    assert not left.exists()


# -- CLI and bench ------------------------------------------------------------------------------
def test_cli_flow(videos, tmp_path, capsys):
    from vidcat.cli import main

    d, _ = videos
    assert main(["flow", str(d), "--method", "mv", "--cache", str(tmp_path / "c"), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["computed"] == 2 and out["method"] == "mv"


def test_bench_flow_smoke(clip, capsys):
    from benchmarks.speed.flow import bench_flow

    r = bench_flow([clip], methods=["mv", "dis_fast", "dis_medium"], sizes=(32, None), pairs=4, repeats=1)
    assert json.loads(capsys.readouterr().out)["frames"] == N
    assert set(r["methods"]["mv"]["pairs_per_s"]) == {"32x32", "native"}
    assert r["mv_e2e_speedup_vs_dis_fast"] > 0 and r["decode_fps"] > 0
