"""Weights as specs: the one catalogue of every weight set vidcat knows (:mod:`.catalogue`, pure data) and
where their files are on this machine (:mod:`.resolve`, offline, sha256-checked). Torch-free, at the io
level, so the io readers (speech, ocr) ask it for their bundled files."""
from vidcat.weights.catalogue import CATALOGUE, Weights, get_weights, match, tags  # noqa: F401
from vidcat.weights.resolve import WeightFile, bundled_path, locate, weight_rows, whisper_model_dir  # noqa: F401
