"""``vidcat prepare DATA --out DIR``: re-encode a data set once at the training resolution with a short GOP.

    vidcat prepare data/raw --out data/prepared --short-side 128 --gop 16

What MMAction2 users do by hand before training: every epoch otherwise decodes full-size frames
(720p-1080p) only to shrink them to ~128 px, and seeks land on keyframes seconds apart. Each video
becomes ``DIR/<same relative path>.mp4``: H.264 (CRF ``crf``, ``preset``), short side ``short_side``
(never upscaled), a keyframe every ``gop`` frames, display rotation applied to the pixels, and the
same timestamps (so clip times, audio and subtitles stay aligned). Audio: the first audio stream,
re-encoded to AAC at its own rate. Subtitles: ``mov_text`` streams are copied; other subtitle codecs
(SRT/ASS in MKV, bitmap subtitles) are dropped and counted in the report. Only the first video stream
is kept (the one vidcat reads).

A folder-per-class tree keeps its layout; a CSV/JSONL manifest (or a ``vidcat synth`` folder with
``train/val/test.csv``) is rewritten into ``DIR`` with the new paths and every other column kept.
Each file is written to a temp name and renamed (atomic); files already in ``DIR`` are skipped unless
``overwrite``; an unreadable file is skipped with one line. At the end the decode time of training
clips is measured on a few files before and after, and the ratio printed.
"""
from __future__ import annotations

import json
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcat.config import PrepareConfig
from vidcat.errors import VidcatError, VideoError
from vidcat.io.store import atomic_path


def _even_size(w: int, h: int, short_side: int) -> tuple[int, int]:
    scale = min(1.0, short_side / min(w, h))
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def _upright(frame: av.VideoFrame, w: int, h: int) -> av.VideoFrame:
    """``frame`` resized to (w, h) display size with its display rotation applied to the pixels, yuv420p."""
    rot = int(getattr(frame, "rotation", 0) or 0) % 360
    if not rot:
        return frame.reformat(width=w, height=h, format="yuv420p")
    sw, sh = (h, w) if rot in (90, 270) else (w, h)
    img = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24", width=sw, height=sh), k=rot // 90))
    out = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    return out


def reencode(src, dst, short_side: int = 128, gop: int = 16, crf: int = 20, preset: str = "veryfast",
             audio: bool = True) -> dict:
    """Re-encode ``src`` into ``dst`` (MP4, atomic); returns what was kept/dropped. Raises :class:`VideoError`."""
    from vidcat.io.video import open_container, probe

    info = probe(src)  # raises VideoError for an unreadable file
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    report = {"audio": False, "subtitles_copied": 0, "subtitles_dropped": 0}
    inp = open_container(src)
    try:
        if not inp.streams.video:
            raise VideoError(src, "no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if audio and inp.streams.audio else None
        subs = list(inp.streams.subtitles)
        with atomic_path(dst) as tmp, av.open(str(tmp), "w", format="mp4") as out:
            rate = vin.average_rate or vin.guessed_rate or Fraction(25)
            vout = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
            vout.pix_fmt = "yuv420p"
            size = _even_size(info.width, info.height, short_side)  # display size (rotation applied)
            vout.width, vout.height = size
            vout.codec_context.gop_size = gop
            vout.codec_context.time_base = vin.time_base
            aout = resampler = None
            if ain is not None:
                aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 44100)
                aout.layout = ain.codec_context.layout.name if ain.codec_context.layout else "stereo"
                resampler = av.AudioResampler(format="fltp", layout=aout.layout.name, rate=aout.rate)
                report["audio"] = True
            sub_map = {}
            for s in subs:
                if s.codec_context and s.codec_context.name == "mov_text":
                    sub_map[s.index] = out.add_stream_from_template(s)
                    report["subtitles_copied"] += 1
                else:
                    report["subtitles_dropped"] += 1
            frames, last = 0, -(1 << 62)
            wanted = [vin] + ([ain] if ain is not None else []) + [s for s in subs if s.index in sub_map]
            for packet in inp.demux(wanted):
                if packet.stream.index in sub_map:
                    if packet.dts is not None:
                        packet.stream = sub_map[packet.stream.index]
                        out.mux(packet)
                    continue
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    continue  # a damaged packet: FFmpeg's own players skip it too
                for frame in decoded:
                    if packet.stream is vin:
                        # decode order = display order; some AVI files report shuffled pts: keep them increasing
                        pts = frame.pts if frame.pts is not None and frame.pts > last else last + 1
                        last = pts
                        f = _upright(frame, *size)
                        f.pts, f.time_base = pts, vin.time_base
                        out.mux(vout.encode(f))
                        frames += 1
                    else:
                        for af in resampler.resample(frame):
                            af.pts = None
                            out.mux(aout.encode(af))
            if not frames:
                raise VideoError(src, "no decodable video frames (truncated or corrupt)")
            out.mux(vout.encode())
            if aout is not None:
                for af in resampler.resample(None):
                    out.mux(aout.encode(af))
                out.mux(aout.encode())
    except av.error.FFmpegError as e:
        raise VideoError(src, f"re-encoding failed ({e})") from None
    finally:
        inp.close()
    report.update(frames=frames, size=list(size))
    return report


