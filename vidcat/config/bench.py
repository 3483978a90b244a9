"""``vidcat bench decode|loader|model|train|recipe|flow``: the options of the speed benchmarks
(``benchmarks/speed/`` of the source tree)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidcat.config.fields import check_fields, csv_tuple, int_tuple, opt, part_of
from vidcat.config.runtime import Runtime
from vidcat.errors import VidcatError

BENCH_FLOW_METHODS = ("mv", "dis_ultrafast", "dis_fast", "dis_medium", "farneback", "tvl1")


@dataclass
class BenchDecodeConfig:
    """Options of ``vidcat bench decode``."""

    files: tuple = opt((), "videos (none: make 60 s H.264 test files)", positional=True, nargs="*")
    repeat: int = opt(3, "timing repeats (best is kept)")
    short_side: int = opt(128, "training-size short side")
    segments: int = opt(8, "TSN frames per sparse read")
    clip_frames: int = opt(16, "consecutive frames per dense read")
    threads: int = opt(0, "decoder threads (0 = all cores)")

    def __post_init__(self):
        for name in ("repeat", "short_side", "segments", "clip_frames"):
            if int(getattr(self, name)) < 1:
                raise VidcatError(f"bench decode: --{name.replace('_', '-')} must be >= 1")
        if self.threads < 0:
            raise VidcatError("bench decode: --threads must be >= 0")
        missing = [f for f in self.files if not Path(f).is_file()]
        if missing:
            raise VidcatError(f"bench decode: not a file: {missing[0]}")


@dataclass
class BenchLoaderConfig(part_of(Runtime, "workers", workers=0)):
    """Options of ``vidcat bench loader``."""

    files: tuple = opt((), "videos (default: ../shared/data/media/*.mp4)", positional=True, nargs="*")
    model: str = opt("tiny3d", "model whose input (frames, size) the loader makes")
    epochs: int = opt(3, "epochs with the cache (the first fills it)", min=1)
    repeat_items: int = opt(4, "times each file appears in an epoch", min=1)
    batch_size: int = opt(4, "clips per batch", min=1)
    cache: str | None = opt(None, "cache folder (default: a temp folder, removed)")
    long_seconds: float = opt(300.0, "length of the generated long video for the RSS check (0 = skip)", min=0)
    long_video: str | None = opt(None, "use this long video for the RSS check")

    def __post_init__(self):
        self.files = tuple(self.files or ())
        check_fields(self)
        missing = [f for f in self.files + ((self.long_video,) if self.long_video else ()) if not Path(f).is_file()]
        if missing:
            raise VidcatError(f"{missing[0]}: file not found")


@dataclass
class BenchModelConfig(part_of(Runtime, "threads")):
    """Options of ``vidcat bench model``."""

    model: str = opt("tiny3d", "registered model name", positional=True, nargs="?")
    checkpoint: str | None = opt(None, "trained checkpoint (default: train tiny3d briefly / random weights for "
                                       "other models)")
    data: str | None = opt(None, "folder with train.csv/val.csv/test.csv (vidcat synth --kind motion); default: "
                                 "synthesize one")
    train_epochs: int = opt(20, "epochs of the quick training (no checkpoint; tiny3d); clips come from a clip "
                                "cache after the first", min=0)
    train: str = opt("auto", "train before timing: auto (tiny3d only) | yes | no", choices=("auto", "yes", "no"))
    batches: tuple = opt((1, 8), "batch sizes to time")
    clips: int = opt(20, "test clips scored per variant", min=1)
    repeat: int = opt(3, "timed runs per batch size (best kept)", min=1)
    compile: bool = opt(True, "also torch.compile (seconds to compile)", flag="--no-compile", invert=True)
    clock: str = opt("auto", "auto (thread CPU time at 1 thread, else wall) | cpu | wall",
                     choices=("auto", "cpu", "wall"))

    def __post_init__(self):
        if isinstance(self.batches, str):
            self.batches = tuple(int(b) for b in self.batches.split(",") if b.strip())
        self.batches = tuple(self.batches)
        if not self.batches or min(self.batches) < 1:
            raise VidcatError(f"--batches must list sizes >= 1, not {self.batches!r}")
        check_fields(self)
        if self.checkpoint and not Path(self.checkpoint).is_file():
            raise VidcatError(f"{self.checkpoint}: checkpoint not found")


@dataclass
class BenchTrainConfig(part_of(Runtime, "amp")):
    """Options of ``vidcat bench train``."""

    data: str | None = opt(None, "training set (folder-per-class, CSV, ...); default: a small synthetic motion set",
                           positional=True, nargs="?")
    model: str = opt("tiny3d", "model to train")
    threads: tuple = opt((1, 2), "torch intra-op thread counts to try", parse=int_tuple)
    workers: tuple = opt((0, 1, 2), "DataLoader worker counts to try", parse=int_tuple)
    batch_size: int = opt(8, "clips per step", min=1)
    steps: int = opt(6, "timed steps per setting", min=1)
    warmup: int = opt(2, "untimed steps per setting (workers start, queues fill)", min=0)
    clip_cache: str | None = opt(None, "read clips through a vidcat.data.clip_cache folder (default: decode every "
                                       "step)")

    def __post_init__(self):
        self.threads, self.workers = int_tuple(self.threads), int_tuple(self.workers)
        if not self.threads or min(self.threads) < 1:
            raise VidcatError(f"--threads must list counts >= 1, not {self.threads!r}")
        if not self.workers or min(self.workers) < 0:
            raise VidcatError(f"--workers must list counts >= 0, not {self.workers!r}")
        check_fields(self)


@dataclass
class BenchRecipeConfig:
    """Options of ``vidcat bench recipe``."""

    files: tuple = opt((), "videos or folders (default: ../shared/data)", positional=True, nargs="*")
    clips: int = opt(24, "clips to extract (the first N files found)", min=1)
    train_views: int = opt(3, "appearance views per clip (centre + augmented), as training", min=1)
    frames: int = opt(8, "frames per view", min=2)
    size: int = opt(160, "frame side", min=32)
    streams: tuple = opt((), "comma-separated streams to run (default: those vidcat train plans for the clips)",
                         parse=csv_tuple)
    workers: int | None = opt(None, "clip worker processes (default: one per core)", min=0)

    def __post_init__(self):
        self.streams = csv_tuple(self.streams) if isinstance(self.streams, str) else tuple(self.streams or ())
        check_fields(self)


@dataclass
class BenchFlowConfig:
    """``vidcat bench flow|mv FILES``: motion methods end to end (decode + motion) and alone, pairs/s."""

    files: tuple = opt((), "videos (default: ../shared/data/media/*.mp4)", positional=True, nargs="*")
    methods: tuple = opt(BENCH_FLOW_METHODS, "comma-separated motion methods", parse=csv_tuple)
    pairs: int = opt(40, "frame pairs for the motion-step-alone timing")
    repeat: int = opt(3, "best of this many runs")
