"""Untrusted media (issue 13): lying headers, non-videos, damage reports, limits and timeouts."""
import os
import re
from fractions import Fraction

import av
import numpy as np
import pytest

from vidcat.errors import VidcatError, VideoError
from vidcat.io import limits as limits_mod
from vidcat.io.video import DecodeLimits, VideoReader, iter_frames, probe, read_frames

from test_video_io import _level, _numbered_video


def _write_video(path, n=100, size=64, fps=25, faststart=True, seed=0):
    """Noisy frames, so the media data (not the header) dominates the file."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"} if faststart else {}) as out:
        s = out.add_stream("libx264", rate=fps)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        s.options = {"g": "10", "crf": "18"}
        for i in range(n):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


# -- a header that lies ------------------------------------------------------------------------
def test_header_lying_avi_is_counted_not_trusted(shared_data, tmp_path):
    src = shared_data / "media" / "mmaction2_test.avi"
    data = bytearray(src.read_bytes())
    data[143] = 0x20   # the AVI header now claims 536,871,076 frames
    bad = tmp_path / "lying.avi"
    bad.write_bytes(bytes(data))
    clean = probe(src)
    info = probe(bad)
    assert info.header_frames == 536_871_076
    assert info.num_frames == clean.num_frames == 164
    assert info.duration == pytest.approx(clean.duration, abs=0.1)
    with VideoReader(bad) as r:
        assert r.warning == "header claims 536871076 frames; file holds 164"
        whole = r.frames(short_side=32)
    assert len(whole) == 164
    stream = iter_frames(bad, short_side=32, every=4)
    assert sum(1 for _ in stream) == 41 and stream.decoded == 164


# -- things that are not videos ----------------------------------------------------------------
def test_text_read_as_terminal_art_is_refused(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("a perfectly ordinary README line\n" * 200)
    assert av.open(str(txt)).format.name == "tty"   # FFmpeg would render it as a 640x400 "video"
    ans = tmp_path / "art.ans"
    ans.write_text("\x1b[1;31mHELLO\x1b[0m world\n" * 100)
    renamed = tmp_path / "notes.mp4"
    renamed.write_bytes(txt.read_bytes())
    for path in (txt, ans):
        with pytest.raises(VideoError) as e:
            probe(path)
        assert e.value.reason.startswith("not a video: text rendered as pictures (tty/ansi)")
    with pytest.raises(VideoError, match="not a readable media file"):
        read_frames(renamed, [0])


@pytest.mark.parametrize("fmt,codec", [("PNG", "png"), ("JPEG", "mjpeg"), ("BMP", "bmp"), ("GIF", "gif")])
def test_still_image_renamed_mp4_is_refused(tmp_path, fmt, codec):
    from PIL import Image

    path = tmp_path / f"photo_{fmt}.mp4"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path, format=fmt)
    with pytest.raises(VideoError) as e:
        read_frames(path, [0])
    assert e.value.reason.startswith("not a video:") and f"({codec})" in e.value.reason


def test_animated_gif_is_still_a_video(tmp_path):
    from PIL import Image

    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert len(read_frames(path)) == 3


def test_pipe_named_like_a_video_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    with pytest.raises(VideoError, match="not a regular file"):
        probe(fifo)


def test_symlink_loop_named_like_a_video(tmp_path):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(tmp_path / "loop.mp4")
    with pytest.raises(VideoError, match="broken or looping symlink"):
        probe(loop)


# -- damage is reported ------------------------------------------------------------------------
def test_clean_file_has_no_warning(tmp_path):
    path = _write_video(tmp_path / "ok.mp4", n=60)
    with VideoReader(path) as r:
        r.frames([0, 30, 59])
        assert r.warning is None
    stream = iter_frames(path)
    assert sum(1 for _ in stream) == 60 and stream.warning is None


def test_truncated_file_is_flagged(tmp_path):
    path = _write_video(tmp_path / "ok.mp4", n=100)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with VideoReader(cut) as r:
        assert r.info.num_frames == 100   # the header still promises 100
        frames = r.frames([5, 40, 95], short_side=32)
        assert len(frames) == 3
        assert re.search(r"truncated: decodable frames end at (\d+) of 100 expected", r.warning)
    stream = iter_frames(cut)
    n = sum(1 for _ in stream)
    assert 10 < n < 90 and f"truncated: decoded {n} of 100 frames" in stream.warning
    # cut to 5 %: either refused outright or flagged, never silently "fine"
    tiny = tmp_path / "tiny.mp4"
    tiny.write_bytes(data[: len(data) // 20])
    try:
        with VideoReader(tiny) as r:
            r.frames([10, 50, 90])
            assert "truncated" in r.warning
    except VideoError as e:
        assert e.reason


# -- limits ------------------------------------------------------------------------------------
def test_decode_timeout_stops_a_long_decode(tmp_path, monkeypatch):
    path = _numbered_video(tmp_path / "n.mp4", n=80)
    clock = iter(np.arange(0.0, 1e6, 1.0))   # every look at the clock: one more second
    monkeypatch.setattr(limits_mod.time, "monotonic", lambda: float(next(clock)))
    stream = iter_frames(path, limits=DecodeLimits(timeout_s=30))
    with pytest.raises(VideoError, match=r"decode timed out after 30 s"):
        for _ in stream:
            pass
    assert stream.decoded < 60


def test_frame_pixel_and_size_limits(tmp_path):
    path = _numbered_video(tmp_path / "n.mp4", n=30, size=32)
    with pytest.raises(VideoError, match="frame size 32x32 exceeds DecodeLimits.max_pixels"):
        probe(path, limits=DecodeLimits(max_pixels=1000))
    with pytest.raises(VideoError, match=r"more than DecodeLimits.max_frames \(10\)"):
        read_frames(path, limits=DecodeLimits(max_frames=10))
    with pytest.raises(VideoError, match="exceeds DecodeLimits.max_array_bytes"):
        read_frames(path, limits=DecodeLimits(max_array_bytes=32 * 32 * 3 * 5))
    with pytest.raises(VideoError, match="over DecodeLimits.max_duration_s"):
        probe(path, limits=DecodeLimits(max_duration_s=0.5))
    assert _level(read_frames(path, limits=DecodeLimits(max_frames=30))).tolist() == list(range(30))


def test_default_limits_are_configurable(tmp_path):
    path = _numbered_video(tmp_path / "n.mp4", n=30, size=32)
    old = limits_mod.set_default_limits(DecodeLimits(max_frames=5))
    try:
        with pytest.raises(VideoError, match="max_frames"):
            read_frames(path)
    finally:
        limits_mod.set_default_limits(old)
    assert len(read_frames(path)) == 30
    with pytest.raises(VidcatError, match="DecodeLimits.timeout_s must be a positive number"):
        DecodeLimits(timeout_s=0)
