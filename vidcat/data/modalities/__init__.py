"""Per-modality loaders (video, audio, text, flow, mv, pose), all registered the same way; see ``base``."""
from vidcat.data.modalities import audio, motion, pose, text, video  # noqa: F401  (each registers its loaders)
from vidcat.data.modalities.base import MODALITIES, ClipContext, Modality, get_modality, register_modality

__all__ = ["MODALITIES", "ClipContext", "Modality", "get_modality", "register_modality"]
