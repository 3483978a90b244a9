"""`vidcat train` without --model on video: the pretrained frame_head recipe, fitted on cached features,
saved as an ordinary checkpoint that eval / predict read like any other (or tiny3d when weights are missing)."""
from __future__ import annotations

import json

import pytest

import vidcat
from vidcat.cli import main
from vidcat.models.build import Checkpoint, choose_model, recipe_available
from vidcat.transfer.select import CANDIDATES


@pytest.fixture(scope="module")
def recipe_run(motion_data, tmp_path_factory):
    if recipe_available() is not None:
        pytest.skip(f"recipe unavailable: {recipe_available()}")
    out = tmp_path_factory.mktemp("recipe")
    subset = out / "train.csv"
    lines = (motion_data / "train.csv").read_text().splitlines()
    rows = [ln.replace("train/", f"{motion_data}/train/") for ln in lines[1::3]]
    (out / "broken.mp4").write_text("not a video")
    subset.write_text("\n".join([lines[0]] + rows + [f"{out / 'broken.mp4'},left"]))
    assert main(["train", "--data", str(subset), "--val", str(motion_data / "val.csv"), "--out", str(out / "run"),
                 "--size", "112", "--cache", str(out / "cache")]) == 0
    return out / "run"


def test_default_is_the_recipe_and_its_checkpoint_is_ordinary(recipe_run, motion_data, capsys):
    summary = json.loads((recipe_run / "config.json").read_text())
    assert summary["model"] == "frame_head" and summary["model_kwargs"]["backbone"] == "efficientnet_lite0"
    ck = Checkpoint.load(recipe_run / "best.pt")
    assert ck.data.mean == (0.5, 0.5, 0.5) and ck.data.sampler == "tsn" and ck.data.short_side == ck.data.size
    res = vidcat.evaluate(recipe_run / "best.pt", motion_data / "test.csv", workers=0, progress=False)
    # direction of motion with random appearance: order-free pooling sits near 0.25-0.5; the selected
    # head must see frame order
    assert res["top1"] >= 0.7, res["top1"]
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(recipe_run / "best.pt"), str(motion_data / "test" / "up")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6


def test_config_carries_the_selection_table_the_estimate_and_the_skipped_file(recipe_run):
    summary = json.loads((recipe_run / "config.json").read_text())
    rec = summary["recipe"]
    assert len(rec["table"]) == len(CANDIDATES) and rec["best"] in {r["candidate"] for r in rec["table"]}
    assert summary["model_kwargs"]["pool"] == rec["best_args"]["pool"]
    est = rec["estimate"]
    assert est["lo"] <= est["top1"] <= est["hi"] and summary["best_score"] == est["top1"]
    assert summary["expected"].startswith("expected top-1 ") and "grouped CV" in summary["expected"]
    assert [p["fraction"] for p in rec["learning_curve"]] == [0.25, 0.5, 0.75, 1.0]
    assert rec["groups"] == "auto" and rec["val_top1"] is not None
    (broken,) = summary["skipped_files"]
    assert broken.endswith("broken.mp4") and summary["skipped_files"][broken]


def test_without_weights_the_default_falls_back_to_tiny3d(monkeypatch):
    import vidcat.models.build as build

    monkeypatch.setattr(build, "recipe_available", lambda: "no efficientnet_lite0 weights")
    assert choose_model(None, ("video",)) == "tiny3d"
    monkeypatch.undo()
    assert choose_model(None, ("video",), multilabel=True) == "tiny3d"
