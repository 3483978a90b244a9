"""`vidcat features` / extract_embeddings: penultimate embeddings, aligned with paths and labels, that a
scikit-learn classifier can be trained on; atomic .npy + .json output; unreadable files skipped in one line."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vidcat.cli import main
from vidcat.config import DataConfig
from vidcat.models.build import Checkpoint, ModelSetup
from vidcat.errors import VidcatError
from vidcat.inference.embeddings import embedding_model, extract_embeddings
from vidcat.models.registry import create_model, get_spec

SMALL = dict(frames=8, size=32)


pytestmark = pytest.mark.usefixtures("one_thread", "seeded")  # conftest


def _manifest(path: Path) -> list[tuple[str, str]]:
    with open(path) as f:
        return [(str((path.parent / r["path"]).resolve()), r["label"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("name,shape,dim", [("tiny3d", (2, 3, 4, 32, 32), 128), ("tsn", (2, 3, 2, 32, 32), 512),
                                            ("s3d", (1, 3, 8, 32, 32), 1024)])  # Linear / per-frame / Conv3d heads
def test_embedding_model_drops_the_head_only(name, shape, dim):
    model = create_model(name, 3).eval()
    emb = embedding_model(model)
    x = torch.randn(*shape)
    with torch.no_grad():
        f = emb(x)
        assert f.shape == (shape[0], dim) and torch.isfinite(f).all()
        assert model(x).shape == (shape[0], 3)  # the caller's model still has its classifier


def test_features_train_a_sklearn_classifier(motion_data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = create_model("tiny3d", 4)  # random init: its 3D filters still respond to motion direction
    x_tr, p_tr, y_tr = extract_embeddings(model, motion_data / "train.csv", **SMALL, batch_size=16)
    x_te, p_te, y_te = extract_embeddings(model, motion_data / "test.csv", **SMALL, batch_size=16)
    rows_tr, rows_te = _manifest(motion_data / "train.csv"), _manifest(motion_data / "test.csv")
    assert x_tr.shape == (len(rows_tr), 128) and x_te.shape == (len(rows_te), 128)
    assert x_tr.dtype == np.float32 and np.isfinite(x_tr).all()
    assert [str(Path(p).resolve()) for p in p_tr] == [p for p, _ in rows_tr]  # rows align with the manifest
    assert y_tr == [lab for _, lab in rows_tr] and y_te == [lab for _, lab in rows_te]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_tr, y_tr)
    assert clf.score(x_tr, y_tr) > 0.5
    test_acc = clf.score(x_te, y_te)
    assert 0.0 <= test_acc <= 1.0


def test_checkpoint_name_and_module_give_the_same_features(motion_data, tmp_path):
    model = create_model("tiny3d", 4).eval()
    data = DataConfig(**SMALL).resolved(get_spec("tiny3d"))
    ckpt = tmp_path / "best.pt"
    Checkpoint(ModelSetup("tiny3d", {}, data, ["down", "left", "right", "up"]), model.state_dict()).save(ckpt)
    files = sorted((motion_data / "test" / "left").glob("*.mp4"))[:3]
    a, pa, la = extract_embeddings(model, files, **SMALL)
    b, pb, lb = extract_embeddings(ckpt, files)  # frames/size come from the checkpoint
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert pa == pb == [str(f) for f in files] and la == lb == [None] * 3  # a list of files has no labels
    per_clip, _, _ = extract_embeddings(ckpt, files, clips=3, per_clip=True)
    assert per_clip.shape == (3, 3, 128)
    assert not np.allclose(per_clip[:, 0], per_clip[:, 2])  # three different positions in the video


def test_cli_writes_npy_json_and_skips_bad_files(motion_data, bad_files, tmp_path, capsys):
    src = tmp_path / "videos"
    (src / "left").mkdir(parents=True)
    (src / "up").mkdir()
    for cls in ("left", "up"):
        for f in sorted((motion_data / "val" / cls).glob("*.mp4"))[:2]:
            shutil.copy(f, src / cls / f.name)
    shutil.copy(bad_files["truncated"], src / "up" / "broken.mp4")
    out = tmp_path / "emb" / "feats.npy"
    rc = main(["features", str(src), "--model", "tiny3d", "--frames", "8", "--size", "32", "--out", str(out),
               "--per-clip", "--clips", "2", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert summary["n"] == 4 and summary["dim"] == 128 and summary["skipped"] == 1
    assert sum("broken.mp4" in line for line in cap.err.splitlines()) == 1  # one line for the bad file
    side = json.loads(out.with_suffix(".json").read_text())
    assert np.load(out).shape == (4, 128) and np.load(out.with_suffix(".clips.npy")).shape == (4, 2, 128)
    np.testing.assert_allclose(np.load(out), np.load(out.with_suffix(".clips.npy")).mean(1), rtol=1e-5, atol=1e-6)
    assert [Path(p).parent.name for p in side["paths"]] == side["labels"] == ["left", "left", "up", "up"]
    assert side["clips"] == 2 and list(side["skipped"]) == [str(src / "up" / "broken.mp4")]
    assert sorted(p.name for p in out.parent.iterdir()) == ["feats.clips.npy", "feats.json", "feats.npy"]  # no temp files

    rc = main(["features", str(src), "--model", "tiny3d", "--frames", "8", "--size", "32", "--out",
               str(tmp_path / "strict.npy"), "--strict", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "broken.mp4" in err and "Traceback" not in err
    assert not (tmp_path / "strict.npy").exists()


def test_parquet_output(motion_data, tmp_path, capsys):
    files = [str(f) for f in sorted((motion_data / "val" / "right").glob("*.mp4"))[:2]]
    out = tmp_path / "feats.parquet"
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        rc = main(["features", files[0], "--model", "tiny3d", "--frames", "4", "--size", "32", "--out", str(out), "--quiet"])
        assert rc == 2 and "pip install pyarrow" in capsys.readouterr().err and not out.exists()
        return
    arr, paths, _ = extract_embeddings("tiny3d", files, frames=4, size=32)
    from vidcat.inference.embeddings import write_embeddings
    write_embeddings(out, arr, paths, ["right", "right"])
    table = pq.read_table(out)
    assert table.column("path").to_pylist() == paths
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), arr, rtol=1e-6)


def test_features_errors(tmp_path):
    with pytest.raises(VidcatError, match="no such file"):
        extract_embeddings("tiny3d", tmp_path / "missing")
    with pytest.raises(VidcatError, match="unknown model 'nope'"):
        extract_embeddings("nope", tmp_path)
    with pytest.raises(VidcatError, match="no videos found"):
        extract_embeddings("tiny3d", tmp_path)
