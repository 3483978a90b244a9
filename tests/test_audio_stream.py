"""The ``audio`` stream (log-mel statistics: timbre, loudness, onsets, spectral shape, silence) on real AAC
tracks read through the ``audio`` modality, and the ``audio_frames`` option that gives it a finer time axis."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vidcat.cli import main
from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import load_dataset
from vidcat.data.synth_media import mux_av, tone
from vidcat.errors import VidcatError
from vidcat.models.registry import ModelSpec, get_spec
from vidcat.models.streams.audio import AudioFeatures

SR, SECONDS, FPS = 16000, 2.0, 12
CLIP = dict(frames=8, size=32, sampler="tsn")


pytestmark = pytest.mark.usefixtures("one_thread")


def bursts(rng, starts) -> np.ndarray:
    """40-80 ms white-noise bursts of random loudness starting at ``starts`` (seconds), silence between."""
    x = np.zeros(int(SECONDS * SR), np.float32)
    for s in starts:
        i, n = int(s * SR), int(rng.uniform(0.04, 0.08) * SR)
        x[i:i + n] = rng.normal(0, rng.uniform(0.05, 0.3), n)
    return x


def sound(rng, kind: str):
    """A track of ``kind`` (None: no audio track) and its number of onsets."""
    if kind == "tone":
        return tone(rng.uniform(200, 2000), SECONDS, amp=rng.uniform(0.05, 0.5), noise=0.003, rng=rng), 0
    if kind == "bursts":
        starts = np.sort(rng.choice(np.arange(2, 18), int(rng.integers(3, 7)), replace=False)) / 10
        return bursts(rng, starts), len(starts)
    if kind == "hum":   # steady noise: as flat a spectrum as the bursts, no onsets
        return rng.normal(0, rng.uniform(0.02, 0.2), int(SECONDS * SR)).astype(np.float32), 0
    if kind == "silent":
        return np.zeros(int(SECONDS * SR), np.float32), 0
    if kind == "hiss":  # -80 dBFS: below the silence threshold
        return rng.normal(0, 1e-4, int(SECONDS * SR)).astype(np.float32), 0
    return None, 0


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """(manifest, onsets per clip): 8 clips each of tone, bursts and hum, 2 each without a track, with a
    digitally silent track and with faint hiss; frames are a still grey picture."""
    root = tmp_path_factory.mktemp("sounds")
    rng = np.random.default_rng(0)
    frames = np.full((int(SECONDS * FPS), 32, 32, 3), 100, np.uint8)
    rows, onsets = [], []
    for kind, n in (("tone", 8), ("bursts", 8), ("hum", 8), ("none", 2), ("silent", 2), ("hiss", 2)):
        for i in range(n):
            audio, k = sound(rng, kind)
            path = mux_av(root / f"{kind}_{i}.mp4", frames, FPS, audio=audio)
            rows.append(f"{path},{kind}")
            onsets.append(k)
    (root / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root / "m.csv", onsets


def features(csv, stream=None, **cfg):
    ds = load_dataset(csv)
    clips = VideoClips(ds, DataConfig(modalities=("audio",), **{**CLIP, **cfg}))
    batch = collate([clips[i] for i in range(len(clips))])
    feats, present = (stream or AudioFeatures())(batch)
    return feats, present, np.array([ds.classes[int(y)] for y in batch["label"]]), batch


def test_sounds_separate_and_missing_sound_is_zeros(sounds):
    csv, onsets = sounds
    stream = AudioFeatures()
    feats, present, labels, batch = features(csv, stream, audio_frames=400)
    assert batch["audio"].shape[1:] == (1, 64, 400) and feats.shape == (len(labels), stream.feat_dim)
    assert torch.isfinite(feats).all()
    missing = np.isin(labels, ["none", "silent", "hiss"])
    assert present.tolist() == [float(not m) for m in missing]
    assert feats[torch.from_numpy(missing)].eq(0).all()
    assert batch["audio_mask"][torch.from_numpy(labels == "silent")].eq(1).all()   # a track, but silence
    sounding = np.flatnonzero(~missing)
    train, test = sounding[np.arange(len(sounding)) % 2 == 0], sounding[np.arange(len(sounding)) % 2 == 1]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(feats[train].numpy(), labels[train])
    assert clf.score(feats[test].numpy(), labels[test]) == 1.0
    # the planted signals themselves
    lay = stream.layout()
    rate = feats[:, lay["onset"]][:, -1] * 400
    flat = feats[:, lay["flatness"]][:, 0]
    silent = feats[:, lay["silent_fraction"]][:, 0]
    for i in np.flatnonzero(labels == "bursts"):
        assert round(float(rate[i])) == onsets[i], (i, float(rate[i]), onsets[i])
    assert rate[torch.from_numpy(labels == "hum")].max() == 0 and rate[torch.from_numpy(labels == "tone")].max() <= 1
    assert flat[torch.from_numpy(labels == "tone")].max() < 0.5 * flat[torch.from_numpy(labels == "hum")].min()
    assert silent[torch.from_numpy(labels == "bursts")].min() > 0.5 > silent[torch.from_numpy(labels == "hum")].max()


def test_silence_threshold_on_planted_levels():
    """A frame sounds at -60 dBFS and is silent at -80 dBFS; a clip with too few sounding frames is silent."""
    from vidcat.io.audio import log_mel

    rng = np.random.default_rng(1)
    stream = AudioFeatures(n_mels=32, n_mfcc=13)

    def mel(x):
        return torch.from_numpy(log_mel(x.astype(np.float32), n_mels=32))[None]

    n = 5 * SR
    quiet, faint = rng.normal(0, 10 ** (-60 / 20), n), rng.normal(0, 10 ** (-80 / 20), n)
    blip = np.zeros(n)
    blip[SR:SR + 80] = 0.3 * rng.normal(size=80)     # 5 ms of sound in 5 s: 3 of 501 frames, < 1 %
    half = np.concatenate([np.zeros(n // 2), 0.2 * np.sin(2 * np.pi * 440 * np.arange(n // 2) / SR)])
    batch = {"audio": torch.stack([mel(x) for x in (quiet, faint, blip, half)]), "audio_mask": torch.ones(4)}
    feats, present = stream(batch)
    assert present.tolist() == [1.0, 0.0, 0.0, 1.0] and torch.isfinite(feats).all()
    assert feats[[1, 2]].eq(0).all()
    silent = feats[3, stream.layout()["silent_fraction"]].item()
    assert silent == pytest.approx(0.5, abs=0.03)
    assert stream.feat_dim == 2 * 32 + 3 * 13 + 16 and stream.spec()["n_mfcc"] == 13
    assert not list(stream.parameters()) and AudioFeatures().feat_dim == 204


def test_bad_values_never_give_nan_and_shapes_are_checked():
    stream = AudioFeatures(n_mels=16, n_mfcc=4)
    x = torch.randn(3, 1, 16, 50)
    x[0, 0, 3, 7] = float("nan")
    x[1] = float("inf")
    x[2, 0, :, 0] = -math.inf
    feats, present = stream({"audio": x})     # no mask entry: every clip counts as read
    assert torch.isfinite(feats).all() and present.tolist() == [1.0, 0.0, 1.0]
    single = stream({"audio": torch.zeros(2, 1, 16, 1), "audio_mask": torch.tensor([1.0, 0.0])})
    assert torch.isfinite(single[0]).all()
    with pytest.raises(VidcatError, match=r"^audio stream wants log-mel shaped \(B, 1, 16, frames\), "
                                          r"got \(2, 1, 64, 9\)"):
        stream({"audio": torch.zeros(2, 1, 64, 9)})
    with pytest.raises(VidcatError, match=r"^audio stream n_mfcc must be an integer from 1 to n_mels \(16\), not 17$"):
        AudioFeatures(n_mels=16, n_mfcc=17)
    with pytest.raises(VidcatError, match=r"^audio stream n_mels must be an integer >= 8, not 4$"):
        AudioFeatures(n_mels=4)


def test_audio_frames_option(sounds, capsys):
    csv, _ = sounds
    ds = load_dataset(csv)
    tone_clip = [i for i, it in enumerate(ds.items) if it.labels == ["tone"]][0]

    def shape(**cfg):
        return tuple(VideoClips(ds, DataConfig(modalities=("audio",), **CLIP, **cfg))[tone_clip]["audio"].shape)

    assert shape() == (1, 64, 101)                                        # unchanged default
    assert shape(audio_frames=400) == (1, 64, 400)
    assert shape(audio_seconds=0.5) == (1, 64, 51)
    assert shape(audio_seconds=0.5, audio_frames=200, n_mels=32) == (1, 32, 200)
    # a model asks for its own time axis through its spec's defaults; the user's value wins
    spec = ModelSpec(name="streams_like", family="test", builder=lambda **kw: None, modality="multi",
                     defaults={"modalities": ("video", "audio"), "audio_frames": 400})
    assert DataConfig().resolved(spec).audio_frames == 400
    assert DataConfig(audio_frames=200).resolved(spec).audio_frames == 200
    assert DataConfig().resolved(get_spec("fusion")).audio_frames is None
    with pytest.raises(VidcatError, match=r"^--audio-frames must be >= 8, not 4$"):
        DataConfig(audio_frames=4)
    assert main(["train", "--data", str(csv), "--out", "unused", "--audio-frames", "9000"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["vidcat: error: --audio-frames must be <= 6000, not 9000"]
