"""End to end on real encoded videos: train a few epochs, resume, evaluate, predict, bad input."""
import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch

import vidcat
from vidcat.cli import main
from vidcat.models.build import Checkpoint


@pytest.fixture(scope="module")
def trained(motion_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = vidcat.train(data=motion_data / "train.csv", out=out, model="tiny3d", epochs=4, batch_size=8,
                           workers=0, progress=False, lr=3e-3)
    return out, summary


def test_training_learns_and_writes_its_files(trained):
    out, summary = trained
    hist = summary["history"]
    assert len(hist) == 4 and hist[-1]["train_loss"] < 0.9 * hist[0]["train_loss"]
    for name in ("best.pt", "last.pt", "history.csv", "curves.png", "config.json"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*tmp*")), "temp files left behind"
    ck = Checkpoint.load(out / "best.pt").to_dict()
    assert ck["model"] == "tiny3d" and ck["classes"] == ["down", "left", "right", "up"]
    assert ck["data"]["frames"] == 16 and ck["data"]["size"] == 64 and ck["data"]["hflip"] is False
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 5)) and "val_top1" in rows[0]


def test_resume_continues_from_last_checkpoint(motion_data, tmp_path):
    common = dict(data=motion_data / "train.csv", out=tmp_path, model="tiny3d", batch_size=16, workers=0,
                  progress=False, max_steps=None)
    vidcat.train(epochs=1, **common)
    first = Checkpoint.load(tmp_path / "last.pt").to_dict()
    summary = vidcat.train(epochs=2, resume=True, **common)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert summary["history"][0] == first["train_state"]["history"][0]
    assert Checkpoint.load(tmp_path / "last.pt").to_dict()["epoch"] == 2


def test_eval_json_and_confusion(trained, motion_data, capsys):
    out, _ = trained
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--data", str(motion_data / "test.csv"),
                 "--json", str(out / "eval.json"), "--workers", "0", "--quiet"]) == 0
    res = json.loads((out / "eval.json").read_text())
    for key in ("top1", "top5", "mean_class_acc", "n", "per_class", "confusion"):
        assert key in res
    assert res["n"] == 24 and len(res["confusion"]) == 4 and sum(map(sum, res["confusion"])) == 24
    diag = sum(res["confusion"][i][i] for i in range(4))
    assert res["top1"] == pytest.approx(diag / 24)
    assert res["mean_class_acc"] == pytest.approx(sum(r["acc"] for r in res["per_class"].values()) / 4)
    assert (out / "confusion.png").stat().st_size > 0
    assert "mean_class_acc=" in capsys.readouterr().out
    multi = vidcat.evaluate(out / "best.pt", motion_data / "test.csv", clips=2, crops=3, workers=0, progress=False)
    assert multi["views"] == {"clips": 2, "crops": 3} and multi["n"] == 24


