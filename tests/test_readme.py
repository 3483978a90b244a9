"""The README can never drift from the CLI: every ``vidcat ...`` / ``torchrun ... -m vidcat ...`` line in its
code blocks is parsed by the real parser (optional ``[...]`` parts both with and without, ``a|b|c``
alternatives each), and the quick ones run."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from vidcat.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _code_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        lines += block.splitlines()
    lines += [ln[4:] for ln in text.splitlines() if re.match(r"    (vidcat|torchrun) ", ln)]
    joined, buf = [], ""
    for ln in lines:                                     # backslash continuations
        if ln.rstrip().endswith("\\"):
            buf += ln.rstrip()[:-1] + " "
            continue
        joined.append(buf + ln)
        buf = ""
    return joined


def readme_commands(text: str) -> list[list[str]]:
    """argv (after ``vidcat``) of every command line in the README's code."""
    out = []
    for line in _code_lines(text):
        line = re.sub(r"\s+#.*$", "", line).strip()
        for part in re.split(r"\s+(?:\||&&)\s+", line):
            m = re.match(r"(?:torchrun\s.*?-m\s+)?vidcat\s+(.*)$", part.strip())
            if m and not part.strip().startswith("$"):
                out += _variants(m.group(1))
    return out


def _variants(cmd: str) -> list[list[str]]:
    with_opt = re.sub(r"\[([^\]]*)\]", r"\1", cmd)
    without = re.sub(r"\s*\[[^\]]*\]", "", cmd)
    res = []
    for c in dict.fromkeys([with_opt, without]):
        argv = shlex.split(c)
        if argv and "|" in argv[-1] and len(argv) == 2:      # "bench decode|loader|model": each alternative
            res += [[argv[0], alt] for alt in argv[1].split("|")]
        else:
            res.append(argv)
    return res


COMMANDS = readme_commands(README.read_text()) if README.exists() else []


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 25
    assert {argv[0] for argv in COMMANDS} >= {"train", "eval", "predict", "cv", "batch", "serve", "export", "bench"}


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:70] for a in COMMANDS])
def test_every_readme_command_parses(argv):
    build_parser().parse_args(argv)                       # SystemExit(2) on a flag the CLI does not know


def test_the_old_batch_line_fails_and_the_new_one_parses():
    """``vidcat batch`` takes its videos positionally, like predict (the README had it so; the CLI did not)."""
    args = build_parser().parse_args(["batch", "--checkpoint", "m.onnx", "videos/", "--out", "r.parquet"])
    assert args.paths == "videos/"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["batch", "--checkpoint", "m.onnx", "a/", "b/", "--out", "r.parquet"])


@pytest.mark.parametrize("command", sorted({a[0] for a in COMMANDS if a[0] not in ("bench",)}))
def test_help_of_each_readme_command_runs(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage: vidcat " + command in capsys.readouterr().out


def test_quick_readme_commands_run(tmp_path, capsys):
    assert main(["models"]) == 0 and "streams" in capsys.readouterr().out
    assert main(["weights"]) == 0
    assert main(["synth", str(tmp_path / "m"), "--kind", "motion", "--per-class", "2", "--seed", "0"]) == 0
    assert (tmp_path / "m" / "train.csv").exists()
