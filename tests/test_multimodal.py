"""Multi-modal benchmarks (`synth --kind av|avt`), the audio/text loaders, the `fusion` model,
unimodal baselines through the trainer and `vidcat eval --ablate`. Small data: the whole file < 60 s."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidcat.cli import main
from vidcat.config import DataConfig
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import load_dataset
from vidcat.data.synth_multimodal import KEYWORDS, PITCH, classes_for
from vidcat.data.synthetic import SynthConfig, generate
from vidcat.io.audio import load_audio, mel_frames
from vidcat.io.text import read_embedded_subtitles, read_subtitles, sidecar_files
from vidcat.io.video import VideoReader
from vidcat.models.registry import create_model, get_spec

SMALL = dict(frames=8, size=32)  # clip shape for the trainings here: a few seconds each


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread (conftest)


def rows(root: Path, split: str) -> list[dict]:
    with open(root / f"{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


def peak_hz(x: np.ndarray, sr: int = 16000) -> float:
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(np.abs(np.fft.rfft(x)))])


@pytest.fixture(scope="module")
def av(tmp_path_factory) -> Path:
    """`av`: 4 classes x (4 train + 2 val + 2 test) videos, 30% of them without audio."""
    out = tmp_path_factory.mktemp("av")
    generate(out, SynthConfig(kind="av", per_class=4, seed=3, missing_audio=0.3), progress=False)
    return out


@pytest.fixture(scope="module")
def avt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("avt")
    generate(out, SynthConfig(kind="avt", per_class=2, seed=4, missing_text=0.3), progress=False)
    return out


def test_classes():
    assert classes_for(SynthConfig(kind="av")) == ["h_low", "h_high", "v_low", "v_high"]
    avt_classes = classes_for(SynthConfig(kind="avt"))
    assert len(avt_classes) == len(set(avt_classes)) == 8 and "v_high_tool" in avt_classes


def test_av_files_hold_the_tone_of_their_class(av):
    seen = {"1": 0, "0": 0}
    for split in ("train", "test"):
        for r in rows(av, split):
            clip = load_audio(av / r["path"])
            seen[r["audio"]] += 1
            assert clip.present == (r["audio"] == "1"), r
            if clip.present:
                lo, hi = PITCH[r["label"].split("_")[1]]
                assert clip.duration == pytest.approx(2.0, abs=0.05)
                assert lo - 15 <= peak_hz(clip.waveform) <= hi + 15, r
            assert r["subtitles"] == "none" and not read_subtitles(av / r["path"])
    assert seen["0"] and seen["1"]  # both kinds of file exist
    with VideoReader(av / rows(av, "train")[0]["path"]) as reader:
        assert reader.info.num_frames == 24


def test_avt_subtitles_carry_a_keyword_of_the_class_group(avt):
    modes = set()
    for r in rows(avt, "train") + rows(avt, "val"):
        path = avt / r["path"]
        cues = read_subtitles(path)
        modes.add(r["subtitles"])
        if r["subtitles"] == "none":
            assert not cues and not sidecar_files(path)
            continue
        assert r["subtitles"] != "srt" or (sidecar_files(path) and not read_embedded_subtitles(path))
        assert r["subtitles"] != "embedded" or (not sidecar_files(path) and read_embedded_subtitles(path))
        group = r["label"].split("_")[2]
        other = next(g for g in KEYWORDS if g != group)
        assert cues[0].start == 0 and cues[-1].end == pytest.approx(2.0, abs=0.01)
        for c in cues:  # every cue: one keyword of the class's group among filler words
            words = c.text.split()
            assert sum(w in KEYWORDS[group] for w in words) == 1 and not set(words) & set(KEYWORDS[other])
        assert load_audio(path).present
    assert modes == {"none", "srt", "embedded"}


def test_missing_fractions_keep_the_content(tmp_path):
    full, holes = tmp_path / "full", tmp_path / "holes"
    generate(full, SynthConfig(kind="avt", per_class=2, seed=5), progress=False)
    generate(holes, SynthConfig(kind="avt", per_class=2, seed=5, missing_audio=0.5, missing_text=1.0), progress=False)
    r_full, r_holes = rows(full, "train"), rows(holes, "train")
    assert all(r["audio"] == "1" and r["subtitles"] != "none" for r in r_full)
    assert all(r["subtitles"] == "none" for r in r_holes)
    assert 0 < sum(r["audio"] == "0" for r in r_holes) < len(r_holes)
    # the same seed draws the same videos: only the dropped streams differ
    a, b = r_full[0]["path"], r_holes[0]["path"]
    with VideoReader(full / a) as ra, VideoReader(holes / b) as rb:
        fa, fb = ra.frames(list(range(24))), rb.frames(list(range(24)))
    assert np.array_equal(fa, fb)


def test_the_same_config_writes_the_same_bytes(tmp_path):
    """Tests compare what is learnt from a synthetic set, so it must be byte-identical on every run. On frames
    this small x264's macroblock-tree lookahead read uninitialised memory: two processes whose fresh memory
    holds different bytes (glibc's MALLOC_PERTURB_) wrote different files from the same frames."""
    import os
    import subprocess
    import sys

    code = ("import sys; from vidcat.data.synthetic import SynthConfig, generate; "
            "generate(sys.argv[1], SynthConfig(kind='av', per_class=8, size=48, frames=16, seed=7), progress=False)")
    for fill in ("1", "200"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / fill)], check=True,
                       env={**os.environ, "MALLOC_PERTURB_": fill})
    first, second = tmp_path / "1", tmp_path / "200"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".mp4"]) == 48
    assert [f for f in files if (first / f).read_bytes() != (second / f).read_bytes()] == []


