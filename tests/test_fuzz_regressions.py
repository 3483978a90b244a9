"""Regression tests for the defects of issue 13 that the fuzz corpus found (predict inputs, flow).

Each test reproduces one reported failure on real files: a dangling path aborting a batch, a
directory named ``d.mp4`` vanishing, a folder without videos printing nothing, and a one-byte AVI
header change making whole-video flow allocate until killed.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.fuzz.generate import ROOT
from vidcat.errors import VidcatError, VideoError


@pytest.fixture()
def odd_inputs(tmp_path, tiny_ckpt):
    """A good clip plus every kind of path that used to be dropped or abort the batch."""
    _, videos = tiny_ckpt
    t = tmp_path
    (t / "d.mp4").mkdir()                                   # directory named like a video, empty
    (t / "empty_folder").mkdir()
    (t / "nested.avi").mkdir()
    (t / "nested.avi" / "inner.mp4").write_bytes(videos[1].read_bytes())
    (t / "loop.mp4").symlink_to("loop.mp4")
    (t / "dangling.mp4").symlink_to("missing.mp4")
    (t / "zero.mp4").write_bytes(b"")
    return [videos[0], t / "dangling.mp4", t / "d.mp4", t / "loop.mp4", t / "empty_folder", t / "nested.avi",
            t / "zero.mp4", t / "never-existed.mkv"]


def test_predict_many_one_record_per_input(tiny_ckpt, odd_inputs):
    from vidcat.inference.predictor import Predictor

    pred = Predictor(tiny_ckpt[0], topk=2)
    records = list(pred.predict_many(odd_inputs))
    paths = [r["path"] for r in records]
    assert paths == [str(odd_inputs[0]), str(odd_inputs[1]), str(odd_inputs[2]), str(odd_inputs[3]),
                     str(odd_inputs[4]), str(odd_inputs[5] / "inner.mp4"), str(odd_inputs[6]), str(odd_inputs[7])]
    errors = {r["path"]: r.get("error") for r in records}
    assert "labels" in records[0] and "labels" in records[5]
    assert errors[str(odd_inputs[1])] == "broken symbolic link (target missing)"
    assert errors[str(odd_inputs[2])] == f"no videos found in {odd_inputs[2]}"
    assert errors[str(odd_inputs[3])] == "symbolic link loop"
    assert errors[str(odd_inputs[4])] == f"no videos found in {odd_inputs[4]}"
    assert errors[str(odd_inputs[6])] == "empty file (0 bytes)"
    assert errors[str(odd_inputs[7])] == "no such file or directory"
    # --strict still fails fast, naming the path
    with pytest.raises(VideoError, match="dangling.mp4: broken symbolic link"):
        list(pred.predict_many(odd_inputs, strict=True))


def test_predict_many_empty_input_is_an_error(tiny_ckpt, tmp_path):
    from vidcat.inference.predictor import Predictor

    pred = Predictor(tiny_ckpt[0])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("no video here")
    (tmp_path / "b.mp4").mkdir()
    with pytest.raises(VidcatError, match=r"^no videos found in .*a, .*b\.mp4$"):
        list(pred.predict_many([tmp_path / "a", tmp_path / "b.mp4"]))
    with pytest.raises(VidcatError, match="no input paths given"):
        list(pred.predict_many([]))


def test_predict_record_carries_damage_warning(tiny_ckpt, monkeypatch):
    """The io layer's damage report (a sample's ``warning``) reaches the predict record."""
    from vidcat.data import dataset
    from vidcat.inference.predictor import Predictor

    real = dataset.VideoClips.__getitem__
    monkeypatch.setattr(dataset.VideoClips, "__getitem__",
                        lambda self, i: {**real(self, i), "warning": "truncated: decoded 3 of 12 frames"})
    rec = Predictor(tiny_ckpt[0])(tiny_ckpt[1][0])
    assert rec["warning"] == "truncated: decoded 3 of 12 frames" and rec["labels"]
    monkeypatch.setattr(dataset.VideoClips, "__getitem__", real)
    assert "warning" not in Predictor(tiny_ckpt[0])(tiny_ckpt[1][0])


def test_predict_refuses_non_video_files(tiny_ckpt, tmp_path):
    """Text, ANSI art and still images under a video name get an error record, not a prediction."""
    import cv2
    import numpy as np

    from vidcat.inference.predictor import Predictor

    files = [tmp_path / "notes.mp4", tmp_path / "ansi.avi", tmp_path / "image.mp4", tmp_path / "photo.mp4"]
    files[0].write_text("this is not a video\n" * 40)
    files[1].write_text("".join(f"\x1b[3{i % 8}m{'#' * 40}\x1b[0m\n" for i in range(60)))
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    files[2].write_bytes(cv2.imencode(".png", img)[1].tobytes())
    files[3].write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    records = list(Predictor(tiny_ckpt[0]).predict_many(files))
    assert [r["path"] for r in records] == [str(f) for f in files]
    assert all("error" in r and "labels" not in r for r in records), records


def _flipped_avi(shared_data, tmp_path):
    data = bytearray((shared_data / "media" / "mmaction2_test.avi").read_bytes())
    data[143] = 0x20  # the header then claims 536,871,076 frames
    f = tmp_path / "flipped.avi"
    f.write_bytes(bytes(data))
    return f


def test_flow_streams_damaged_avi_header(shared_data, tmp_path):
    """``vidcat flow`` on an AVI whose header claims 536M frames: finishes, bounded memory."""
    f = _flipped_avi(shared_data, tmp_path)
    from tests.fuzz.run import VIDCAT

    cmd = ["prlimit", "--as=6000000000", "--", *VIDCAT, "flow", str(f),
           "--method", "dis_fast", "--size", "32", "--cache", str(tmp_path / "C"), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["computed"] == 1 and summary["failed"] == 0, (summary, p.stderr)
    from vidcat.io.motion.cache import load_entry

    arr, meta = load_entry(f, tmp_path / "C", "dis_fast", size=32)
    assert arr.shape == (163, 32, 42, 2) and meta["kind"] == "flow"  # the 164 frames really in the file


def test_flow_every_input_accounted(shared_data, tmp_path):
    """Folders without videos and broken links are failures in the summary, not silently dropped."""
    from vidcat.io.motion.cache import build_cache

    (tmp_path / "d.mp4").mkdir()
    (tmp_path / "loop.mp4").symlink_to("loop.mp4")
    clip = shared_data / "media" / "torchcodec_h265_video.mp4"
    s = build_cache([clip, tmp_path / "d.mp4", tmp_path / "loop.mp4"], tmp_path / "C", "dis_fast", size=32,
                    progress=False)
    assert (s["total"], s["computed"], s["failed"]) == (3, 1, 2)
    assert [f["reason"] for f in s["failures"]] == [f"no videos found in {tmp_path / 'd.mp4'}", "symbolic link loop"]
    with pytest.raises(VidcatError, match="no videos found in"):
        build_cache([tmp_path / "d.mp4"], tmp_path / "C", "dis_fast", size=32, progress=False)


def test_mv_on_stream_without_codec(shared_data, tmp_path):
    """A header flip that leaves the video stream without a known codec: a VideoError, not AttributeError."""
    from tests.fuzz.generate import damaged_variants
    from vidcat.io.motion.motion_vectors import read_motion_vectors

    src = shared_data / "arid-dark" / "Pick_1_1.mp4"
    variants = damaged_variants(src.read_bytes(), ".mp4", 0, src.name)
    kind, _, data = variants[1]
    assert kind == "header_flip"
    f = tmp_path / "flipped.mp4"
    f.write_bytes(data)
    with pytest.raises(VideoError, match="no decodable video stream"):
        read_motion_vectors(f, size=32)


def test_cli_predict_answers_every_path_even_a_missing_one(tiny_ckpt, tmp_path, capsys):
    """``vidcat predict`` never aborts the batch on a missing path: one record per input, exit 0."""
    from vidcat.cli import main

    missing = tmp_path / "never-existed.mp4"
    good = tiny_ckpt[1][0]
    assert main(["predict", "--checkpoint", str(tiny_ckpt[0]), "--quiet", str(missing), str(good)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["path"] for r in records] == [str(missing), str(good)]
    assert records[0] == {"path": str(missing), "error": "no such file or directory"}
    assert "labels" in records[1] and "error" not in records[1]


def test_video_reader_on_stream_without_codec(shared_data, tmp_path):
    """The io layer itself: a header flip that leaves the stream without a codec is a VideoError
    (the fuzz run once saw ``'NoneType' object has no attribute 'name'`` here)."""
    from tests.fuzz.generate import damaged_variants
    from vidcat.io.video import VideoReader

    src = shared_data / "arid-dark" / "Pick_1_1.mp4"
    kind, _, data = damaged_variants(src.read_bytes(), ".mp4", 0, src.name)[1]
    assert kind == "header_flip"
    f = tmp_path / "flipped.mp4"
    f.write_bytes(data)
    with pytest.raises(VideoError, match=r"flipped\.mp4.*no decodable video stream \(unknown codec"):
        VideoReader(f)
