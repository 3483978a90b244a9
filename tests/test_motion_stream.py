"""The ``motion`` stream (HOF / MBH on a grid, pooled over time, plus frame-difference energy) on real encoded
H.264 clips read through the ``mv`` (and ``flow``) modality: direction of object motion, a camera pan that
is not object motion, temporal order, missing input, settings."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import load_dataset
from vidcat.data.synthetic import SynthConfig, generate
from vidcat.errors import VidcatError
from vidcat.models.streams.motion import HOF_BINS, MOTION_DIM, STILL, MotionFeatures, field_dim, field_layout

SMALL = dict(frames=4, size=64, sampler="tsn", flow_length=2, mean=(0.5,) * 3, std=(0.25,) * 3)
SIZE, N, SPEED = 64, 24, 2
MOVES = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}   # in HOF bin order: 0, 2, 4, 6
STILL_BIN = HOF_BINS


pytestmark = pytest.mark.usefixtures("one_thread")


def stream_features(csv, stream=None, modalities=("video", "mv"), **cfg) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(features, present, labels) of every clip of a manifest, through VideoClips and ``stream``."""
    ds = load_dataset(csv)
    clips = VideoClips(ds, DataConfig(modalities=modalities, **{**SMALL, **cfg}))
    batch = collate([clips[i] for i in range(len(clips))])
    feats, present = (stream or MotionFeatures())(batch)
    return feats, present, [ds.classes[int(y)] for y in batch["label"]]


def whole_hof(feats: torch.Tensor, part: int = 0) -> torch.Tensor:
    """(B, 9) whole-frame HOF of the pooled vector's ``part`` (0 mean, 1 std, 2 slope over time)."""
    lay, d = field_layout(3), field_dim(3)
    return feats[:, part * d + lay["hof"].start: part * d + lay["hof"].stop].reshape(-1, HOF_BINS + 1, 10)[..., 0]


