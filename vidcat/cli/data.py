"""``vidcat synth``, ``prepare`` and ``flow``: making and preparing data."""
from __future__ import annotations

import json

from vidcat.cli.common import command
from vidcat.config import FlowConfig, PrepareConfig, SynthCommand


def run_synth(cmd: SynthCommand) -> int:
    from vidcat.data.synthetic import generate

    manifests = generate(cmd.out, cmd.synth, progress=cmd.progress)
    print(json.dumps({k: str(v) for k, v in manifests.items()}))
    return 0


def run_prepare(cfg: PrepareConfig) -> int:
    from vidcat.data.prepare import run_prepare

    return run_prepare(cfg)


def run_flow(cfg: FlowConfig) -> int:
    from vidcat.io.motion.extract import run_flow

    return run_flow(cfg)


def add_commands(sub) -> None:
    command(sub, "synth", "write a synthetic benchmark of real encoded videos", SynthCommand, run_synth)
    command(sub, "prepare", "re-encode a data set once at the training size with short GOPs (faster epochs)",
            PrepareConfig, run_prepare)
    command(sub, "flow", "compute optical flow / codec motion vectors into a cache", FlowConfig, run_flow)
