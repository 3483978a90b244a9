from fractions import Fraction

import av
import numpy as np
import pytest

from vidcat.errors import VideoError
from vidcat.io.video import VideoReader, find_videos, probe, read_frames, read_frames_at


def _numbered_video(path, n=60, fps=25, size=32, gop=10, rotation=None, pts_ms=None):
    """Frame i is filled with grey level 3*i, so decoded frames tell which index they are."""
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "10", "g": str(gop), "bf": "0"}
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(n):
            img = np.full((size, size, 3), 3 * i, np.uint8)
            img[: size // 4, : size // 2] = 255  # an asymmetric mark to check rotation
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                f.pts = pts_ms[i]
                f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _level(frames):
    return np.round(frames[:, -4:, -4:].mean(axis=(1, 2, 3)) / 3).astype(int)


def test_every_shared_media_file_decodes(media_files):
    for f in media_files:
        info = probe(f)
        assert info.duration > 0 and info.fps > 0 and info.num_frames > 0, f
        idx = [0, info.num_frames // 2, info.num_frames - 1]
        frames = read_frames(f, idx, short_side=64)
        assert frames.shape[0] == 3 and frames.shape[-1] == 3 and frames.dtype == np.uint8, f
        assert min(frames.shape[1:3]) == 64, f
        assert frames.std() > 1, f"{f} decoded to a flat picture"


def test_shared_media_probe_facts(shared_data):
    nasa = probe(shared_data / "media" / "torchcodec_nasa_13013.mp4")
    assert nasa.has_audio and nasa.has_subtitles and nasa.streams.count("video:h264") == 2
    assert (nasa.width, nasa.height, nasa.num_frames) == (320, 180, 325)
    assert probe(shared_data / "media" / "torchcodec_av1_video.mkv").codec in ("libdav1d", "av1")
    assert probe(shared_data / "media" / "torchcodec_h265_video.mp4").codec == "hevc"
    avi = probe(shared_data / "media" / "mmaction2_test.avi")
    assert avi.codec == "mpeg4" and avi.has_audio


def test_random_access_matches_sequential_decode(tmp_path):
    path = _numbered_video(tmp_path / "n.mp4", n=80, gop=10)
    info = probe(path)
    assert info.num_frames == 80 and info.fps == 25
    full = _level(read_frames(path))
    assert full.tolist() == list(range(80))
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, 80, 12)
        assert _level(read_frames(path, idx)).tolist() == idx.tolist()
    # descending, repeated and far-apart indices (forces backward seeks)
    idx = [79, 3, 3, 50, 0, 65]
    assert _level(read_frames(path, idx)).tolist() == idx


def test_reader_reuses_one_open_file_and_pads_past_the_end(tmp_path):
    path = _numbered_video(tmp_path / "n.mp4", n=30)
    with VideoReader(path) as r:
        a = _level(r.frames([0, 1, 2]))
        b = _level(r.frames([28, 29, 40, 45]))  # header count can overstate: last frame repeats
    assert a.tolist() == [0, 1, 2] and b.tolist() == [28, 29, 29, 29]


def test_frames_at_times(tmp_path):
    path = _numbered_video(tmp_path / "n.mp4", n=50, fps=25)
    assert _level(read_frames_at(path, [0.0, 1.0, 1.5])).tolist() == [0, 25, 37]


def test_rotation_metadata_is_honoured(tmp_path):
    path = _numbered_video(tmp_path / "r.mp4", n=5, size=32, rotation=90)
    info = probe(path)
    assert info.rotation in (90, 270)
    frame = read_frames(path, [0])[0]
    plain = read_frames(_numbered_video(tmp_path / "p.mp4", n=5, size=32), [0])[0]
    assert not np.array_equal(frame, plain)
    assert any(np.array_equal(frame, np.rot90(plain, k)) for k in (1, 3))


def test_variable_frame_rate_indexes_by_time(tmp_path):
    # 30 frames: the first 10 at 10 fps, then 20 at 40 fps → indices map to display time
    pts = [i * 100 for i in range(10)] + [1000 + i * 25 for i in range(20)]
    path = _numbered_video(tmp_path / "vfr.mp4", n=30, fps=40, pts_ms=pts)
    info = probe(path)
    assert info.duration == pytest.approx(1.5, abs=0.05)
    frames = read_frames_at(path, [0.0, 0.55, 1.2])
    assert _level(frames).tolist() == [0, 5, 18]


@pytest.mark.parametrize("kind,reason", [
    ("empty", "empty file (0 bytes)"),
    ("text", "not a readable media file"),
    ("garbage", "not a readable media file"),
])
def test_bad_files_raise_one_clear_error(bad_files, kind, reason):
    with pytest.raises(VideoError) as e:
        read_frames(bad_files[kind], [0])
    assert e.value.path == str(bad_files[kind]) and e.value.reason.startswith(reason)


def test_truncated_file_decodes_what_is_there_or_fails_clearly(bad_files):
    try:
        frames = read_frames(bad_files["truncated"], range(24))
    except VideoError as e:
        assert e.path == str(bad_files["truncated"]) and e.reason
    else:
        assert frames.shape[0] == 24


def test_missing_and_directory(tmp_path):
    with pytest.raises(VideoError, match="file not found"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="is a directory"):
        probe(tmp_path)


def test_find_videos_recurses(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/x.mp4", "a/b/y.MKV", "a/readme.txt"):
        (tmp_path / p).write_bytes(b"x")
    assert [p.name for p in find_videos(tmp_path)] == ["y.MKV", "x.mp4"]


def test_display_times_put_labels_back_in_order_not_frames():
    """Frames leave the decoder in display order; when their labels do not rise (an AVI's packed B-frames
    decode as 1, 2, 4, 3, 5, 7, 6 ...), each keeps its place and gets the next timestamp in order."""
    from types import SimpleNamespace

    from vidcat.io.video import display_times

    pulled = []

    def frames(times, fail_at=None):
        for i, t in enumerate(times):
            if i == fail_at:
                raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
            pulled.append(i)
            yield SimpleNamespace(name=f"f{i}", time=t)

    packed = [0.04, 0.08, 0.16, 0.12, 0.20, 0.28, 0.24, 0.32]
    got = [(f.name, t) for f, t in display_times(frames(packed), fps=25)]
    assert got == [(f"f{i}", t) for i, t in enumerate(sorted(packed))]
    # rising timestamps come out at once (a seek that wants one keyframe decodes one frame), gaps and
    # a missing timestamp pass unchanged
    pulled.clear()
    rising = [0.0, 0.04, 0.5, 0.54, None, 1.0]
    for n, (f, t) in enumerate(display_times(frames(rising), fps=25)):
        if n < 2:
            assert len(pulled) == n + 1, (f.name, pulled)
        assert f.name == f"f{n}" and t == pytest.approx([0.0, 0.04, 0.5, 0.54, 0.58, 1.0][n])
    # a decoding error: the frames decoded before it still come out (f2 was waiting for label 0.12), then it
    out = []
    with pytest.raises(av.error.InvalidDataError):
        for f, t in display_times(frames(packed, fail_at=3), fps=25):
            out.append((f.name, t))
    assert out == [("f0", 0.04), ("f1", 0.08), ("f2", 0.16)]
