"""vidcat: categorize videos — decode, sample, model (frame, recurrent, 3D, two-stream, audio,
text, fusion), train, evaluate, predict.

The Python API mirrors the CLI and takes the same option dataclasses (``vidcat.config``)::

    import vidcat
    vidcat.train(data="data/motion", out="runs/demo", model="tiny3d", epochs=8)
    vidcat.evaluate("runs/demo/best.pt", "data/motion/test.csv")
    vidcat.Predictor("runs/demo/best.pt")("clip.mp4")
"""
from __future__ import annotations

from vidcat.config.version import __version__  # noqa: F401 (the package version, defined once)


def train(data: str, out: str, model: str | None = None, **kw) -> dict:
    """Train on ``data`` into ``out``. Keywords are :class:`vidcat.config.TrainConfig` fields or
    :class:`vidcat.config.DataConfig` fields (``frames``, ``size``, ``modalities``, ...). Without
    ``model`` the modalities decide (several -> a fusion model), exactly as on the command line."""
    from vidcat.engine.train import train as _train

    return _train(train_config(data, out, model, **kw))


def train_config(data: str, out: str, model: str | None = None, **kw):
    """A validated :class:`TrainConfig` from keywords (TrainConfig and DataConfig fields mixed)."""
    from dataclasses import fields, replace

    from vidcat.config import DataConfig, TrainConfig

    data_fields = {f.name for f in fields(DataConfig)}
    data_kw = {k: kw.pop(k) for k in list(kw) if k in data_fields}
    base = kw.pop("data_config", None) or DataConfig()
    return TrainConfig(source=str(data), out=str(out), model=model, data=replace(base, **data_kw), **kw)


def evaluate(checkpoint, data, **kw) -> dict:
    """Metrics of ``checkpoint`` on held-out ``data``; keywords are :class:`vidcat.config.EvalConfig` fields."""
    from vidcat.config import EvalConfig
    from vidcat.engine.evaluate import evaluate as _evaluate

    return _evaluate(EvalConfig(checkpoint=str(checkpoint), source=str(data), **kw))


def __getattr__(name):
    # Heavy imports (torch) stay lazy so `import vidcat` and `vidcat --help` are fast.
    if name == "Predictor":
        from vidcat.inference.predictor import Predictor
        return Predictor
    if name in ("create_model", "list_models"):
        import vidcat.models
        return getattr(vidcat.models, name)
    if name == "probe":
        from vidcat.io.video import probe
        return probe
    raise AttributeError(name)
