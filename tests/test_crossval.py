"""`vidcat cv`: grouped k-fold / leave-one-group-out with groups and labels from file names; the shared
manifest writer; label_regex for flat folders (and the real ud810 clips' names)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from vidcat.cli import main
from vidcat.data.manifest import Dataset, Item, load_dataset, read_csv, regex_field, write_manifest
from vidcat.engine.crossval import assign_groups, make_folds
from vidcat.errors import VidcatError

ACTIONS = {"left": "A1", "right": "A2", "up": "A3"}


@pytest.fixture(scope="module")
def flat_ud810_like(motion_data, tmp_path_factory) -> Path:
    """A flat folder named like ud810 (``PS7A{action}P{person}T{trial}.mp4``): 3 actions x 3 persons x
    2 trials, symlinks to the synthetic motion videos (action = direction of motion)."""
    root = tmp_path_factory.mktemp("flat")
    for cls, action in ACTIONS.items():
        videos = sorted((motion_data / "train" / cls).glob("*.mp4"))
        for n, (person, trial) in enumerate((p, t) for p in (1, 2, 3) for t in (1, 2)):
            (root / f"PS7{action}P{person}T{trial}.mp4").symlink_to(videos[n])
    (root / "README.txt").write_text("not a video")
    return root


def _groups_of(csv_path: Path) -> set[str]:
    with open(csv_path) as f:
        return {re.search(r"P(\d)", Path(r["path"]).name).group(1) for r in csv.DictReader(f)}


def test_cv_leave_one_person_out_cli(flat_ud810_like, tmp_path, capsys):
    out = tmp_path / "cv"
    rc = main(["cv", "--data", str(flat_ud810_like), "--label-regex", r"PS7(A\d)", "--group-regex", r"P(\d)",
               "--logo", "--model", "tiny3d", "--epochs", "1", "--max-steps", "1", "--frames", "4", "--size", "32",
               "--batch-size", "6", "--workers", "0", "--threads", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["protocol"] == "leave-one-group-out" and printed["folds"] == 3
    cv = json.loads((out / "cv.json").read_text())
    for key in ("model", "protocol", "classes", "groups", "n_videos", "n_folds", "top1_mean", "top1_std",
                "top1_per_fold", "mean_class_acc_mean", "pooled_top1", "confusion", "folds", "train"):
        assert key in cv, key
    assert cv["classes"] == ["A1", "A2", "A3"] and cv["groups"] == {"1": 6, "2": 6, "3": 6}
    assert cv["n_videos"] == 18 and cv["n_folds"] == 3
    assert np.asarray(cv["confusion"]).shape == (3, 3) and np.asarray(cv["confusion"]).sum() == 18
    assert cv["top1_mean"] == pytest.approx(np.mean(cv["top1_per_fold"]))
    assert cv["top1_std"] == pytest.approx(np.std(cv["top1_per_fold"]))
    for k, fold in enumerate(cv["folds"], 1):
        assert set(fold) >= {"fold", "test_groups", "train_groups", "n_train", "n_test", "top1", "confusion"}
        fold_dir = out / f"fold_{k}"
        train_g, test_g = _groups_of(fold_dir / "train.csv"), _groups_of(fold_dir / "test.csv")
        assert test_g == set(fold["test_groups"]) == {str(k)}  # one person held out per fold
        assert not train_g & test_g and train_g | test_g == {"1", "2", "3"}
        assert fold["n_train"] == 12 and fold["n_test"] == 6
        assert (fold_dir / "eval.json").exists() and (fold_dir / "run" / "last.pt").exists()
    assert (out / "cv.png").stat().st_size > 0


def test_grouped_kfold_never_splits_a_group():
    classes = ["a", "b", "c"]
    items = [Item(f"/v/{c}/clip_s{s:02d}_{i}.mp4", [c]) for c in classes for s in range(8) for i in range(3)]
    ds = Dataset(items, classes)
    groups = assign_groups(ds, r"_s(\d+)_")
    assert groups[:4] == ["00", "00", "00", "01"]
    folds = make_folds(ds, groups, folds=4, seed=0)
    assert len(folds) == 4
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(len(items)))  # every video tested exactly once
    for tr, te in folds:
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
        assert len(tr) + len(te) == len(items)
    logo = make_folds(ds, groups)
    assert len(logo) == 8 and all(len(te) == 9 for _, te in logo)
    assert len(make_folds(ds, assign_groups(ds, None), folds=3)) == 3  # no regex: every video its own group


def test_cv_errors_are_one_line(flat_ud810_like, tmp_path, capsys):
    base = ["cv", "--data", str(flat_ud810_like), "--label-regex", r"PS7(A\d)", "--out", str(tmp_path / "o"), "--quiet"]
    cases = [
        (["--group-regex", r"P(\d)", "--folds", "5"], "--folds 5 but only 3 groups"),
        (["--group-regex", r"Q(\d)"], "matches neither the file name nor the path of 18 video(s)"),
        (["--group-regex", r"(A\d)"], "no training videos of class A1"),  # grouping by the label itself
        (["--group-regex", r"P(\d"], "is not a valid regular expression"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_label_regex_reads_a_flat_folder(flat_ud810_like, caplog):
    with pytest.raises(VidcatError, match="empty"):
        load_dataset(flat_ud810_like)  # no class folders
    ds = load_dataset(flat_ud810_like, label_regex=r"PS7(A\d)")
    assert ds.classes == ["A1", "A2", "A3"] and len(ds) == 18
    assert all(it.labels == [re.search(r"A\d", Path(it.path).name).group(0)] for it in ds.items)
    ds = load_dataset(flat_ud810_like, label_regex=r"P[12]")  # whole match; P3 videos are left out, in one line
    assert ds.classes == ["P1", "P2"] and len(ds) == 12
    assert "6 video(s) do not match label regex" in caplog.text
    with pytest.raises(VidcatError, match="no video matches"):
        load_dataset(flat_ud810_like, label_regex=r"nothing(\d)")
    assert regex_field(r"P(\d)", "/data/P9/PS7A1P2T3.avi") == "2"  # the file name wins over the folders
    assert regex_field(r"^P(\d)$", "/data/P9/PS7A1P2T3.avi") is None
    assert regex_field(r"/(P\d)/", "/data/P9/x.avi") == "P9"  # else the whole path


def test_ud810_names(shared_data):
    ds = load_dataset(shared_data / "ud810-actions", label_regex=r"PS7(A\d)")
    assert ds.classes == ["A1", "A2", "A3"] and len(ds) == 27
    groups = assign_groups(ds, r"P(\d)")
    assert {g: groups.count(g) for g in set(groups)} == {"1": 9, "2": 9, "3": 9}


def test_write_manifest_round_trip(tmp_path):
    rows = [{"path": "a/x.mp4", "label": "cat"}, {"path": str(tmp_path / "y.mp4"), "label": ["cat", "dog"], "group": 3}]
    path = write_manifest(tmp_path / "sub" / "m.csv", rows)
    items = read_csv(path)
    assert [it.path for it in items] == [str(tmp_path / "sub" / "a" / "x.mp4"), str(tmp_path / "y.mp4")]
    assert [it.labels for it in items] == [["cat"], ["cat", "dog"]] and items[1].meta == {"group": "3"}
    assert [p.name for p in path.parent.iterdir()] == ["m.csv"]  # written via a temp file, renamed


def test_cv_learning_curve_has_one_point_per_fraction(flat_ud810_like, tmp_path, capsys):
    """``--curve``: each fold also trains on 25/50/75 % of its training groups (6 person x trial groups,
    3 folds: 2, 2, 3 of the 4 training groups) and the pooled top-1 gets a Wilson interval per point."""
    out = tmp_path / "cv"
    rc = main(["cv", "--data", str(flat_ud810_like), "--label-regex", r"PS7(A\d)", "--group-regex", r"(P\dT\d)",
               "--folds", "3", "--curve", "--model", "tiny3d", "--epochs", "1", "--max-steps", "1", "--frames", "4",
               "--size", "32", "--batch-size", "6", "--workers", "0", "--threads", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    curve = json.loads((out / "cv.json").read_text())["learning_curve"]
    assert [p["fraction"] for p in curve] == [0.25, 0.5, 0.75, 1.0]
    assert all(p["n"] == 18 and p["folds"] == 3 and p["lo"] <= p["top1"] <= p["hi"] for p in curve)
    for pct, groups in ((25, 2), (50, 2), (75, 3)):
        for k in (1, 2, 3):
            with open(out / f"curve_{pct}" / f"fold_{k}" / "train.csv") as f:
                assert len({r["group"] for r in csv.DictReader(f)}) == groups
