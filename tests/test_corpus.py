"""benchmarks/corpus.py: the pinned table is well-formed, and the layout of a tiny fake source is right.
Fast and offline: the fake sources are two real clips of ../shared/data copied into tmp_path (or, without
them, two tiny clips encoded here with PyAV) and a throw-away git repository."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402

UD810 = ROOT.parent / "shared" / "data" / "ud810-actions"


def test_table_is_well_formed():
    names = [s.name for s in corpus.SETS]
    assert len(names) == len(set(names))
    assert sum(s.kind == "github" for s in corpus.SETS) >= 1
    for s in corpus.SETS:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", s.name), s.name
        for rx in (s.path_regex, s.label_regex, s.group_regex):
            assert re.compile(rx).groups >= (0 if rx is s.path_regex else 1), (s.name, rx)
        assert s.protocol.get("protocol") in ("logo", "group_kfold"), s.name
        if s.protocol["protocol"] == "group_kfold":
            assert int(s.protocol["folds"]) >= 2
        if s.kind == "github":
            assert re.fullmatch(r"[0-9a-f]{40}", s.commit or ""), s.name
            assert re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", s.source), s.name
        else:
            assert s.kind == "local" and s.commit is None
        text = " ".join([s.name, s.source, s.subdir, s.path_regex, " ".join(s.classes or ())]).lower()
        assert not any(w in text for w in corpus.FORBIDDEN_WORDS), s.name
        assert s.spec_hash() == replace(s).spec_hash()


def test_select_prefers_the_original_and_subsamples():
    s = corpus.get_set("mlr511-arsl")
    paths = ["user01/G01/R01.mp4", "user01/G01/R01.mp4.backup", "user01/G01/R01.mp4_Zone.Identifier",
             "user05/G02/R03.mp4", "user05/G02/R04.mp4", "README.md"]
    got = corpus.select(s, paths)
    assert got == [("user01/G01/R01.mp4.backup", "user01_G01_R01.mp4", "G01", "user01"),
                   ("user05/G02/R03.mp4", "user05_G02_R03.mp4", "G02", "user05")]


def test_lsa64_subset_rule():
    s = corpus.get_set("lsa64-sub")
    paths = [f"{a:03d}_{b:03d}_{c:03d}.mp4" for a in (1, 10, 11, 64) for b in (1, 10) for c in (1, 3, 4)]
    got = corpus.select(s, paths)
    assert {(x[2], x[3]) for x in got} == {("001", "001"), ("001", "010"), ("010", "001"), ("010", "010")}
    assert len(got) == 8 and all(x[0].endswith(("_001.mp4", "_003.mp4")) for x in got)


def _two_clips(d: Path) -> list[Path]:
    """Two small real encoded clips: ud810 AVIs when ../shared is there, else H.264 made with PyAV."""
    d.mkdir(parents=True, exist_ok=True)
    if UD810.is_dir():
        out = [d / "PS7A1P1T1.avi", d / "PS7A2P2T1.avi"]
        for p in out:
            shutil.copy(UD810 / p.name, p)
        return out
    av = pytest.importorskip("av")
    out = []
    for k, name in enumerate(["PS7A1P1T1.mp4", "PS7A2P2T1.mp4"]):
        p = d / name
        with av.open(str(p), "w") as c:
            st = c.add_stream("libx264", rate=10)
            st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
            for t in range(10):
                img = np.full((48, 64, 3), (40 * t + 100 * k) % 255, np.uint8)
                for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
        out.append(p)
    return out


def _check_layout(root: Path, s, n: int):
    d = root / s.name
    with open(d / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "label", "group"] and len(rows) == n
    for r in rows:
        assert (d / r["path"]).is_file() and r["path"].startswith(f"videos/{r['label']}/")
    p = json.loads((d / "protocol.json").read_text())
    assert p["n_clips"] == n and p["protocol"] == s.protocol["protocol"] and p["spec_hash"] == s.spec_hash()
    assert p["classes"] == sorted({r["label"] for r in rows}) and p["n_groups"] == len({r["group"] for r in rows})
    assert [x["name"] for x in corpus.load_corpus(root)] == [s.name]
    assert not [q for q in root.iterdir() if q.name.startswith(".")], "temporary folders left behind"
    return rows, p


def test_layout_of_a_local_fake_source(tmp_path):
    shared = tmp_path / "shared"
    clips = _two_clips(shared / "fake")
    s = replace(corpus.get_set("ud810"), name="fake-local", source="fake", path_regex=r"PS7A\dP\dT\d\.(avi|mp4)")
    root = tmp_path / "corpus"
    lines = []
    assert corpus.build(s, root, mirror_dir=None, shared=shared, clone=False, echo=lines.append)
    rows, p = _check_layout(root, s, 2)
    assert {(r["label"], r["group"]) for r in rows} == {("A1", "1"), ("A2", "2")}
    assert p["decode"]["codecs"] and p["dropped"] == []
    # idempotent: a second build leaves it alone; a junk file is dropped with its reason on --force
    assert corpus.build(s, root, mirror_dir=None, shared=shared, clone=False, echo=lines.append)
    assert "up to date" in lines[-1]
    # a description-only change rewrites protocol.json in place, the videos stay
    p1 = corpus.build(replace(s, notes="new words"), root, mirror_dir=None, shared=shared, clone=False, echo=lines.append)
    assert p1["notes"] == "new words" and "up to date" in lines[-1]
    assert json.loads((root / s.name / "protocol.json").read_text())["notes"] == "new words"
    (shared / "fake" / "PS7A3P3T1.avi").write_bytes(b"not a video" * 10)
    p2 = corpus.build(s, root, mirror_dir=None, shared=shared, clone=False, force=True, echo=lines.append)
    assert p2["n_clips"] == 2 and [x["file"] for x in p2["dropped"]] == ["PS7A3P3T1.avi"]
    assert len(clips) == 2


def test_layout_from_a_bare_git_mirror(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    work = tmp_path / "work"
    clips = _two_clips(work / "data" / "clips")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "clips"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror / "someone+clips" / "repo")], check=True)
    s = corpus.CorpusSet(name="fake-git", kind="github", source="someone/clips", commit=commit, subdir="data/clips",
                         path_regex=r"PS7A\dP\dT\d\.\w+", label_regex=r"PS7(A\d)", group_regex=r"P(\d)",
                         protocol={"protocol": "group_kfold", "folds": 2})
    root = tmp_path / "corpus"
    p = corpus.build(s, root, mirror_dir=tmp_path / "mirror", clone=False, echo=lambda *_: None)
    assert p and p["source"] == f"github:someone/clips@{commit}"
    _check_layout(root, s, len(clips))
    # no mirror: a blob-less clone of the repository at the pinned commit (here a local "remote")
    monkeypatch.setenv("VIDCAT_CORPUS_GIT_URL", f"file://{mirror}/{{owner}}+{{name}}/repo")
    cloned = replace(s, name="fake-clone")
    p2 = corpus.build(cloned, root, mirror_dir=tmp_path / "nowhere", clone=True, echo=lambda *_: None)
    assert p2 and p2["n_clips"] == len(clips) and p2["source_read_from"].startswith("clone of file://")
    # an absent source is one skipped line, not an error
    lines = []
    gone = replace(s, name="absent", source="nobody/nothing")
    assert corpus.build(gone, root, mirror_dir=tmp_path / "mirror", clone=False, echo=lines.append) is None
    assert len(lines) == 1 and "skipped" in lines[0]


def test_laid_out_corpus_when_present():
    sets = corpus.load_corpus()
    if not sets:
        pytest.skip(f"no corpus laid out under {corpus.default_root()} (python benchmarks/corpus.py)")
    for c in sets:
        rows = corpus.read_manifest(c["manifest"])
        assert len(rows) == c["protocol"]["n_clips"] and all(p.is_file() for p, _, _ in rows[:5])
