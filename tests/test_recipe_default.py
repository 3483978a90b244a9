"""`vidcat train` without --model on video: the pretrained frame_head recipe, fitted on cached features,
saved as an ordinary checkpoint that eval / predict read like any other (or tiny3d when weights are missing)."""
from __future__ import annotations

import json

import pytest

import vidcat
from vidcat.cli import main
from vidcat.models.build import Checkpoint, choose_model, recipe_available


@pytest.fixture(scope="module")
def recipe_run(motion_data, tmp_path_factory):
    if recipe_available() is not None:
        pytest.skip(f"recipe unavailable: {recipe_available()}")
    out = tmp_path_factory.mktemp("recipe")
    subset = out / "train.csv"
    lines = (motion_data / "train.csv").read_text().splitlines()
    subset.write_text("\n".join([lines[0]] + [ln.replace("train/", f"{motion_data}/train/") for ln in lines[1::3]]))
    assert main(["train", "--data", str(subset), "--val", str(motion_data / "val.csv"), "--out", str(out / "run"),
                 "--threads", "1", "--workers", "0"]) == 0
    return out / "run"


def test_default_is_the_recipe_and_its_checkpoint_is_ordinary(recipe_run, motion_data, capsys):
    summary = json.loads((recipe_run / "config.json").read_text())
    assert summary["model"] == "frame_head" and summary["model_kwargs"]["backbone"] == "efficientnet_lite0"
    ck = Checkpoint.load(recipe_run / "best.pt")
    assert ck.data.mean == (0.5, 0.5, 0.5) and ck.data.sampler == "tsn" and ck.data.short_side == ck.data.size
    res = vidcat.evaluate(recipe_run / "best.pt", motion_data / "test.csv", workers=0, progress=False)
    # direction of motion with random appearance: order-free pooling sits near 0.25-0.5; the recipe's
    # temporal head must see frame order
    assert res["top1"] >= 0.7, res["top1"]
    assert abs(summary["history"][0]["val_top1"] - vidcat.evaluate(
        recipe_run / "best.pt", motion_data / "val.csv", workers=0, progress=False)["top1"]) <= 0.1
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(recipe_run / "best.pt"), str(motion_data / "test" / "up")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6


def test_without_weights_the_default_falls_back_to_tiny3d(monkeypatch):
    import vidcat.models.build as build

    monkeypatch.setattr(build, "recipe_available", lambda: "no efficientnet_lite0 weights")
    assert choose_model(None, ("video",)) == "tiny3d"
    monkeypatch.undo()
    assert choose_model(None, ("video",), multilabel=True) == "tiny3d"
