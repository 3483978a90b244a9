"""benchmarks/gpu_check.sh on CPU with tiny settings: every model trains 2 steps and is evaluated, the
throughput figures are there, the torchrun smoke passes, and the output is one JSON line."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": os.environ.get("PYTHON", __import__("sys").executable)}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--max-steps", "2",
                        "--size", "32", "--frames", "4", "--per-class", "2", "--batch-size", "2", "--workers", "0",
                        "--bench-steps", "1", "--data", str(tmp_path)],
                       capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    out = json.loads(lines[0])
    assert out["env"]["device"] == "cpu"
    assert [m["model"] for m in out["models"]] == ["r3d_18", "r2plus1d_18", "x3d_m", "tsm"]
    for m in out["models"]:
        assert "error" not in m, m
        assert m["steps"] == 2 and m["test_clips"] == 8 and 0 <= m["test_top1"] <= 1
        assert m["model_clips_s"] > 0 and m["loader_clips_s"] > 0 and m["loader_feeds"] > 0
        assert (m["frames"], m["size"], m["bf16"], m["channels_last"]) == (4, 32, False, False)  # CUDA only
    assert out["torchrun"]["returncode"] == 0 and out["torchrun"]["ddp_smoke"] == "ok"
    assert out["torchrun"]["world_size"] == 1 and out["torchrun"]["backend"] == "gloo"
