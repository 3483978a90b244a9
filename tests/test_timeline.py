"""Timeline: one streaming decode, a bounded ring buffer, windows that never straddle a shot cut,
one colour per class in the figure, the video-level aggregate, and ONNX = torch."""
from __future__ import annotations

import json

import numpy as np
import pytest

FPS = 12
SHOT = 30  # frames per shot: 2.5 s


@pytest.fixture(scope="module")
def three_shots(tmp_path_factory):
    """A real H.264 file of 3 shots (different scenes and motions), 30 frames each at 12 fps, 48 px."""
    from vidcat.data.synth_media import mux_av
    from vidcat.data.synthetic import SynthConfig, render_motion

    cfg = SynthConfig(size=48, frames=SHOT, fps=FPS)
    shots = [render_motion(np.random.default_rng(seed), label, cfg) for seed, label in
             ((1, "left"), (2, "up"), (3, "right"))]
    return mux_av(tmp_path_factory.mktemp("tl") / "shots.mp4", np.concatenate(shots), FPS)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, make_checkpoint):
    return make_checkpoint(tmp_path_factory.mktemp("tlck") / "tiny.pt", "tiny3d", seed=4, frames=8, size=32)


def test_shot_detector_finds_the_cuts(three_shots):
    from vidcat.inference.shots import ShotDetector
    from vidcat.io.stream import FrameStream

    with FrameStream(three_shots) as s:
        det = ShotDetector(s.info.fps)
        flags = [det(rgb) for _, _, rgb in s]
    assert len(flags) == 3 * SHOT and det.cuts == [SHOT, 2 * SHOT]


def test_windows_stream_once_stay_in_shots_and_match_seeking(three_shots):
    """Windows from one pass equal the seek-per-window frames; none crosses a cut; buffer <= a window."""
    from vidcat.data.sampling import SamplerConfig
    from vidcat.inference.shots import ShotDetector
    from vidcat.inference.timeline import iter_windows
    from vidcat.io.stream import FrameStream
    from vidcat.io.video import VideoReader

    sampler, stats = SamplerConfig("clip", 6, 2), {}
    with FrameStream(three_shots, short_side=40) as s, VideoReader(three_shots) as r:
        wins = []
        for win, frames, idx in iter_windows(s, 24, 6, sampler, ShotDetector(s.info.fps), stats):
            assert np.array_equal(frames, r.frames(idx, short_side=40)), win
            wins.append(win)
    # 2 s windows every 0.5 s inside each 2.5 s shot: starts 0, 6 | 30, 36 | 60, 66
    assert [w.first for w in wins] == [0, 6, 30, 36, 60, 66]
    for w in wins:
        assert not any(w.first < cut < w.first + w.frames for cut in (SHOT, 2 * SHOT)), w
    assert stats["max_buffer"] <= 24
    # without shot detection the grid runs straight across the cuts
    with FrameStream(three_shots, short_side=40) as s:
        plain = [w.first for w, _, _ in iter_windows(s, 24, 6, sampler)]
    assert plain == list(range(0, 90 - 24 + 1, 6))


@pytest.mark.parametrize("name", ["torchcodec_h264_10bits.mp4", "mmaction2_test.avi"])
def test_stream_equals_seeking_on_real_files(media_files, name):
    """FrameStream index i = VideoReader.frames([i]) on real files (frames are matched by time, not counted).
    The AVI's packed B-frames leave the decoder labelled 1, 2, 4, 3, 5, 7, 6 ... (see display_times)."""
    from vidcat.io.stream import FrameStream
    from vidcat.io.video import VideoReader

    for clip in [p for p in media_files if p.name == name]:
        with FrameStream(clip, short_side=40) as s:
            got = [rgb for i, _, rgb in s if i < 60]
        with VideoReader(clip) as r:
            ref = r.frames(range(len(got)), short_side=40)
        assert len(got) >= 30 and all(np.array_equal(a, b) for a, b in zip(got, ref)), clip.name


def test_short_shot_gets_one_window(three_shots):
    from vidcat.data.sampling import SamplerConfig
    from vidcat.inference.shots import ShotDetector
    from vidcat.inference.timeline import iter_windows
    from vidcat.io.stream import FrameStream

    with FrameStream(three_shots, short_side=40) as s:  # 4 s windows are longer than every shot
        wins = [w for w, _, _ in iter_windows(s, 48, 12, SamplerConfig("clip", 4, 1), ShotDetector(s.info.fps))]
    assert [(w.first, w.frames) for w in wins] == [(0, SHOT), (SHOT, SHOT), (2 * SHOT, SHOT)]


