"""Speech transcripts (Whisper tiny.en via faster-whisper, bundled model): spoken words are found, silence
and noise give an empty transcript, the cache is reused, the text stream reads transcripts only when asked,
the CLI prints SRT/JSON, and a missing extra is one error line."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from vidcat.errors import VidcatError
from vidcat.config.extras import has

needs_speech = pytest.mark.skipif(not has("speech"), reason="pip install 'vidcat[speech]' not installed")


def _espeak():
    from vidcat.data.synth_speech import have_espeak

    if not have_espeak():
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="session")
def spoken(tmp_path_factory):
    _espeak()
    from vidcat.data.synth_speech import spoken_clip

    return spoken_clip(tmp_path_factory.mktemp("speech") / "spoken.mp4",
                       "the chef is cooking pasta in the kitchen with garlic and tomatoes")


@pytest.fixture(scope="session")
def silent(tmp_path_factory):
    from vidcat.data.synth_speech import spoken_clip

    return spoken_clip(tmp_path_factory.mktemp("silent") / "silent.mp4", None, seconds=3.0)


@needs_speech
def test_spoken_words_are_transcribed_and_cached(spoken, cache):
    from vidcat.io import speech

    t0 = time.perf_counter()
    t = speech.transcribe(spoken)
    first = time.perf_counter() - t0
    words = t["text"].lower()
    for w in ("chef", "cooking", "pasta", "kitchen", "garlic", "tomatoes"):
        assert w in words, t
    assert t["language"] == "en" and t["segments"]
    s = t["segments"][0]
    assert set(s) == {"start", "end", "text", "avg_logprob"} and 0 <= s["start"] < s["end"] <= 7
    before = dict(speech.COUNTERS)
    t0 = time.perf_counter()
    assert speech.transcribe(spoken) == t
    assert speech.COUNTERS["cached"] == before["cached"] + 1 and speech.COUNTERS["computed"] == before["computed"]
    assert time.perf_counter() - t0 < first / 5
    srt = speech.to_srt(t)
    assert srt.startswith("1\n00:00:0") and "pasta" in srt


@needs_speech
def test_silence_noise_and_no_audio_give_empty_transcripts(silent, cache, tmp_path):
    from vidcat.data.synth_media import mux_av
    from vidcat.data.synth_speech import random_visuals
    from vidcat.io import speech

    assert speech.transcribe(silent) == {"language": "en", "segments": [], "text": ""}
    rng = np.random.default_rng(0)
    noise = mux_av(tmp_path / "noise.mp4", random_visuals(rng, 3.0), 12,
                   audio=(0.1 * rng.standard_normal(48000)).astype(np.float32))
    assert speech.transcribe(noise)["text"] == ""
    mute = mux_av(tmp_path / "mute.mp4", random_visuals(rng, 1.0), 12)
    assert speech.transcribe(mute) == {"language": "en", "segments": [], "text": ""}


@needs_speech
def test_text_stream_reads_transcripts_only_with_speech(spoken, silent, cache):
    from vidcat.config import DataConfig
    from vidcat.data.modalities import get_modality

    load = get_modality("text").load

    def ctx(path, **cfg):
        return SimpleNamespace(item=SimpleNamespace(path=str(path), text=""), start=0.0, end=10.0,
                               cfg=DataConfig(modalities=("text",), **cfg))

    assert load(ctx(spoken)) == {"text": "", "text_mask": 0.0}       # default: unchanged behaviour
    got = load(ctx(spoken, speech=True))
    assert got["text_mask"] == 1.0 and "pasta" in got["text"].lower()
    assert load(ctx(silent, speech=True)) == {"text": "", "text_mask": 0.0}


@needs_speech
def test_transcribe_cli(spoken, cache, capsys):
    from vidcat.cli import main

    assert main(["transcribe", str(spoken), "--format", "json"]) == 0
    assert "pasta" in json.loads(capsys.readouterr().out)["text"].lower()
    assert main(["transcribe", str(spoken), "--format", "srt"]) == 0
    assert " --> " in capsys.readouterr().out


def test_missing_extra_is_one_line(monkeypatch, capsys, tmp_path):
    import importlib.util

    from vidcat.cli import main
    from vidcat.config import DataConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "faster_whisper" else real(n, *a))
    with pytest.raises(VidcatError, match=r"speech transcripts need: pip install 'vidcat\[speech\]'"):
        DataConfig(modalities=("text",), speech=True)
    assert main(["transcribe", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err.strip() == "vidcat: error: speech transcripts need: pip install 'vidcat[speech]'"


@needs_speech
def test_real_footage_speech(media_files, cache):
    """The NASA clip in ../shared/data/media has narration (and mov_text subtitles the text stream prefers)."""
    from vidcat.io import speech

    nasa = next((p for p in media_files if "nasa" in p.name), None)
    if nasa is None:
        pytest.skip("torchcodec_nasa_13013.mp4 not in ../shared/data/media")
    t = speech.transcribe(nasa)
    assert "telescope" in t["text"].lower() and all(s["end"] > s["start"] for s in t["segments"])
