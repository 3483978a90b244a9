"""The model zoo: one file per family, one registry (``create_model``, ``list_models``, ``get_spec``).

Importing this package registers every family; it is imported before any of its modules, so a
lookup never misses a family, and an import error in one is raised, not hidden.
"""
from vidcat.models import (audio, c3d, inflated, lrcn, pose, stream_fusion, text, tiny3d, tsn, video_resnet,  # noqa: F401
                           x3d)
from vidcat.models.fusion import multimodal, two_stream  # noqa: F401
from vidcat.models.registry import ModelSpec, create_model, get_spec, list_models, register_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