def write_h264(path, frames, fps: int = 12):
    """H.264 without a B-frame pyramid (x264's default pyramid makes some B-frames reference other B-frames,
    whose motion vectors the mv reader scales by the wrong frame distance)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.height, s.width, s.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast", "x264-params": "b-pyramid=none"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        c.mux(s.encode())
    return path


def texture(rng, side: int, cells: int) -> np.ndarray:
    t = cv2.resize(rng.integers(0, 256, (cells, cells, 3)).astype(np.float32), (side, side),
                   interpolation=cv2.INTER_CUBIC)
    return np.clip(t + rng.normal(0, 12, (side, side, 3)), 0, 255)


def scene_clip(rng, direction: str, pan: bool, moving=None) -> np.ndarray:
    """A textured 16 px object on a textured scene: the object moves ``direction`` at SPEED px/frame over a
    still scene (``pan`` False), or the camera pans that way over a still scene holding a still object.
    ``moving``: per frame, whether the object moves (default: always)."""
    dx, dy = MOVES[direction]
    big = SIZE + 2 * SPEED * N
    scene, obj = texture(rng, big, 12), texture(rng, 16, 3)
    moving = np.ones(N, bool) if moving is None else np.asarray(moving, bool)
    steps = np.concatenate([[0], np.cumsum(moving[1:])]) - N // 2
    ox, oy = rng.integers(big // 2 - 20, big // 2 + 4, 2)
    out = []
    for t in range(N):
        f, c = scene.copy(), int(steps[t])
        if pan:
            f[oy:oy + 16, ox:ox + 16] = obj
            x0, y0 = big // 2 - SIZE // 2 + dx * SPEED * c, big // 2 - SIZE // 2 + dy * SPEED * c
        else:
            f[oy + dy * SPEED * c: oy + dy * SPEED * c + 16, ox + dx * SPEED * c: ox + dx * SPEED * c + 16] = obj
            x0 = y0 = big // 2 - SIZE // 2
        out.append(f[y0:y0 + SIZE, x0:x0 + SIZE])
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def manifest(tmp_path, clips: dict) -> str:
    rows = [f"{write_h264(tmp_path / f'{name}.mp4', frames)},{name.split('_')[0]}" for name, frames in clips.items()]
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return str(tmp_path / "m.csv")


@pytest.fixture(scope="module")
def directions(tmp_path_factory):
    """The synthetic ``motion`` benchmark (x264 defaults): 4 directions x 16 train / 4 test videos."""
    out = tmp_path_factory.mktemp("directions")
    generate(out, SynthConfig(per_class=16, seed=1), progress=False)
    return out


def test_a_linear_classifier_tells_the_direction_of_motion(directions):
    xtr, ptr, ytr = stream_features(directions / "train.csv")
    xte, pte, yte = stream_features(directions / "test.csv")
    assert xtr.shape == (64, MotionFeatures().feat_dim) and torch.isfinite(xtr).all() and ptr.eq(1).all()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(xtr.numpy(), ytr)
    assert clf.score(xte.numpy(), yte) >= 0.9
    # the planted signal itself: the whole frame's strongest moving HOF bin is the class's direction
    strongest = whole_hof(xte)[:, :HOF_BINS].argmax(1)
    expected = torch.tensor([2 * list(MOVES).index(y) for y in yte])
    assert (strongest == expected).float().mean() >= 0.9


def test_a_camera_pan_is_not_object_motion(tmp_path):
    """The median flow (the camera's) is subtracted from HOF and MBH ignores a constant flow: a pan keeps
    its pixels in the still bin and its flow-gradient energy low, and shows up as the camera's motion."""
    rng = np.random.default_rng(0)
    clips = {f"{kind}_{d}_{i}": scene_clip(rng, d, kind == "pan") for i in range(2) for d in MOVES
             for kind in ("pan", "object")}
    feats, present, labels = stream_features(manifest(tmp_path, clips))
    pan = torch.tensor([y == "pan" for y in labels])
    hof = whole_hof(feats)
    lay = field_layout(3)
    mbh_energy = feats[:, lay["energy"]].reshape(-1, 3, 10)[:, 1:, 0].amax(1)  # whole frame, |grad u|, |grad v|
    assert hof[pan, STILL_BIN].min() > 0.85 and hof[~pan, STILL_BIN].max() < 0.8
    assert hof[pan, :HOF_BINS].max() < 0.2 < hof[~pan, :HOF_BINS].amax(1).min()
    assert mbh_energy[pan].max() < 0.5 * mbh_energy[~pan].min()
    camera = torch.asinh(torch.tensor(SPEED * 100 / SIZE / STILL))  # the pan's image speed, as encoded
    for (name, _), f in zip(clips.items(), feats):
        dx, dy = MOVES[name.split("_")[1]]
        cam = f[lay["camera"]]
        if name.startswith("pan"):  # the image moves against the camera
            assert cam[0] * -dx >= 0.8 * camera * abs(dx) and cam[1] * -dy >= 0.8 * camera * abs(dy), (name, cam)
        else:
            assert cam.abs().max() < 0.5, (name, cam)


def test_the_slope_over_time_tells_the_order_of_events(tmp_path):
    """Still-then-moving and moving-then-still have the same mean HOF but slopes of opposite sign; a clip
    played backwards moves the other way."""
    rng = np.random.default_rng(1)
    half = np.arange(N) >= N // 2
    clips = {}
    for i in range(2):
        late = scene_clip(rng, "right", False, moving=half)
        clips[f"late_{i}"], clips[f"early_{i}"] = late, scene_clip(rng, "right", False, moving=~half)
        clips[f"reversed_{i}"] = late[::-1]
    feats, _, labels = stream_features(manifest(tmp_path, clips))
    mean, slope = whole_hof(feats, 0), whole_hof(feats, 2)
    by = {k: torch.tensor([y == k for y in labels]) for k in ("late", "early", "reversed")}
    assert slope[by["late"], 0].min() > 0.05 and slope[by["early"], 0].max() < -0.05   # bin 0: right
    assert slope[by["late"], STILL_BIN].max() < 0 < slope[by["early"], STILL_BIN].min()
    late, early = mean[by["late"], 0].mean(), mean[by["early"], 0].mean()
    assert (late - early).abs() < 0.5 * late   # the mean alone barely tells them apart
    assert mean[by["reversed"], 4].min() > 0.2 and mean[by["reversed"], 0].max() < 0.1     # bin 4: left
    assert slope[by["reversed"], 4].max() < -0.05  # left motion, early in the reversed clip


def test_optical_flow_source_and_settings(directions):
    stream = MotionFeatures(source="flow", grid=2, energy=False)
    assert stream.reads == ("flow",) and MotionFeatures().reads == ("mv", "video")
    assert stream.spec() == {"name": "motion", "version": 1, "feat_dim": 3 * field_dim(2), "source": "flow",
                             "grid": 2, "energy": False}
    assert MotionFeatures().feat_dim == 3 * field_dim(3) + 2 * MOTION_DIM
    assert not list(MotionFeatures().parameters())     # nothing to train: the heads do the learning
    feats, present, labels = stream_features(directions / "test.csv", stream, modalities=("flow",))
    assert feats.shape == (16, stream.feat_dim) and torch.isfinite(feats).all() and present.eq(1).all()
    hof = feats[:, : (HOF_BINS + 1) * 5].reshape(-1, HOF_BINS + 1, 5)[:, :HOF_BINS, 0]
    assert (hof.argmax(1) == torch.tensor([2 * list(MOVES).index(y) for y in labels])).float().mean() >= 0.9
    with pytest.raises(VidcatError, match=r"^motion stream source must be one of mv, flow, not 'rgb'$"):
        MotionFeatures(source="rgb")
    with pytest.raises(VidcatError, match=r"^motion stream grid must be an integer from 1 to 8, not 0$"):
        MotionFeatures(grid=0)


def test_missing_still_and_single_frame_input_never_give_nan(tmp_path):
    rng = np.random.default_rng(2)
    still = np.repeat(texture(rng, SIZE, 6).astype(np.uint8)[None], N, 0)
    feats, present, _ = stream_features(manifest(tmp_path, {"still_0": still}))
    assert torch.isfinite(feats).all() and present.tolist() == [1.0]
    assert whole_hof(feats)[0, STILL_BIN] > 0.99 and whole_hof(feats)[0, :HOF_BINS].max() < 0.05
    stream = MotionFeatures()
    batch = {"mv": torch.full((3, 4, 1, 32, 32), float("nan")), "mv_mask": torch.tensor([1.0, 0.0, 1.0]),
             "video": torch.randn(3, 3, 1, 32, 32)}
    batch["mv"][2] = 0.5
    feats, present = stream(batch)
    assert feats.shape == (3, stream.feat_dim) and torch.isfinite(feats).all() and feats.dtype == torch.float32
    assert present.tolist() == [1.0, 0.0, 1.0] and feats[1].eq(0).all() and feats[0].abs().sum() > 0
    with pytest.raises(VidcatError, match=r"wants 2L channels"):
        stream({"mv": torch.zeros(1, 3, 2, 8, 8), "video": torch.zeros(1, 3, 2, 8, 8)})
