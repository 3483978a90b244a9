"""``vidcat bench loader``: clips/s of the real training loader without and with the clip cache, per
epoch, and the process's peak RSS while a long video goes through the cache.

    vidcat bench loader [FILES...] --epochs 3 --long-seconds 300

Epoch 1 with the cache decodes whole videos into it (slower than plain clip reads on long files);
later epochs only read memory-mapped frames, so their clips/s against the no-cache epoch (same
process, same data, same seed) is the speed-up training gets. The RSS check generates (or takes) a
long video, fills the cache from it and then samples random training clips from the entry, reading
``VmRSS`` all along: it must stay flat (the fill streams bounded chunks to disk; reads map only the
frames they touch) instead of growing with the video like a decode-everything reader.
"""
from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from vidcat.config import BenchLoaderConfig
from vidcat.data.clip_cache import cached_clips
from vidcat.errors import VidcatError


def rss_mb() -> float:
    """Resident set size of this process (Linux ``/proc/self/status``), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """Samples :func:`rss_mb` every ``interval`` s in a thread while active; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def __enter__(self):
        self.start = self.peak = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def write_long_video(path, seconds: float, fps: int = 25, size: tuple = (320, 240), gop: int = 50) -> Path:
    """A ``seconds``-long H.264 test video (a drifting texture), encoded frame by frame (flat memory)."""
    import av

    path = Path(path)
    w, h = size
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (h * 2, w * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        for i in range(int(seconds * fps)):
            y, x = (i * 3) % h, (i * 5) % w
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(tex[y:y + h, x:x + w]), format="rgb24")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode())
    return path


def _epoch(clips, batch_size: int, workers: int, seed: int) -> tuple[float, int]:
    """Clips/s of one epoch. With ``workers=0`` everything runs on this thread, whose CPU time is the
    clock (immune to other processes taking the core, see :func:`vidcat.inference.fast.resolve_clock`)."""
    import torch

    from vidcat.data.dataset import make_loader

    now = time.thread_time if workers == 0 else time.perf_counter
    torch.manual_seed(seed)
    loader = make_loader(clips, batch_size, True, workers)
    t, n = now(), 0
    for b in loader:
        n += b["size"]
    return n / max(now() - t, 1e-9), n


def bench_loader_cache(cfg: BenchLoaderConfig, log=None) -> dict:
    """No-cache epoch vs cached epochs 1..N through the real ``VideoClips`` + ``make_loader``."""
    from benchmarks.speed import default_files
    from benchmarks.speed.train import model_data_config
    from vidcat.data.clip_cache import ClipCache
    from vidcat.data.dataset import VideoClips
    from vidcat.data.manifest import Dataset, Item

    files = list(cfg.files) or default_files()
    if not files:
        raise VidcatError("bench loader: give video files (no ../shared/data/media found)")
    data_cfg = model_data_config(cfg.model)
    ds = Dataset([Item(str(f), ["x"]) for f in files] * cfg.repeat_items, ["x"])
    with tempfile.TemporaryDirectory(prefix="vidcat-bench-cache-") as tmp:
        cache_dir = Path(cfg.cache or tmp)
        base, n = _epoch(VideoClips(ds, data_cfg, train=True), cfg.batch_size, cfg.workers, 0)
        if log:
            log(f"no cache: {base:.1f} clips/s")
        epochs = []
        with cached_clips(data_cfg, cache_dir):
            for e in range(cfg.epochs):
                rate, _ = _epoch(VideoClips(ds, data_cfg, train=True), cfg.batch_size, cfg.workers, e + 1)
                epochs.append(round(rate, 2))
                if log:
                    log(f"cache epoch {e + 1}: {rate:.1f} clips/s")
        cache_mb = ClipCache(cache_dir).size_bytes() / 2**20
    later = epochs[1:] or epochs
    return {"files": [str(f) for f in files], "clips_per_epoch": n, "workers": cfg.workers,
            "clock": "thread_cpu" if cfg.workers == 0 else "wall",
            "decode_short_side": data_cfg.decode_short_side, "no_cache_clips_per_s": round(base, 2),
            "cache_clips_per_s_by_epoch": epochs, "first_epoch_vs_no_cache": round(epochs[0] / base, 2),
            "later_epochs_vs_no_cache": round(float(np.mean(later)) / base, 2), "cache_mb": round(cache_mb, 1)}


def bench_long_video_rss(cfg: BenchLoaderConfig, log=None) -> dict:
    """Peak RSS while one long video fills the cache and while random training clips are read from it."""
    from benchmarks.speed.train import model_data_config
    from vidcat.data.clip_cache import ClipCache
    from vidcat.data.sampling import sample_indices
    from vidcat.io.video import probe, read_frames

    data_cfg = model_data_config(cfg.model)
    side = data_cfg.decode_short_side
    with tempfile.TemporaryDirectory(prefix="vidcat-bench-rss-") as tmp:
        video = cfg.long_video or str(write_long_video(Path(tmp) / "long.mp4", cfg.long_seconds))
        info = probe(video)
        cache = ClipCache(Path(tmp) / "cache")
        progress = []

        def decode(path, idx, short_side):
            out = read_frames(path, idx, short_side=short_side, threads=1)
            progress.append((int(idx[-1]) + 1, rss_mb()))
            return out

        t = time.perf_counter()
        with PeakRSS() as fill:
            frames, _ = cache.entry(video, side, decode)
            decoded_mb = frames.nbytes / 2**20
            del frames
        fill_s = time.perf_counter() - t
        rng = np.random.default_rng(0)
        with PeakRSS() as reads:
            for _ in range(200):
                idx = sample_indices(info.num_frames, data_cfg.sampler_config, True, rng)
                cache.get_or_decode(video, idx, side)
    rss = [r for _, r in progress]
    trend = rss[-1] - rss[len(rss) // 4] if len(rss) > 1 else 0.0  # growth after the first quarter: ~0 if flat
    trace = [round(r, 1) for _, r in progress][:: max(1, len(progress) // 8)]  # RSS after each chunk, <= ~8 shown
    return {"video_seconds": round(info.duration, 1), "video_frames": info.num_frames,
            "size": f"{info.width}x{info.height}", "decoded_mb_at_short_side": round(decoded_mb, 1),
            "fill_seconds": round(fill_s, 1), "rss_mb_before": round(fill.start, 1),
            "rss_mb_during_fill": trace, "rss_peak_growth_mb_fill": round(fill.peak - fill.start, 1),
            "rss_peak_growth_mb_200_cached_clips": round(reads.peak - reads.start, 1),
            "rss_mb_trend_fill": round(trend, 1), "rss_flat": bool(trend < max(32.0, 0.1 * decoded_mb))}


def bench_loader(cfg: BenchLoaderConfig, log=None) -> dict:
    out = bench_loader_cache(cfg, log)
    if cfg.long_video or cfg.long_seconds:
        out["long_video"] = bench_long_video_rss(cfg, log)
    return out


def run_bench_loader(cfg: BenchLoaderConfig) -> int:
    from vidcat.io.console import echo

    print(json.dumps(bench_loader(cfg, log=echo), indent=1))
    return 0
