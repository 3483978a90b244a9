"""Write small but real media files (H.264 + AAC + timed-text subtitles) for synthetic benchmarks and tests.

Everything goes through PyAV, so the files exercise the same decoders as user data. Files are written
under a temporary name and moved into place, so a crash never leaves a half-written video behind.
"""
from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcat.io.text import Cue, write_srt
from vidcat.io.store import atomic_path

# Subtitle codec per container: MP4/MOV carry 3GPP timed text, Matroska carries ASS.
_SUBTITLE_CODEC = {"mp4": "mov_text", "mov": "mov_text", "matroska": "ass"}
_CONTAINER = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
               b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
               b"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
               b"Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
               b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
               b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")


def tone(freq: float, seconds: float, sr: int = 16000, noise: float = 0.0, rng=None, amp: float = 0.5) -> np.ndarray:
    """A float32 sine of ``freq`` Hz plus optional white noise of std ``noise``; ``freq=0`` gives silence."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq * t) if freq else np.zeros_like(t)
    if noise:
        x = x + (rng or np.random.default_rng()).normal(0.0, noise, len(t))
    return x.astype(np.float32)


def _can_encode_subtitles() -> bool:
    from av.subtitles.codeccontext import SubtitleCodecContext

    return hasattr(SubtitleCodecContext, "encode_subtitle")


def _subtitle_packets(stream, cues, tb: Fraction):
    """Encode cues as ASS dialogue events; returns packets in ``tb`` units."""
    from av.subtitles.subtitle import SubtitleSet

    cc = stream.codec_context
    cc.time_base, cc.subtitle_header = tb, _ASS_HEADER
    packets = []
    for i, c in enumerate(cues):
        text = c.text.replace("{", "(").replace("}", ")").replace("\n", "\\N")
        start, dur = int(round(c.start / tb)), int(round((c.end - c.start) / tb))
        pkt = cc.encode_subtitle(SubtitleSet.create(f"{i},0,Default,,0,0,0,,{text}".encode(), 0, dur, start))
        pkt.stream, pkt.time_base = stream, tb
        packets.append(pkt)
    return packets


def mux_av(path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None, subtitles=None,
           crf: int = 23, sr: int = 16000, metadata: dict | None = None, gop: int | None = None,
           preset: str = "veryfast") -> Path:
    """Write ``frames`` (T, H, W, 3) uint8 RGB as H.264, ``audio`` (mono float32 at ``sr``) as AAC and
    ``subtitles`` (list of :class:`Cue`) as an embedded text stream (mov_text in MP4, ASS in MKV).

    Odd frame sizes are padded to even (yuv420p needs it). If this PyAV cannot encode subtitles
    (before 16), they go to a sidecar ``<name>.srt`` instead, with a warning. Returns ``path``.
    """
    path = Path(path)
    fmt = _CONTAINER.get(path.suffix.lower(), "mp4")
    frames = np.asarray(frames, np.uint8)
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    sidecar = None
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format=fmt) as out:
            out.metadata.update(metadata or {})
            # mbtree off: on frames this small x264's macroblock-tree lookahead reads uninitialised memory, so the
            # same frames encoded twice could differ; a synthetic set must be the same bytes on every run
            v = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset,
                                                              "x264-params": "mbtree=0"})
            v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            if gop:
                v.codec_context.gop_size = gop
            a = out.add_stream("aac", rate=sr, layout="mono") if audio is not None else None
            s = None
            if subtitles:
                if _can_encode_subtitles():
                    s = out.add_stream(_SUBTITLE_CODEC[fmt])
                else:
                    sidecar = path.with_suffix(".srt")
            sub_packets = _subtitle_packets(s, subtitles, Fraction(1, 1000)) if s is not None else []
            for i, img in enumerate(frames):
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts = i
                out.mux(v.encode(f))
            out.mux(v.encode())
            if a is not None:
                x = np.asarray(audio, np.float32).reshape(1, -1)
                for k in range(0, x.shape[1], 1024):
                    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, k:k + 1024]), format="flt", layout="mono")
                    af.sample_rate, af.pts = sr, k
                    out.mux(a.encode(af))
                out.mux(a.encode())
            out.mux(sub_packets)
    if sidecar is not None:
        warnings.warn(f"this PyAV ({av.__version__}) cannot encode subtitles; wrote {sidecar.name} beside the video")
        write_srt(subtitles, sidecar)
    return path


__all__ = ["Cue", "tone", "mux_av"]