def test_loaders_masks_and_shapes(av, avt):
    ds = load_dataset(av / "train.csv")
    items = {r["audio"]: i for i, r in enumerate(rows(av, "train"))}
    clips = VideoClips(ds, DataConfig(modalities=("video", "audio", "text"), **SMALL), train=False)
    with_audio, without = clips[items["1"]], clips[items["0"]]
    assert with_audio["audio"].shape == without["audio"].shape == (1, 64, 101)
    assert with_audio["audio_mask"] == 1.0 and without["audio_mask"] == 0.0  # no track: mask 0, no error
    assert torch.allclose(without["audio"], torch.tensor(np.log(1e-6), dtype=torch.float32), atol=1e-4)  # the log-mel of silence
    assert with_audio["text"] == "" and with_audio["text_mask"] == 0.0  # av has no subtitles
    batch = collate([with_audio, without])
    assert batch["audio"].shape == (2, 1, 64, 101) and batch["audio_mask"].tolist() == [1.0, 0.0]

    # fixed audio window centred on the clip; text from subtitles in the clip's span
    ds = load_dataset(avt / "train.csv")
    clips = VideoClips(ds, DataConfig(modalities=("audio", "text"), audio_seconds=0.5, n_mels=32, **SMALL))
    for i, r in enumerate(rows(avt, "train")):
        s = clips[i]
        assert s["audio"].shape == (1, 32, mel_frames(0.5)) and s["audio_mask"] == 1.0
        assert s["text_mask"] == float(r["subtitles"] != "none")
        if r["subtitles"] != "none":
            assert any(k in s["text"].split() for k in KEYWORDS[r["label"].split("_")[2]])


def test_manifest_text_column_feeds_the_text_modality(av, tmp_path):
    r = rows(av, "test")[0]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label,text\n{av / r['path']},{r['label']},a narrated caption\n")
    s = VideoClips(load_dataset(manifest), DataConfig(modalities=("text",), **SMALL))[0]
    assert s["text"] == "a narrated caption" and s["text_mask"] == 1.0