def test_timeline_outputs_aggregate_and_onnx(three_shots, ckpt, tmp_path):
    from vidcat.inference.export import export_onnx
    from vidcat.inference.onnx_predictor import OnnxPredictor
    from vidcat.inference.predictor import Predictor
    from vidcat.inference.timeline import aggregate, predict_long, score_windows, timeline

    res = timeline(ckpt, three_shots, window=2.0, stride=0.5, out_dir=tmp_path)
    assert res["cuts"] == [2.5, 5.0] and res["windows"] == 6
    assert res["times"] == [1.0, 1.5, 3.5, 4.0, 6.0, 6.5]
    saved = json.loads((tmp_path / "shots_timeline.json").read_text())
    assert saved["scores"] == res["scores"] and (tmp_path / "shots_timeline.png").stat().st_size > 10_000
    rows = (tmp_path / "shots_timeline.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("time,start,end,top,")

    # the window scores are the model's scores of each window's clip
    pred = Predictor(ckpt)
    windows, _, _ = score_windows(pred, three_shots, 2.0, 0.5)
    assert np.allclose(np.stack([w.scores for w in windows]), res["scores"], atol=1e-5)

    # video-level label: duration-weighted mean of the windows
    p = np.mean(np.array(res["scores"]), 0)
    assert res["video_label"]["labels"][0] == pred.classes[int(p.argmax())]
    assert np.isclose(res["video_label"]["scores"][0], p.max(), atol=1e-5)
    long = predict_long(pred, three_shots, window=2.0, stride=0.5)
    assert long["labels"] == res["video_label"]["labels"] and long["shots"] == 3 and long["windows"] == 6
    w = [windows[0], windows[2]]
    w[1].end = w[1].start + 3 * (w[0].end - w[0].start)  # 3x longer: 3x the weight
    rec = aggregate(w, pred.classes, "x.mp4", topk=len(pred.classes))
    want = (w[0].scores + 3 * w[1].scores) / 4
    assert np.allclose(sorted(rec["scores"], reverse=True), np.sort(want)[::-1], atol=1e-6)

    # an ONNX export gives the same timeline (numpy transforms, no torch model)
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(ckpt, onnx_path, latency=False)
    res_onnx = timeline(OnnxPredictor(onnx_path), three_shots, window=2.0, stride=0.5)
    assert np.abs(np.array(res_onnx["scores"]) - np.array(res["scores"])).max() < 1e-4


def test_timeline_plot_one_colour_per_class(tmp_path, monkeypatch):
    """The band and the lines draw each class in the same colour, and every class shown is in the legend."""
    import matplotlib.pyplot as plt

    from vidcat.engine import plots

    captured = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: captured.setdefault("fig", fig))
    times = np.arange(6) + 0.5
    scores = np.array([[.7, .2, .1], [.6, .3, .1], [.2, .7, .1], [.1, .8, .1], [.1, .2, .7], [.2, .1, .7]])
    plots.plot_timeline(times, scores, ["walk", "run", "jump"], tmp_path / "t.png", top=2, cuts=[2.0, 4.0])
    fig = captured["fig"]
    ax, band = fig.axes
    colours = plots.class_colours(3)
    lines = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert len(lines) == 3  # top 2 by peak + "jump", which wins windows 5 and 6
    img = band.get_images()[0]
    band_rgba = img.cmap(img.norm(img.get_array().ravel()))
    classes = ["walk", "run", "jump"]
    assert sorted(line.get_label() for line in lines) == sorted(classes)
    for line in lines:
        assert np.allclose(plt.matplotlib.colors.to_rgba(line.get_color()), colours[classes.index(line.get_label())])
    assert np.allclose(band_rgba, [colours[k] for k in scores.argmax(1)])  # band: walk walk run run jump jump
    legend = fig.legends[0]
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(classes + ["shot cut"])
    for text, patch in zip(legend.get_texts(), legend.get_patches()):
        if text.get_text() in classes:
            assert np.allclose(patch.get_facecolor(), colours[classes.index(text.get_text())])
    plt.close(fig)


def test_predict_aggregates_windows_for_long_files(tmp_path, media_files, capsys):
    """`vidcat predict --long-seconds S`: a file longer than S gets one record from its scored windows."""
    from vidcat.cli import main
    from vidcat.config import DataConfig
    from vidcat.models.build import Checkpoint, build_model, setup_model

    demo = next(p for p in media_files if p.name == "mmaction2_demo.mp4")  # 10 s
    setup = setup_model("tiny3d", DataConfig(frames=4, size=32), ["a", "b"])
    Checkpoint(setup, build_model(setup).state_dict()).save(tmp_path / "m.pt")
    assert main(["predict", "--checkpoint", str(tmp_path / "m.pt"), str(demo), "--long-seconds", "5"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["windows"] >= 4 and rec["labels"] and "shots" in rec
    assert main(["predict", "--checkpoint", str(tmp_path / "m.pt"), str(demo), "--long-seconds", "0"]) == 0
    assert "windows" not in json.loads(capsys.readouterr().out)
