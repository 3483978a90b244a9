"""Fast fuzz subset (issue 13): 26 damaged / hostile inputs made from the real clips through
``vidcat predict``, ``vidcat flow`` and ``vidcat timeline`` under a 6 GB address-space limit.

The full run (250 inputs, every command) is ``python -m tests.fuzz.run --full``; see tests/fuzz/run.py.
"""
from __future__ import annotations

from tests.fuzz.generate import load_corpus, make_corpus, source_clips


def test_corpus_is_deterministic_and_varied(shared_data, tmp_path):
    a = make_corpus(tmp_path / "a", seed=3, limit=40)
    b = make_corpus(tmp_path / "b", seed=3, limit=40)
    assert a == b == load_corpus(tmp_path / "a") and len(a) == 40
    for e in a:
        pa, pb = tmp_path / "a" / e.name, tmp_path / "b" / e.name
        if pa.is_file() and not pa.is_symlink():
            assert pa.read_bytes() == pb.read_bytes(), e.name
    kinds = {e.kind for e in a}
    assert {"truncate", "header_flip", "body_flip", "zero_block", "zero_byte", "text_as_video", "png_as_video",
            "jpeg_as_video", "symlink_loop", "dangling_symlink", "directory_named_video"} <= kinds
    names = [e.name for e in a]
    assert any(n.startswith("-") for n in names) and any(" " in n for n in names)
    assert any(not n.isascii() for n in names)
    c = make_corpus(tmp_path / "c", seed=4, limit=40)
    assert [e.detail for e in c] != [e.detail for e in a]  # the seed matters
    assert len(source_clips()) >= 50


def test_fast_fuzz_subset(shared_data, tiny_ckpt, tmp_path):
    """0 tracebacks, hangs, out-of-memory and crashes; one record per input."""
    from tests.fuzz.run import FAST_COMMANDS, FAST_LIMIT, run_fuzz

    result = run_fuzz(tmp_path / "work", FAST_LIMIT, FAST_COMMANDS, file_timeout=20, ckpt=tiny_ckpt[0])
    cmds = result["commands"]
    assert result["inputs"] == FAST_LIMIT
    for name in ("flow", "timeline"):
        s = cmds[name]
        bad = {k: s[k] for k in ("tracebacks", "hangs", "oom", "crashes", "internal", "missing", "extra") if s[k]}
        assert not bad, (name, bad, s.get("unexplained"))
        assert s["ok"] >= 5 and s["errors"] >= 10, s  # intact/damaged clips predicted, junk refused
    p = cmds["predict"]
    assert p["tracebacks"] == p["hangs"] == p["oom"] == p["crashes"] == 0, p
    assert p["exit"] == 0 and p["missing"] == p["extra"] == p["internal"] == 0, p
    assert p["records"] == FAST_LIMIT and p["ok"] >= 5 and p["errors"] >= 10, p

