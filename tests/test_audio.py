"""Audio decoding from real files and from files we mux ourselves, log-mel features, audio models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidcat.data.synth_media import mux_av, tone
from vidcat.errors import VideoError
from vidcat.io.audio import audio_features, load_audio, log_mel, mel_frames
from vidcat.models.registry import create_model, get_spec, list_models

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"sample media not found at {MEDIA}")
SR = 16000


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def peak_hz(x, sr=SR) -> float:
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(np.abs(np.fft.rfft(x)))])


@pytest.fixture(scope="module")
def two_tones(tmp_path_factory):
    """1 s of 440 Hz then 1 s of 880 Hz, AAC in MP4 next to 20 frames of H.264."""
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    path = tmp_path_factory.mktemp("audio") / "tones.mp4"
    return mux_av(path, frames, 10, audio=np.concatenate([tone(440, 1.0), tone(880, 1.0)]))


# (file, audio stream, expected duration s): MP3 in AVI, 16 kHz PCM WAV, both AAC tracks of nasa (8 and 16 kHz).
AUDIO_FILES = [("mmaction2_test.avi", None, 6.557), ("mmaction2_test.wav", None, 6.557),
               ("torchcodec_nasa_13013.mp4", None, 13.056), ("torchcodec_nasa_13013.mp4", 0, 13.056)]


@needs_media
@pytest.mark.parametrize("name,stream,duration", AUDIO_FILES)
def test_real_audio_tracks(name, stream, duration):
    full = load_audio(MEDIA / name, stream=stream)
    assert full.present and full.sr == SR and full.waveform.dtype == np.float32 and full.waveform.ndim == 1
    assert abs(full.duration - duration) < 0.05
    assert 0.05 < rms(full.waveform) < 0.5  # observed 0.108-0.129
    win = load_audio(MEDIA / name, 2.0, 3.0, stream=stream)
    assert win.present and win.waveform.shape == (SR,) and rms(win.waveform) > 0.02
    # The seeked window is the same audio as the slice of the full decode (no lag at all).
    ref = full.waveform[2 * SR - 400:3 * SR + 400]
    assert np.argmax(np.correlate(ref, win.waveform, "valid")) == 400


@needs_media
@pytest.mark.parametrize("name", ["torchcodec_av1_video.mkv", "torchcodec_h265_video.mp4", "mmaction2_demo.mp4"])
def test_video_without_audio_gives_silence(name):
    clip = load_audio(MEDIA / name, 0.25, 0.75)
    assert not clip.present and clip.waveform.shape == (8000,) and not clip.waveform.any()
    x, present = audio_features(MEDIA / name, 0.0, 1.0)
    assert present == 0.0 and x.shape == (1, 64, mel_frames(1.0))


@needs_media
def test_window_past_the_end_is_padded():
    clip = load_audio(MEDIA / "mmaction2_test.wav", 6.0, 7.5)
    assert clip.waveform.shape == (24000,) and clip.present
    assert rms(clip.waveform[:8000]) > 0.01 and not clip.waveform[int(0.6 * SR):].any()


def test_unreadable_files(tmp_path):
    bad = tmp_path / "junk.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        load_audio(bad)
    with pytest.raises(VideoError, match="not found"):
        load_audio(tmp_path / "missing.mp4", 0, 1)


def test_window_alignment_on_synthetic_tones(two_tones):
    assert abs(peak_hz(load_audio(two_tones, 0.2, 0.8).waveform) - 440) < 5
    assert abs(peak_hz(load_audio(two_tones, 1.2, 1.8).waveform) - 880) < 5
    onset = load_audio(mux_av(two_tones.with_name("onset.mp4"), np.zeros((10, 16, 16, 3), np.uint8), 10,
                              audio=np.concatenate([tone(0, 1.0), tone(440, 1.0)])), 0.9, 1.1).waveform
    assert abs(np.argmax(np.abs(onset) > 0.2) / SR - 0.1) < 0.005  # tone starts at 1.000 s (+-5 ms)


def test_log_mel_shapes(two_tones):
    mel = log_mel(tone(880, 1.0))
    assert mel.shape == (64, 101) == (64, mel_frames(1.0)) and mel.dtype == np.float32
    assert log_mel(np.zeros(8000, np.float32)).max() == pytest.approx(np.log(1e-6))
    for window in [(0.0, 0.5), (1.3, 1.8)]:  # same length -> same number of frames
        x, present = audio_features(two_tones, *window)
        assert x.shape == (1, 64, mel_frames(0.5)) == (1, 64, 51) and present == 1.0


@pytest.mark.parametrize("name,dim", [("audio_cnn", 128), ("audio_resnet18", 512)])
def test_audio_models(name, dim):
    assert name in list_models(family="audio") and get_spec(name).modality == "audio"
    model = create_model(name, 5).eval()
    x = torch.randn(2, 1, 64, 101)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        assert model.features(x).shape == (2, dim) == (2, model.feat_dim)
        assert torch.allclose(model(x), model.head(model.features(x)))
