"""Imports the modules whose loaders register the non-video modalities (audio, text, flow, mv)."""
import importlib

for _module in ("vidcat.data.av_modalities", "vidcat.data.motion_modalities"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as e:
        if e.name != _module:
            raise
