"""The one artefact store: atomic writes and verified entries (bad ones are rejected, never trusted)."""
import errno
import os

import numpy as np
import pytest

from vidcat.io import store as S


@pytest.fixture
def st(tmp_path):
    lines = []
    s = S.Store("t", version=3, root=tmp_path, log=lines.append)
    s.lines = lines
    return s


def test_roundtrip_and_meta(st):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    k = st.key({"file": "x", "view": 0})
    st.put(k, a, meta={"fps": 25})
    got, meta = st.get(k, with_meta=True)
    assert np.array_equal(got, a) and meta == {"fps": 25}
    assert np.array_equal(np.asarray(st.get(k, mmap=True)), a)
    assert st.get(st.key({"file": "y"})) is None and st.lines == []


def _corrupt(p, how):
    b = bytearray(p.read_bytes())
    if how == "truncate":
        p.write_bytes(bytes(b[:-5]))
    elif how == "garble":
        b[-3] ^= 0xFF
        p.write_bytes(bytes(b))
    elif how == "empty":
        p.write_bytes(b"")
    elif how == "old_npy":
        np.save(open(p, "wb"), np.zeros(3))


@pytest.mark.parametrize("how", ["truncate", "garble", "empty", "old_npy"])
def test_bad_entry_is_rejected_and_removed(st, how):
    k = st.key({"v": how})
    st.put(k, np.ones((4, 5), np.float32))
    _corrupt(st.path(k), how)
    assert st.get(k) is None
    assert not st.path(k).exists() and st.rejected == 1
    assert len(st.lines) == 1 and str(st.path(k)) in st.lines[0]


def test_other_keys_entry_and_nan_are_rejected(st):
    k1, k2 = st.key({"a": 1}), st.key({"a": 2})
    st.put(k1, np.ones(3, np.float32))
    st.path(k2).parent.mkdir(parents=True, exist_ok=True)
    st.path(k2).write_bytes(st.path(k1).read_bytes())      # another file's entry copied in
    assert st.get(k2) is None
    st.put(k1, np.array([1.0, np.nan], np.float32))
    assert st.get(k1) is None


def test_version_is_part_of_the_key(tmp_path):
    a, b = S.Store("t", 1, root=tmp_path), S.Store("t", 2, root=tmp_path)
    assert a.key({"x": 1}) != b.key({"x": 1})


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    dst = tmp_path / "best.pt"
    S.atomic_write(dst, b"old")

    def boom(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError):
        S.atomic_write(dst, boom)
    assert dst.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_sweep_removes_stale_temp_only(tmp_path):
    old, new = tmp_path / ".a.x.tmp-1", tmp_path / ".b.y.tmp-2"
    old.write_bytes(b"x"), new.write_bytes(b"y")
    os.utime(old, (0, 0))
    assert S.sweep_temp(tmp_path) == 1 and new.exists() and not old.exists()


def test_cache_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv("VIDCAT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert S.cache_root() == tmp_path / "xdg" / "vidcat"
    monkeypatch.setenv("VIDCAT_CACHE", str(tmp_path / "v"))
    assert S.cache_root() == tmp_path / "v"
    assert S.cache_root(tmp_path / "o") == tmp_path / "o"


def test_content_key_ignores_path_and_mtime(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(os.urandom(3000)), b.write_bytes(a.read_bytes())
    os.utime(b, (1, 1))
    assert S.content_key(a) == S.content_key(b)


def test_put_stream_equals_put_and_rejects_a_short_stream(st):
    a = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    k = st.key({"stream": 1})
    st.put_stream(k, np.uint8, a.shape, (a[i:i + 2] for i in range(0, 5, 2)), meta={"n": 5})
    got, meta = st.get(k, mmap=True, with_meta=True)
    assert np.array_equal(np.asarray(got), a) and meta == {"n": 5}
    with pytest.raises(ValueError, match="bytes written"):
        st.put_stream(st.key({"stream": 2}), np.uint8, a.shape, iter([a[:2]]))
    assert not st.path(st.key({"stream": 2})).exists()


def test_mmap_get_verifies_the_checksum_once(st):
    k = st.key({"m": 1})
    st.put(k, np.ones((64, 64), np.uint8))
    p = st.path(k)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    assert st.get(k, mmap=True) is None and st.rejected == 1


def test_finished_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    p = S.atomic_write(tmp_path / "config.json", "{}")
    with S.atomic_path(tmp_path / "m.onnx") as t:
        t.write_bytes(b"x")
    for f in (p, tmp_path / "m.onnx"):
        assert os.stat(f).st_mode & 0o777 == 0o666 & ~mask