def test_predict_api_and_cli_with_bad_files(trained, media_files, bad_files, capsys):
    out, _ = trained
    pred = vidcat.Predictor(out / "best.pt", topk=2)
    r = pred(bad_files["good"])
    assert len(r["labels"]) == 2 and r["scores"][0] >= r["scores"][1]
    paths = [str(p) for p in media_files] + [str(bad_files["empty"])]
    assert main(["predict", "--checkpoint", str(out / "best.pt"), *paths, "--topk", "3"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["path"] for line in lines] == paths
    assert lines[-1] == {"path": str(bad_files["empty"]), "error": "empty file (0 bytes)"}
    assert all(len(line["labels"]) == 3 for line in lines[:-1])
    assert "1 file(s) could not be read" in captured.err
    assert main(["predict", "--checkpoint", str(out / "best.pt"), str(bad_files["empty"]), "--strict"]) == 2
    assert "empty file (0 bytes)" in capsys.readouterr().err


def test_predict_recurses_into_folders(trained, motion_data, capsys):
    out, _ = trained
    assert main(["predict", "--checkpoint", str(out / "best.pt"), str(motion_data / "test" / "up")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6


def test_bad_files_in_a_dataset_are_skipped_and_counted(motion_data, bad_files, tmp_path, capsys):
    rows = list(csv.DictReader(open(motion_data / "train.csv")))[:8]
    manifest = tmp_path / "train.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label"])
        w.writeheader()
        w.writerows({"path": str(motion_data / r["path"]), "label": r["label"]} for r in rows)
        for kind in ("empty", "truncated", "text", "garbage"):
            w.writerow({"path": str(bad_files[kind]), "label": "left"})
    code = main(["train", "--data", str(manifest), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--workers", "0", "--quiet", "--batch-size", "4", "--model", "tiny3d"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "config.json").read_text())
    assert str(bad_files["empty"]) in summary["skipped_files"]
    assert summary["skipped_files"][str(bad_files["empty"])] == "empty file (0 bytes)"
    assert len(summary["skipped_files"]) >= 3  # the truncated file may still hold decodable frames
    err = capsys.readouterr().err
    assert f"skipped {bad_files['empty']}: empty file (0 bytes)" in err
    assert main(["train", "--data", str(manifest), "--out", str(tmp_path / "strict"), "--epochs", "1",
                 "--workers", "0", "--quiet", "--strict", "--model", "tiny3d"]) == 2


@pytest.mark.parametrize("argv,message", [
    (["train", "--data", "/nonexistent/dir", "--out", "x"], "/nonexistent/dir: no such file or directory"),
    (["predict", "--checkpoint", "/nonexistent.pt", "a.mp4"], "/nonexistent.pt: checkpoint not found"),
    (["eval", "--checkpoint", "/nonexistent.pt", "--data", "."], "/nonexistent.pt: checkpoint not found"),
    (["synth", "x", "--kind", "nope"], "--kind must be one of motion, av, avt, not 'nope'"),
    (["train", "--data", "x", "--out", "y", "--frames", "0"], "--frames must be >= 1, not 0"),
    (["train", "--data", "x", "--out", "y", "--epochs", "0"], "--epochs must be >= 1, not 0"),
    (["train", "--data", "x", "--out", "y", "--lr", "nan"], "--lr must be a finite number, not nan"),
    (["train", "--data", "x", "--out", "y", "--batch-size", "0"], "--batch-size must be >= 1, not 0"),
    (["train", "--data", "x", "--out", "y", "--size", "0"], "--size must be >= 8, not 0"),
    (["train", "--data", "x", "--out", "y", "--val-split", "2"], "--val-split must be <= 0.5, not 2.0"),
    (["train", "--data", "x", "--out", "y", "--model-arg", "nonsense"], "--model-arg: wants KEY=VALUE"),
    (["predict", "--checkpoint", "c.pt", "a.mp4", "--topk", "0"], "--topk must be >= 1, not 0"),
    (["eval", "--checkpoint", "c.pt", "--data", ".", "--views", "0,0"], "--clips must be >= 1, not 0"),
    (["serve", "--checkpoint", "c.pt", "--port", "99999"], "--port must be <= 65535, not 99999"),
    (["synth", "x", "--per-class", "-1"], "--per-class must be >= 1, not -1"),
])
def test_user_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"vidcat: error: {err.split('error: ', 1)[1].strip()}"]
    assert message in err and "Traceback" not in err


def test_unknown_model_and_class_mismatch(trained, motion_data, tmp_path, capsys):
    assert main(["train", "--data", str(motion_data / "train.csv"), "--out", str(tmp_path), "--model", "nope"]) == 2
    assert "unknown model 'nope'; choose one of:" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text(f"path,label\n{motion_data / 'test/up/up_0000.mp4'},jump\n")
    out, _ = trained
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--data", str(tmp_path / "other.csv")]) == 2
    assert "labels not known to the model: jump" in capsys.readouterr().err


def test_console_script_exit_codes(tmp_path):
    exe = shutil.which("vidcat") or str((__import__("pathlib").Path(sys.executable).parent / "vidcat"))
    r = subprocess.run([exe, "predict", "--checkpoint", str(tmp_path / "no.pt"), str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("vidcat: error:") and "Traceback" not in r.stderr


def test_timeline_and_report(trained, motion_data, tmp_path):
    out, _ = trained
    video = motion_data / "test" / "left" / "left_0000.mp4"
    assert main(["timeline", "--checkpoint", str(out / "best.pt"), str(video), "--window", "1",
                 "--stride", "0.5", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "left_0000_timeline.json").read_text())
    assert data["windows"] == 3 and len(data["scores"][0]) == 4 and data["times"] == [0.5, 1.0, 1.5]
    assert (tmp_path / "left_0000_timeline.png").stat().st_size > 0
    assert main(["report", str(out)]) == 0
    assert "## Training" in (out / "report.md").read_text()


def test_multilabel_training_reports_map(motion_data, tmp_path):
    rows = list(csv.DictReader(open(motion_data / "train.csv")))
    axis = {"left": "horizontal", "right": "horizontal", "up": "vertical", "down": "vertical"}
    manifest = tmp_path / "ml.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels"])
        for r in rows[::3]:
            w.writerow([str(motion_data / r["path"]), f"{r['label']};{axis[r['label']]}"])
    summary = vidcat.train(data=manifest, out=tmp_path / "run", epochs=1, workers=0, progress=False, val_split=0.25)
    assert summary["multilabel"] and len(summary["classes"]) == 6
    res = vidcat.evaluate(tmp_path / "run" / "best.pt", manifest, workers=0, progress=False)
    assert 0 <= res["mAP"] <= 1 and 0 <= res["gap"] <= 1 and "confusion" not in res


def test_bf16_autocast_step_is_finite(motion_data, tmp_path):
    summary = vidcat.train(data=motion_data / "train.csv", out=tmp_path, model="tiny3d", epochs=1, amp="bf16",
                           workers=0, progress=False, max_steps=3)
    assert summary["nonfinite_steps"] == 0  # no step skipped: all three bf16 steps were finite
    assert summary["history"][0]["train_loss"] > 0 and torch.isfinite(torch.tensor(summary["history"][0]["train_loss"]))


@pytest.mark.parametrize("amp,advice", [("bf16", "try --amp none or a lower --lr"), ("none", "try a lower --lr")])
def test_a_run_whose_every_step_is_non_finite_says_so(motion_data, tmp_path, capsys, monkeypatch, amp, advice):
    import importlib

    engine_train = importlib.import_module("vidcat.engine.gradient")
    real = engine_train.training_loss

    def nan_loss(out, labels, multilabel):
        loss, logits = real(out, labels, multilabel)
        return loss * float("nan"), logits

    monkeypatch.setattr(engine_train, "training_loss", nan_loss)
    assert main(["train", "--data", str(motion_data / "train.csv"), "--out", str(tmp_path / "r"), "--model", "tiny3d",
                 "--frames", "4", "--size", "32", "--epochs", "1", "--batch-size", "32", "--val-split", "0",
                 "--amp", amp, "--workers", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vidcat: error: every training step was non-finite (3 steps): {advice}"]
    assert not (tmp_path / "r" / "best.pt").exists()


def test_sigkill_then_resume_equals_an_uninterrupted_run(motion_data, tmp_path):
    """Training randomness is f(seed, epoch, item) and the checkpoint holds the optimiser, scheduler and RNG
    state: a run killed with SIGKILL mid-epoch and resumed ends with bit-identical weights (CPU, 1 thread)."""
    import os
    import signal
    import time

    args = ["-m", "vidcat", "train", "--data", str(motion_data / "train.csv"), "--val", str(motion_data / "val.csv"),
            "--model", "tiny3d", "--frames", "4", "--size", "32", "--epochs", "3", "--batch-size", "4",
            "--workers", "1", "--threads", "1", "--quiet"]
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, *args, "--out", str(ref)], check=True, capture_output=True, timeout=600)
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *args, "--out", str(run)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # SIGKILL runs no cleanup: at most a hidden temp file of the write it interrupted, never a visible half file
    assert all(p.name.startswith(".") and ".tmp-" in p.name for p in run.iterdir() if "tmp" in p.name)
    if (run / "config.json").exists():
        json.loads((run / "config.json").read_text())
    r = subprocess.run([sys.executable, *args, "--out", str(run), "--resume"], capture_output=True, text=True,
                       timeout=600)
    assert not list(run.glob(".*tmp*")), "the resumed run swept the killed run's temp files"
    if not killed:  # it finished before the kill: nothing to resume, said in one line
        assert r.returncode == 2 and "nothing to resume" in r.stderr
    else:
        assert r.returncode == 0, r.stderr[-1500:]
    a, b = Checkpoint.load(ref / "last.pt"), Checkpoint.load(run / "last.pt")
    assert a.extra["epoch"] == b.extra["epoch"] == 3
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_runs_are_never_silently_damaged(motion_data, tmp_path, capsys):
    common = ["train", "--data", str(motion_data / "train.csv"), "--model", "tiny3d", "--frames", "4", "--size", "32",
              "--epochs", "1", "--max-steps", "1", "--workers", "0", "--quiet"]
    run = tmp_path / "run"
    assert main([*common, "--out", str(run), "--resume"]) == 2
    assert "holds no last.pt to continue" in capsys.readouterr().err
    assert main([*common, "--out", str(run), "--resume", "auto"]) == 0
    assert main([*common, "--out", str(run)]) == 2
    assert "already holds a run (last.pt)" in capsys.readouterr().err
    assert main([*common, "--out", str(run), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main([*common, "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    json.loads((run / "config.json").read_text())  # still valid JSON (no Infinity / NaN)


def test_a_manifest_that_is_not_utf8_is_one_line(tmp_path, capsys):
    (tmp_path / "m.csv").write_bytes(b"path,label\n\xff\xfe.mp4,a\n")
    for argv in (["train", "--data", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r"), "--model", "tiny3d"],
                 ["eval", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path / "m.csv")]):
        assert main(argv) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert "not UTF-8 text" in errs[0] and len(errs) == 2


def test_flow_with_no_readable_input_fails(tmp_path, capsys):
    assert main(["flow", str(tmp_path / "none.mp4"), "--cache", str(tmp_path / "c"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "none.mp4: no such file or directory" in err and "vidcat: error: no input could be read (1 failed" in err


def test_training_on_only_unreadable_videos_is_an_error(bad_files, tmp_path, capsys):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("path,label\n" + "".join(f"{bad_files[k]},{lab}\n" for k, lab in
                                                  (("empty", "a"), ("text", "b"), ("garbage", "a"), ("empty", "b"))))
    assert main(["train", "--data", str(manifest), "--out", str(tmp_path / "r"), "--model", "tiny3d", "--epochs", "1",
                 "--workers", "0", "--quiet", "--val-split", "0"]) == 2
    assert "no readable video to train on" in capsys.readouterr().err
    assert not (tmp_path / "r" / "best.pt").exists()


def test_eval_on_labelless_data_is_one_line(trained, motion_data, tmp_path, capsys):
    out, _ = trained
    (tmp_path / "nolabel.csv").write_text(f"path\n{motion_data / 'test/up/up_0000.mp4'}\n")
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--data", str(tmp_path / "nolabel.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no labels found" in err[0]


def _strict_json(path):
    """``path`` parsed by a strict JSON reader: NaN / Infinity / -Infinity are refused."""
    def refuse(token):
        raise ValueError(f"{path.name}: {token} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_nan_metric_is_null_in_config_json_and_eval_json(motion_data, tmp_path, capsys):
    """Batch-norm statistics of NaN (weights from elsewhere): training steps use batch statistics and
    stay finite, every evaluation gives NaN scores and loss; each JSON file holds null, not NaN."""
    from vidcat.models.registry import create_model

    net = create_model("tiny3d", num_classes=4)
    net.features[0][1].running_var.fill_(float("nan"))
    torch.save(net.state_dict(), tmp_path / "nan_stats.pt")
    run = tmp_path / "run"
    summary = vidcat.train(data=motion_data / "train.csv", val=str(motion_data / "val.csv"), out=run,
                           model="tiny3d", frames=4, size=32, epochs=1, max_steps=1, batch_size=4, workers=0,
                           progress=False, weights=str(tmp_path / "nan_stats.pt"))
    assert summary["history"][0]["val_loss"] != summary["history"][0]["val_loss"]  # NaN in memory
    config = _strict_json(run / "config.json")
    assert config["history"][0]["val_loss"] is None and config["nonfinite_steps"] == 0
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(motion_data / "test.csv"),
                 "--json", str(tmp_path / "eval.json"), "--workers", "0", "--quiet"]) == 0
    res = _strict_json(tmp_path / "eval.json")
    assert res["loss"] is None and res["n"] == 24 and 0 <= res["top1"] <= 1


def test_the_json_writer_is_strict_for_numpy_values_too(tmp_path):
    import numpy as np

    from vidcat.io.store import atomic_write_json

    obj = {"a": float("nan"), "b": np.float32("inf"), "c": np.array([1.5, -np.inf]), "d": (np.int64(3), True),
           "e": tmp_path}
    atomic_write_json(tmp_path / "x.json", obj)
    assert _strict_json(tmp_path / "x.json") == {"a": None, "b": None, "c": [1.5, None], "d": [3, True],
                                                 "e": str(tmp_path)}
