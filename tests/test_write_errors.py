"""Outputs that cannot be written (issue 21 item 5): a full disk or a read-only --out is one
``vidcat: error: cannot write <path>: <reason>`` line (exit 2), and no checkpoint temp file is left."""
from __future__ import annotations

import errno
import os

import pytest


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from vidcat.data.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("tiny")
    generate(root, SynthConfig(per_class=1, seed=2), progress=False)
    return root


def _train(data, out, capsys) -> tuple[int, list[str]]:
    from vidcat.cli import main

    rc = main(["train", "--data", str(data / "train.csv"), "--val", str(data / "val.csv"), "--out", str(out),
               "--model", "tiny3d", "--frames", "4", "--size", "32", "--epochs", "1", "--batch-size", "4",
               "--max-steps", "1", "--workers", "0", "--quiet"])
    return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def _temp_files(folder) -> list[str]:
    return [p for p in os.listdir(folder) if ".tmp" in p]


def test_full_disk_while_saving_a_checkpoint(tiny_data, tmp_path, monkeypatch, capsys):
    import torch

    from vidcat.models import build

    real_save = torch.save

    def full_disk(obj, f, *a, **kw):  # half the file is written, then the disk is full
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(build.torch, "save", full_disk)
    out = tmp_path / "run"
    rc, lines = _train(tiny_data, out, capsys)
    monkeypatch.setattr(build.torch, "save", real_save)
    assert rc == 2 and lines == [f"vidcat: error: cannot write {out / 'best.pt'}: No space left on device"], lines
    assert _temp_files(out) == [] and not (out / "best.pt").exists()


def test_read_only_out(tiny_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):  # root ignores the mode bits: simulate the read-only filesystem
            import tempfile

            real = tempfile.mkstemp

            def read_only(*a, dir=None, **kw):  # every vidcat write starts with a temp file in its folder
                if dir is not None and str(dir).startswith(str(out)):
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
                return real(*a, dir=dir, **kw)

            monkeypatch.setattr(tempfile, "mkstemp", read_only)
        rc, lines = _train(tiny_data, out, capsys)
    finally:
        out.chmod(0o755)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"vidcat: error: cannot write {out}"), lines
    assert lines[0].endswith(("Read-only file system", "Permission denied")), lines
    assert _temp_files(out) == []


def test_other_os_errors_are_not_disguised(monkeypatch):
    """Only write failures become the one line; another OSError is a bug and keeps its traceback."""
    import vidcat.cli as cli

    def boom(args):
        raise OSError(errno.EBADF, "Bad file descriptor")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["models"].set_defaults(func=boom)
    with pytest.raises(OSError, match="Bad file descriptor"):
        cli.main(["models"])
