"""The default model on real encoded clips with a planted signal in one stream: the stream that tells the
class is kept, the one that does not is left out, prediction works with a stream missing, and file names
that carry the labels change nothing."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import vidcat
from vidcat.data.synth_multimodal import parse_label

SMALL = dict(size=64, quiet=False)   # small frames keep the frozen encoder cheap in tests


@pytest.fixture(scope="module")
def av_clips(tmp_path_factory) -> Path:
    """``vidcat synth --kind av``: each clip's motion axis (h/v) and tone pitch (low/high) drawn apart."""
    from vidcat.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("av")
    generate(out, SynthConfig(kind="av", per_class=8, size=48, frames=16, seed=7), progress=False)
    return out


def relabel(root: Path, split: str, out: Path, by: str) -> Path:
    """A manifest of ``split`` labelled by the motion ``axis`` or the tone ``pitch`` alone."""
    rows = list(csv.DictReader((root / f"{split}.csv").open()))
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for r in rows:
            axis, pitch, _ = parse_label(r["label"])
            w.writerow([str(root / r["path"]), axis if by == "axis" else pitch])
    return out


def _train(manifest, out, cache, **kw):
    return vidcat.train(str(manifest), str(out), cache=str(cache), workers=0, progress=False, size=64, **kw)


def test_only_the_sound_tells_the_class_so_audio_is_kept(av_clips, tmp_path):
    train = relabel(av_clips, "train", tmp_path / "train.csv", "pitch")
    test = relabel(av_clips, "test", tmp_path / "test.csv", "pitch")
    summary = _train(train, tmp_path / "run", tmp_path / "cache")
    rec = summary["recipe"]
    assert "audio" in rec["planned"] and "audio" in rec["streams"]
    alone = {r["row"]: r["top1"] for r in rec["table"]}
    assert alone["audio alone"] >= 0.9 and alone["appearance alone"] < 0.8
    m = vidcat.evaluate(tmp_path / "run" / "best.pt", test, workers=0, progress=False)
    assert m["top1"] >= 0.9
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["expected"].startswith("expected top-1") and cfg["recipe"]["table"]


def test_only_the_motion_tells_the_class_so_motion_is_kept_and_sound_left_out(av_clips, tmp_path):
    train = relabel(av_clips, "train", tmp_path / "train.csv", "axis")
    summary = _train(train, tmp_path / "run", tmp_path / "cache")
    rec = summary["recipe"]
    assert "motion" in rec["streams"] and "audio" not in rec["streams"]
    assert not rec["heads"]["audio"]["signal"]
    m = vidcat.evaluate(tmp_path / "run" / "best.pt", relabel(av_clips, "test", tmp_path / "test.csv", "axis"),
                        workers=0, progress=False)
    assert m["top1"] >= 0.9


def test_predict_works_with_a_stream_missing(av_clips, tmp_path):
    """A model that fuses sound, asked about a clip that has no sound track: the other streams answer."""
    from vidcat.data.synth_media import mux_av
    from vidcat.io.video import read_frames

    train = relabel(av_clips, "train", tmp_path / "train.csv", "pitch")
    _train(train, tmp_path / "run", tmp_path / "cache", streams=("appearance", "audio"))
    clip = next((av_clips / "test").rglob("*.mp4"))
    silent = mux_av(tmp_path / "silent.mp4", read_frames(clip), 12)
    pred = vidcat.Predictor(tmp_path / "run" / "best.pt", topk=2)
    with_sound, without = pred(str(clip)), pred(str(silent))
    assert "error" not in without and len(without["labels"]) == 2
    assert abs(sum(without["scores"]) - 1) < 0.05 or sum(without["scores"]) <= 1
    pitch = parse_label(clip.parent.name)[1]
    assert with_sound["labels"][0] == pitch and with_sound["scores"][0] >= 0.7   # calibrated on the nested estimate
    assert without["scores"][0] < 0.6               # sound was its only stream with signal: no evidence, the prior


def test_file_names_that_carry_the_labels_change_nothing(av_clips, tmp_path):
    """The same clips, once named after their labels and once under shuffled names: the default sees the
    same features, groups and words, so it gives the same estimate, to the last digit."""
    rows = list(csv.DictReader((av_clips / "train.csv").open()))
    labels = [parse_label(r["label"])[0] for r in rows]          # the motion axis
    rng = np.random.default_rng(0)
    runs = {}
    for how in ("named", "shuffled"):
        folder = tmp_path / how
        folder.mkdir()
        names = labels if how == "named" else list(rng.permutation(labels))
        with (folder / "m.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            for i, (r, name, lab) in enumerate(zip(rows, names, labels)):
                dst = folder / f"{name}_{i:03d}.mp4"
                shutil.copy(av_clips / r["path"], dst)
                w.writerow([dst.name, lab])
        runs[how] = _train(folder / "m.csv", folder / "run", tmp_path / "cache",
                           streams=("appearance", "motion", "text"))["recipe"]
    assert runs["named"]["estimate"] == runs["shuffled"]["estimate"]
    assert runs["named"]["table"] == runs["shuffled"]["table"]
    assert "text" not in runs["named"]["streams"]