# -- data sets --------------------------------------------------------------------------------------
def _plan(cfg: PrepareConfig) -> tuple[list[tuple[Path, Path]], list[tuple[Path, list]]]:
    """(source, destination) per video, and the manifests to rewrite as (manifest, items)."""
    from vidcat.data.manifest import read_csv, read_jsonl
    from vidcat.io.video import find_videos

    src, out = Path(cfg.data), Path(cfg.out)
    manifests: list[tuple[Path, list]] = []
    if src.is_dir() and any((src / f"{s}.csv").is_file() for s in ("train", "val", "test")):
        manifests = [(src / f"{s}.csv", read_csv(src / f"{s}.csv")) for s in ("train", "val", "test")
                     if (src / f"{s}.csv").is_file()]
        base = src
    elif src.is_dir():  # a folder-per-class tree (or a flat folder labelled by file name): mirrored
        return [(p, out / p.relative_to(src).with_suffix(".mp4")) for p in find_videos(src)], []
    else:
        items = read_csv(src) if src.suffix.lower() == ".csv" else read_jsonl(src) \
            if src.suffix.lower() in (".jsonl", ".json") else None
        if items is None:
            raise VidcatError(f"{src}: prepare reads a folder or a CSV/JSONL manifest")
        manifests, base = [(src, items)], src.parent
    pairs, seen = [], {}
    for _, items in manifests:
        for it in items:
            p = Path(it.path)
            if p in seen:
                continue
            try:
                rel = p.resolve().relative_to(base.resolve())
            except ValueError:  # outside the manifest's folder: keep its name, under _external/
                rel = Path("_external") / p.name
            seen[p] = out / rel.with_suffix(".mp4")
            pairs.append((p, seen[p]))
    return pairs, [(m, [(it, seen[Path(it.path)]) for it in items]) for m, items in manifests]


def _write_manifest(src: Path, rows: list, out_dir: Path, ok: set) -> Path:
    from vidcat.data.manifest import write_manifest

    dst = out_dir / (src.stem + ".csv")
    recs = []
    for it, new in rows:
        if new not in ok:
            continue  # skipped (unreadable) files are left out of the new manifest
        rec = {"path": os.path.relpath(new, out_dir), "labels" if len(it.labels) > 1 else "label":
               it.labels if len(it.labels) > 1 else (it.labels[0] if it.labels else "")}
        if it.text:
            rec["text"] = it.text
        rec.update(it.meta)
        recs.append(rec)
    return write_manifest(dst, recs)


def clip_decode_seconds(path, frames: int, short_side: int, positions=(0.2, 0.5, 0.8)) -> float:
    """Seconds to decode one training clip (``frames`` consecutive frames at ``short_side``) at each of
    ``positions`` (fractions of the video), summed: what a data-loader worker pays per sample."""
    from vidcat.io.video import VideoReader

    with VideoReader(path, threads=1) as r:
        n = r.info.num_frames
        t = time.perf_counter()
        for pos in positions:
            start = int(max(n - frames, 0) * pos)
            r.frames(np.minimum(np.arange(start, start + frames), n - 1), short_side=short_side)
        return time.perf_counter() - t


def prepare(cfg: PrepareConfig, log=None) -> dict:
    """Re-encode the data set of ``cfg``; returns the report (counts, bytes, measured clip speed-up)."""
    from vidcat.io.console import echo

    log = log or echo
    pairs, manifests = _plan(cfg)
    if not pairs:
        raise VidcatError(f"{cfg.data}: no videos to prepare")
    out = Path(cfg.out)
    ok, skipped, done, existing, dropped_subs, kept_audio = set(), [], 0, 0, 0, 0
    before_bytes = after_bytes = 0
    t0 = time.perf_counter()
    for src, dst in pairs:
        if dst.is_file() and not cfg.overwrite:
            ok.add(dst)
            existing += 1
            continue
        try:
            rep = reencode(src, dst, cfg.short_side, cfg.gop, cfg.crf, cfg.preset, cfg.audio)
        except VideoError as e:
            skipped.append((str(src), e.reason))
            log(f"skipped {src}: {e.reason}")
            continue
        ok.add(dst)
        done += 1
        dropped_subs += rep["subtitles_dropped"]
        kept_audio += rep["audio"]
        before_bytes += src.stat().st_size
        after_bytes += dst.stat().st_size
    new_manifests = [str(_write_manifest(m, rows, out, ok)) for m, rows in manifests]
    report = {"out": str(out), "videos": len(pairs), "encoded": done, "already_there": existing,
              "skipped": len(skipped), "seconds": round(time.perf_counter() - t0, 1),
              "short_side": cfg.short_side, "gop": cfg.gop, "with_audio": kept_audio,
              "subtitle_streams_dropped": dropped_subs, "manifests": new_manifests,
              "bytes_ratio": round(after_bytes / before_bytes, 3) if before_bytes else None}
    timed = [(s, d) for s, d in pairs if d in ok][:cfg.measure]
    if timed:
        before = sum(clip_decode_seconds(s, cfg.frames, cfg.short_side) for s, _ in timed)
        after = sum(clip_decode_seconds(d, cfg.frames, cfg.short_side) for _, d in timed)
        report["clip_decode_ms_before"] = round(before / (3 * len(timed)) * 1e3, 2)
        report["clip_decode_ms_after"] = round(after / (3 * len(timed)) * 1e3, 2)
        report["epoch_decode_speedup"] = round(before / max(after, 1e-9), 2)
        report["measured_on"] = len(timed)
    return report


def run_prepare(cfg: PrepareConfig) -> int:
    report = prepare(cfg)
    print(json.dumps(report, indent=1))
    if "epoch_decode_speedup" in report:
        from vidcat.io.console import echo

        echo(f"clip decode {report['clip_decode_ms_before']} -> {report['clip_decode_ms_after']} ms: "
             f"{report['epoch_decode_speedup']}x faster epochs (decode side)")
    return 0
