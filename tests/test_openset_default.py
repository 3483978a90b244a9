"""Knowing what it does not know, end to end on real encoded clips with planted structure: the default model
trained on three motion directions flags clips of the fourth ``unknown`` (predict, serve, batch actor,
timeline), a target changes the threshold without retraining, ``eval --unknown`` measures it, ``suggest``
puts the clips of the new direction first in a CSV that trains, and ``cluster`` finds two kinds of clips."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import vidcat
from vidcat.cli import main
from vidcat.config import OpenSet
from vidcat.data.manifest import load_dataset

KNOWN, HELD_OUT = ("left", "right", "up"), "down"


def _manifest(root: Path, splits, keep, out: Path) -> Path:
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for split in splits:
            for r in csv.DictReader((root / f"{split}.csv").open()):
                if r["label"] in keep:
                    w.writerow([str(root / r["path"]), r["label"]])
    return out


@pytest.fixture(scope="module")
def directions(tmp_path_factory, synth) -> Path:
    """``vidcat synth`` motion clips (64 px, 16 frames; 8 train, 2 val, 2 test per direction; ``data``) and the
    default model trained on the training clips of three directions (appearance + motion streams; ``run``)."""
    root = tmp_path_factory.mktemp("openset")
    (root / "data").symlink_to(synth(per_class=8, size=64, frames=16, seed=3), target_is_directory=True)
    train = _manifest(root / "data", ["train"], KNOWN, root / "known_train.csv")
    _manifest(root / "data", ["val", "test"], KNOWN, root / "known_test.csv")
    vidcat.train(str(train), str(root / "run"), cache=str(root / "cache"), workers=0, progress=False, size=64,
                 streams=("appearance", "motion"))
    return root


def _held_out_clips(root: Path) -> list[Path]:
    return sorted((root / "data").rglob(f"{HELD_OUT}/*.mp4"))        # every split: none was trained on


def _known_clips(root: Path) -> list[Path]:
    return [p for s in ("val", "test") for c in KNOWN for p in sorted((root / "data" / s / c).glob("*.mp4"))]


def _predict(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", *map(str, args)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_held_out_direction_is_flagged_and_the_known_ones_mostly_not(directions, capsys):
    ckpt = directions / "run" / "best.pt"
    unknown = _predict(capsys, "--checkpoint", ckpt, *_held_out_clips(directions))
    known = _predict(capsys, "--checkpoint", ckpt, *_known_clips(directions))
    assert len(unknown) == 12 and len(known) == 12
    assert sum(r["unknown"] for r in unknown) >= 10, [r["unknown_score"] for r in unknown]
    assert sum(r["unknown"] for r in known) <= 3, [r["unknown_score"] for r in known]
    flagged = next(r for r in unknown if r["unknown"])
    assert flagged["labels"][0] == "unknown" and set(flagged["labels"][1:]) == set(KNOWN)
    assert flagged["scores"][0] == pytest.approx(1 - flagged["scores"][1], abs=1e-6)
    kept = next(r for r in known if not r["unknown"])
    assert kept["labels"][0] in KNOWN and kept["unknown_score"] <= min(r["unknown_score"] for r in unknown if r["unknown"])
    # the linear head extrapolates: the new direction gets a confident known label, only a distance sees it
    rule = json.loads((directions / "run" / "config.json").read_text())["recipe"]["open_set"]
    auroc = rule["evidence"]["held_out_class"]["auroc"]
    assert rule["family"] in ("mahalanobis", "cosine") and auroc[rule["family"]] >= 0.85 > auroc["msp"]
    assert rule["how"] == "default" and rule["target"] == "coverage 0.95"


def test_a_target_moves_the_threshold_without_retraining(directions, capsys):
    from vidcat.inference.predictor import Predictor

    ckpt = directions / "run" / "best.pt"
    default = Predictor(ckpt).unknown_rule
    strict = Predictor(ckpt, open_set=OpenSet(min_precision=0.9)).unknown_rule
    half = Predictor(ckpt, open_set=OpenSet(coverage=0.5)).unknown_rule
    assert default.target == "coverage 0.95" and strict.target.startswith("min_precision 0.9")
    assert half.threshold < default.threshold and half.coverage <= 0.5
    assert strict.threshold != default.threshold and strict.precision >= 0.9
    known = _known_clips(directions)[:6]
    loose = _predict(capsys, "--checkpoint", ckpt, *known)
    tight = _predict(capsys, "--checkpoint", ckpt, "--coverage", "0.5", *known)
    assert sum(r["unknown"] for r in tight) >= sum(r["unknown"] for r in loose)
    assert [r["unknown_score"] for r in tight] == [r["unknown_score"] for r in loose]
    off = _predict(capsys, "--checkpoint", ckpt, "--no-unknown", *known[:2])
    assert all("unknown" not in r and r["labels"][0] in KNOWN for r in off)


def test_eval_reports_open_set_metrics(directions, capsys):
    out = directions / "eval.json"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(directions / "run" / "best.pt"), "--data",
                 str(directions / "known_test.csv"), "--unknown", str(directions / "data" / "train" / HELD_OUT),
                 "--workers", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    m = json.loads(out.read_text())["open_set"]
    assert m["known_clips"] == 12 and m["unknown_clips"] == 8
    assert m["auroc"] >= 0.9 and m["unknown_flagged"] >= 0.75 and m["coverage"] >= 0.7
    assert 0 <= m["precision"] <= 1 and m["target"] == "coverage 0.95"
    assert f"open set: AUROC {m['auroc']:.3f} (12 known vs 8 unknown clips" in printed


def test_serve_batch_and_timeline_answer_unknown_too(directions):
    from fastapi.testclient import TestClient

    from vidcat.inference.batch import ModelActor, decode, model_spec
    from vidcat.inference.predictor import Predictor
    from vidcat.inference.server import create_app
    from vidcat.inference.timeline import timeline

    ckpt, clip, known = directions / "run" / "best.pt", _held_out_clips(directions)[0], _known_clips(directions)[0]
    want = Predictor(ckpt, topk=2)(clip)
    assert want["unknown"]
    client = TestClient(create_app(Predictor(ckpt, topk=2)))
    got = client.post("/predict?topk=1", files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")}).json()
    assert got["unknown"] and got["labels"] == want["labels"][:2] and got["unknown_score"] == want["unknown_score"]
    spec = model_spec(str(ckpt))
    rows = [decode({"index": i, "path": str(p), "text": ""}, spec, 1, 1) for i, p in enumerate((clip, known))]
    actor = ModelActor(str(ckpt), topk=2)
    records = [json.loads(r) for r in actor({k: [r[k] for r in rows] for k in rows[0]})["record"]]
    assert [r["unknown"] for r in records] == [True, False]
    assert records[0]["unknown_score"] == pytest.approx(want["unknown_score"], rel=1e-4)
    t = timeline(str(ckpt), clip, window=1.0, stride=0.5)
    assert t["unknown"] and all(t["unknown"]) and set(t["answer"]) == {"unknown"} and t["video_label"]["unknown"]
    assert set(t["top"]) <= set(KNOWN)                 # the most probable class stays beside the answer


def test_suggest_puts_the_new_direction_first_and_its_csv_trains(directions, capsys):
    """The pool (val + test clips of all four directions, labels dropped) holds 4 clips of the new direction;
    the suggestions train a model whose threshold the background clips (the new direction's training clips)
    set."""
    pool = _manifest(directions / "data", ["val", "test"], KNOWN + (HELD_OUT,), directions / "pool.csv")
    out = directions / "next.csv"
    capsys.readouterr()
    assert main(["suggest", "--checkpoint", str(directions / "run" / "best.pt"), "--pool", str(pool), "-n", "12",
                 "--out", str(out), "--cache", str(directions / "cache"), "--workers", "0", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["suggested"] == 12 and summary["scored"] == 16 and summary["flagged_unknown"] >= 3
    rows = list(csv.DictReader(out.open()))
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 13)]
    assert f"/{HELD_OUT}/" in rows[0]["path"] and rows[0]["reason"].startswith("flagged unknown")
    assert sum(f"/{HELD_OUT}/" in r["path"] for r in rows[:4]) >= 3
    assert {r["label"] for r in rows} <= set(KNOWN) and all(0 < float(r["confidence"]) <= 1 for r in rows)
    run = directions / "from_suggestions"
    vidcat.train(str(out), str(run), cache=str(directions / "cache"), workers=0, progress=False, size=64,
                 streams=("appearance", "motion"), background=str(directions / "data" / "train" / HELD_OUT))
    rule = json.loads((run / "config.json").read_text())["recipe"]["open_set"]
    assert rule["how"] == "Youden's J on 8 background clips" and rule["background_clips"] == 8
    assert rule["threshold"]["negatives_accepted"] is not None


def test_cluster_finds_two_kinds_of_clips(tmp_path, capsys):
    from sklearn.metrics import adjusted_rand_score

    from vidcat.data.synth_media import mux_av
    from vidcat.data.synth_video import render_motion
    from vidcat.data.synthetic import SynthConfig

    rng, cfg = np.random.default_rng(0), SynthConfig(size=64, frames=16)
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(8):          # textured scenes with a moving object, and flat colour with a sweeping bar
        mux_av(folder / f"texture_{i}.mp4", render_motion(rng, ("left", "right", "up", "down")[i % 4], cfg), 12)
        flat = np.tile(rng.integers(60, 200, 3).astype(np.uint8), (cfg.frames, 64, 64, 1))
        for t in range(cfg.frames):
            flat[t, :, 4 * t % 60:4 * t % 60 + 6] //= 2
        mux_av(folder / f"flat_{i}.mp4", flat, 12)
    capsys.readouterr()
    assert main(["cluster", str(folder), "--out", str(tmp_path / "out"), "--size", "64", "--cache",
                 str(tmp_path / "cache"), "--workers", "0", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader((tmp_path / "out" / "clusters.csv").open()))
    truth = ["flat" in r["path"] for r in rows]
    assert summary["k"] == 2 and adjusted_rand_score(truth, [r["label"] for r in rows]) == 1.0
    assert summary["sizes"] == {"cluster_00": 8, "cluster_01": 8}
    from PIL import Image

    sheet = np.asarray(Image.open(tmp_path / "out" / "clusters.png").convert("RGB"))
    from vidcat.featurefit.clusters import BACKGROUND, LABEL_WIDTH

    inked = (np.abs(sheet[:, LABEL_WIDTH:].astype(int) - BACKGROUND) > 24).any(axis=(1, 2))
    assert np.count_nonzero(np.diff(np.r_[0, inked.astype(int), 0]) == 1) == 2      # one strip per cluster
    page = (tmp_path / "out" / "clusters.html").read_text()
    assert page.count("<h2>") == 2 and "flat_0.mp4" in page
    assert load_dataset(tmp_path / "out" / "clusters.csv").classes == ["cluster_00", "cluster_01"]


@pytest.mark.parametrize("argv,message", [
    (["predict", "--checkpoint", "c.pt", "--coverage", "1.5", "x.mp4"], "--coverage must be <= 1.0, not 1.5"),
    (["predict", "--checkpoint", "c.pt", "--min-precision", "0", "x.mp4"], "--min-precision must be > 0.0, not 0.0"),
    (["train", "--data", "d", "--out", "o", "--background", "nowhere/"], "--background nowhere/: no such file or folder"),
    (["suggest", "--checkpoint", "c.pt", "--pool", "p", "-n", "0"], "-n must be >= 1, not 0"),
    (["suggest", "--checkpoint", "c.pt", "--pool", "p", "--out", "x.txt"], "--out must be a .csv file, not 'x.txt'"),
    (["cluster", "d", "--out", "o", "--k-min", "4", "--k-max", "3"], "--k-max must be >= --k-min (4), not 3"),
    (["cluster", "d", "--out", "o", "--streams", "pose"], "--streams must be one of appearance, motion, not 'pose'"),
])
def test_option_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"vidcat: error: {message}"]


def test_a_model_without_a_rule_says_so(tiny_ckpt, capsys, tmp_path):
    ckpt, clips = tiny_ckpt
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(clips[0].parents[2] / "test.csv"),
                 "--unknown", str(clips[0].parent), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vidcat: error: --unknown: {ckpt} carries no 'unknown' rule (the default model learns one when "
                   "it is trained; tiny3d does not)"]
    assert main(["train", "--data", str(clips[0].parents[2] / "train.csv"), "--out", str(tmp_path / "r"), "--model",
                 "tiny3d", "--coverage", "0.9"]) == 2
    assert capsys.readouterr().err.strip() == ("vidcat: error: --coverage: only the default model (streams) learns "
                                               "an 'unknown' rule, not tiny3d")
    rec = vidcat.Predictor(ckpt)(clips[0])
    assert "unknown" not in rec and "unknown_score" not in rec


@pytest.mark.parametrize("n,d", [(40, 3000), (300, 40), (25, 25)])
def test_ledoit_wolf_shrinkage_from_the_gram_matrix_is_scikit_learns(n, d):
    from sklearn.covariance import ledoit_wolf_shrinkage as reference

    from vidcat.featurefit.openset import ledoit_wolf_shrinkage

    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) * rng.gamma(1.0, 1.0, size=d)    # uneven variances: a real shrinkage
    x[:, :3] *= 1e-3
    assert np.isclose(ledoit_wolf_shrinkage(x), reference(x, assume_centered=True), rtol=1e-10, atol=1e-14)
    assert ledoit_wolf_shrinkage(np.zeros((5, 7))) == 0.0
