"""``vidcat synth``, ``prepare`` and ``flow``: making and preparing data."""
from __future__ import annotations

import json
from dataclasses import dataclass

from vidcat.cli.common import command
from vidcat.config import opt, require
from vidcat.data.prepare import PrepareConfig, run_prepare
from vidcat.data.synthetic import SynthConfig
from vidcat.motion.extract import FlowConfig, run_flow


@dataclass
class SynthCommand:
    """``vidcat synth OUT``: a synthetic benchmark of real encoded videos + train/val/test.csv."""

    out: str = opt(None, "output folder", positional=True)
    progress: bool = opt(True, "no progress bar", flag="--quiet", invert=True)
    synth: SynthConfig = opt(None, "", factory=SynthConfig, nested=True)

    def __post_init__(self):
        require(self, "out")


def run_synth(cmd: SynthCommand) -> int:
    from vidcat.data.synthetic import generate

    manifests = generate(cmd.out, cmd.synth, progress=cmd.progress)
    print(json.dumps({k: str(v) for k, v in manifests.items()}))
    return 0


def add_commands(sub) -> None:
    command(sub, "synth", "write a synthetic benchmark of real encoded videos", SynthCommand, run_synth)
    command(sub, "prepare", "re-encode a data set once at the training size with short GOPs (faster epochs)",
            PrepareConfig, run_prepare)
    command(sub, "flow", "compute optical flow / codec motion vectors into a cache", FlowConfig, run_flow)
