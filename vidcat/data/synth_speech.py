"""Spoken-word clips for tests and the speech benchmark: ``espeak-ng`` speaks a script, the speech is
muxed (AAC) with random moving visuals (H.264) into a real encoded video. Needs the ``espeak-ng``
program (``apt-get install espeak-ng``); :func:`have_espeak` says whether it is there."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

SR = 16000


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50, sr: int = SR) -> np.ndarray:
    """``text`` spoken by espeak-ng as mono float32 at ``sr``."""
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                       check=True, capture_output=True)
        with wave.open(str(wav)) as w:
            rate, n = w.getframerate(), w.getnframes()
            x = np.frombuffer(w.readframes(n), np.int16).astype(np.float32) / 32768.0
    if rate != sr:  # espeak-ng writes 22050 Hz: linear resampling is plenty for speech recognition
        t = np.arange(int(len(x) * sr / rate)) / sr
        x = np.interp(t, np.arange(len(x)) / rate, x).astype(np.float32)
    return x


def random_visuals(rng, seconds: float, fps: float = 12, size: tuple = (96, 128)) -> np.ndarray:
    """Moving coloured blobs on noise: (T, H, W, 3) uint8 carrying no class information."""
    T = max(1, int(round(seconds * fps)))
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 256, 3)
    frames = np.empty((T, h, w, 3), np.uint8)
    c = rng.uniform([0, 0], [h, w])
    v = rng.normal(0, 3, 2)
    for t in range(T):
        c = (c + v) % [h, w]
        blob = ((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < (min(h, w) / 5) ** 2
        img = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255)
        img[blob] = 255 - base
        frames[t] = img.astype(np.uint8)
    return frames


def spoken_clip(path, text: str | None, rng=None, voice: str = "en-us", speed: int = 160, fps: float = 12,
                pad: float = 0.5, seconds: float | None = None) -> Path:
    """Write a video whose audio track speaks ``text`` (None: a silent track of ``seconds``) over random
    visuals."""
    from vidcat.data.synth_media import mux_av

    rng = rng if rng is not None else np.random.default_rng(0)
    if text:
        speech = speak(text, voice=voice, speed=speed)
        audio = np.concatenate([np.zeros(int(pad * SR), np.float32), speech, np.zeros(int(pad * SR), np.float32)])
    else:
        audio = np.zeros(int((seconds or 2.0) * SR), np.float32)
    return mux_av(path, random_visuals(rng, len(audio) / SR, fps), fps, audio=audio)
