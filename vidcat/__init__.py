"""vidcat: categorize videos — decode, sample, model (frame, recurrent, 3D, two-stream, audio,
text, fusion), train, evaluate, predict.

The Python API mirrors the CLI::

    import vidcat
    vidcat.train(data="data/motion", model="tiny3d", out="runs/demo", epochs=8)
    vidcat.evaluate("runs/demo/best.pt", "data/motion/test.csv")
    vidcat.Predictor("runs/demo/best.pt")("clip.mp4")
"""
from __future__ import annotations

__version__ = "0.1.0"


def train(data: str, out: str, model: str = "tiny3d", **kw) -> dict:
    """Train ``model`` on ``data`` into ``out``; keywords are :class:`vidcat.config.TrainConfig` fields,
    and DataConfig fields (``frames``, ``size``, ``modalities``, ...) are passed through as overrides."""
    from dataclasses import fields

    from vidcat.config import DataConfig, TrainConfig
    from vidcat.engine.train import train as _train

    data_fields = {f.name for f in fields(DataConfig)}
    overrides = {k: kw.pop(k) for k in list(kw) if k in data_fields}
    return _train(TrainConfig(source=str(data), out=str(out), model=model,
                              data_overrides={**kw.pop("data_overrides", {}), **overrides}, **kw))


def evaluate(checkpoint, data, **kw) -> dict:
    """Metrics of ``checkpoint`` on held-out ``data`` (see :func:`vidcat.engine.evaluate.evaluate`)."""
    from vidcat.engine.evaluate import evaluate as _evaluate

    return _evaluate(checkpoint, data, **kw)


def __getattr__(name):
    # Heavy imports (torch) stay lazy so `import vidcat` and `vidcat --help` are fast.
    if name == "Predictor":
        from vidcat.inference.predictor import Predictor
        return Predictor
    if name in ("create_model", "list_models"):
        from vidcat.models import registry
        return getattr(registry, name)
    if name == "probe":
        from vidcat.io.video import probe
        return probe
    raise AttributeError(name)
