"""Clean logs (issue 20 item 5): a default run writes no library warnings and, when its output is a
file or pipe, no tqdm carriage-return frames (one plain line per step instead)."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _vidcat(*args, cwd) -> subprocess.CompletedProcess:
    """``python -m vidcat ...`` with stdout and stderr captured (pipes: not a terminal), default warnings."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "vidcat", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_synth_and_train_into_a_pipe_write_plain_lines(tmp_path):
    data = tmp_path / "data"
    r = _vidcat("synth", str(data), "--per-class", "1", "--frames", "8", "--size", "32", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    both = r.stdout + r.stderr
    assert "\r" not in both and "Warning" not in both, both
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("vidcat: synth motion: 20 videos")], r.stderr
    r = _vidcat("train", "--data", str(data / "train.csv"), "--val", str(data / "val.csv"), "--out",
                str(tmp_path / "run"), "--model", "tiny3d", "--frames", "4", "--size", "32", "--epochs", "2",
                "--batch-size", "4", "--workers", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    both = r.stdout + r.stderr
    assert "\r" not in both and "Warning" not in both, both
    assert (tmp_path / "run" / "curves.png").is_file()


def test_curves_without_a_labelled_line_warn_nothing(tmp_path):
    """A multi-label run has no top1 curve: the plot has no empty legend (matplotlib's UserWarning)."""
    from vidcat.engine.plots import plot_curves

    history = [{"epoch": 1, "train_loss": 0.9, "train_top1": None, "val_loss": 0.8, "val_top1": None},
               {"epoch": 2, "train_loss": 0.7, "train_top1": None, "val_loss": 0.75, "val_top1": None}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_curves(history, tmp_path / "curves.png").is_file()


def test_progress_is_a_bar_only_on_a_terminal(monkeypatch, capsys):
    from vidcat.io import progress as P

    monkeypatch.setattr(P, "on_terminal", lambda: False)
    assert list(P.progress(range(3), desc="work", unit="clip")) == [0, 1, 2]
    assert capsys.readouterr().err.startswith("vidcat: work: 3 clips (")
    with P.progress(total=2, desc="quiet", enabled=False) as bar:
        bar.update(2)
    assert list(P.progress(range(2), desc="eval", leave=False)) == [0, 1]
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(P, "on_terminal", lambda: True)
    from tqdm import tqdm

    assert isinstance(P.progress(range(2), desc="bar"), tqdm)