def test_model_input_defaults_and_fusion_registry():
    assert DataConfig().resolved(get_spec("audio_cnn")).modalities == ("audio",)
    text = DataConfig().resolved(get_spec("text_hash"))
    assert text.modalities == ("text",) and text.size == 64 and text.frames == 16  # clip defaults, not (0, 1)
    assert DataConfig().resolved(get_spec("tiny3d")).modalities == ("video",)
    spec = get_spec("fusion")
    assert spec.modality == "multi" and (spec.frames, spec.stride, spec.size) == (8, 2, 32)
    assert DataConfig().resolved(spec).modalities == ("video", "audio")
    assert DataConfig(modalities=("video", "text")).resolved(spec).modalities == ("video", "text")
    model = create_model("fusion", 3, modalities=["rgb", "flow", "text"], fusion="late")
    assert model.names == ["video", "flow", "text"] and model.fusion == "late"
    assert model.streams["text"].vectorizer.ngram_range == (1, 1)  # no filler bigrams to memorise
    conv = lambda m, s: next(x for x in m.streams[s].modules() if isinstance(x, torch.nn.Conv3d))  # noqa: E731
    assert conv(model, "flow").in_channels == 2
    model = create_model("fusion", 3, modalities=["video", "mv"], flow_length=2)
    assert conv(model, "mv").in_channels == 4
    assert conv(model, "video").in_channels == 6  # RGB + its frame differences (the fusion default)
    from vidcat.errors import VidcatError
    with pytest.raises(VidcatError):
        create_model("fusion", 3, modalities=["smell"])


def test_fusion_loss_falls_on_av(av):
    """A few steps on one batch of real av clips: the fused loss falls (the pipeline trains)."""
    torch.manual_seed(0)
    ds = load_dataset(av / "train.csv")
    clips = VideoClips(ds, DataConfig(modalities=("video", "audio"), **SMALL), train=True)
    batch = collate([clips[i] for i in range(len(clips))])
    model = create_model("fusion", len(ds.classes), modalities=["video", "audio"])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    inputs = {k: v for k, v in batch.items() if k in ("video", "audio", "audio_mask")}
    losses = []
    for _ in range(8):
        out = model(inputs)
        loss = torch.nn.functional.cross_entropy(out["logits"], batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(out["stream_logits"]) == {"video", "audio"}
    assert losses[-1] < 0.7 * losses[0], losses


def test_train_fusion_then_eval_ablate(av, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(av), "--model", "fusion", "--modalities", "video,audio",
                 "--model-arg", "fusion=gated", "--out", str(run), "--epochs", "1", "--batch-size", "8",
                 "--frames", "8", "--size", "32", "--workers", "0", "--quiet"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model_kwargs"]["modalities"] == ["video", "audio"] and cfg["model_kwargs"]["fusion"] == "gated"
    capsys.readouterr()
    out_json = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(av / "test.csv"), "--ablate",
                 "--json", str(out_json), "--workers", "0", "--quiet"]) == 0
    table = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    assert set(result["streams"]) == set(result["without"]) == {"video", "audio"}
    assert all(0 <= v <= 1 for v in [*result["streams"].values(), *result["without"].values()])
    assert "fused without" in table and "fused (all)" in table
    # one named modality; a unknown one and a single-stream model are user errors (exit 2)
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(av / "test.csv"),
                 "--ablate", "audio", "--json", str(out_json), "--workers", "0", "--quiet"]) == 0
    assert list(json.loads(out_json.read_text())["without"]) == ["audio"]
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(av / "test.csv"),
                 "--ablate", "text", "--workers", "0", "--quiet"]) == 2


@pytest.mark.parametrize("model,modality", [("audio_cnn", "audio"), ("text_hash", "text")])
def test_unimodal_baselines_train_without_modalities_flag(avt, tmp_path, model, modality):
    run = tmp_path / model
    assert main(["train", "--data", str(avt), "--model", model, "--out", str(run), "--epochs", "1",
                 "--max-steps", "2", "--batch-size", "8", "--workers", "0", "--quiet"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["modalities"] == [modality]
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(avt / "test.csv"),
                 "--ablate", "--workers", "0", "--quiet"]) == 2  # nothing to ablate in a single stream
