"""``fusion``: one registered model that fuses a stream per modality (video, audio, text, flow, mv).

``vidcat train --model fusion --modalities video,audio,text --model-arg fusion=gated`` builds one
registry model per modality (:data:`DEFAULT_STREAMS`, or ``streams={"video": "r2plus1d_18"}`` to
swap one) and fuses them with :class:`~vidcat.models.fusion.FusionModel`, which reads
``batch[<modality>]`` and ``batch["<modality>_mask"]`` (0 = missing in that sample). The model takes
the whole batch dict (``modality="multi"``) and returns ``{"logits", "stream_logits", ...}``; the
trainer adds an auxiliary loss on each stream's own logits and ``vidcat eval`` reports them.
"""
from __future__ import annotations

import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.fusion.core import FUSIONS, build_fusion
from vidcat.models.registry import get_spec, register_model
from vidcat.config import MULTI_STREAM

# modality -> registry model name, or (name, builder keywords). Text: word unigrams only. With 1-2 grams the
# hashed bigrams of a clip's filler words identify each training video, and the text stream memorised the
# `avt` training labels (0.975 train vs 0.25 possible, 4 epochs), leaving the other streams no signal to learn.
DEFAULT_STREAMS = {
    "video": ("tiny3d", {"frame_diff": True}),
    "audio": "audio_cnn",
    "text": ("text_hash", {"ngram": (1, 1)}),
    "flow": ("tiny3d", {"in_channels": 2}),
    "mv": ("tiny3d", {"in_channels": 2}),
    "pose": "stgcn",
}
_ALIASES = {"rgb": "video"}


def _stream(entry) -> tuple[str, dict]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str):
        return entry[0], dict(entry[1] or {})
    raise VidcatError(f"fusion: a stream is a model name or [name, {{keywords}}], not {entry!r}")


def resolve_streams(modalities, streams: dict | None = None, pretrained: bool = False,
                    flow_length: int = 1) -> tuple[dict[str, str], dict[str, dict]]:
    """``({modality: model name}, {modality: builder keywords})`` for ``build_fusion``; a flow/mv stream
    whose entry sets ``in_channels`` gets ``2 * flow_length`` (L stacked fields per frame)."""
    table = {**DEFAULT_STREAMS, **{_ALIASES.get(k, k): v for k, v in (streams or {}).items()}}
    names, kws = {}, {}
    for m in dict.fromkeys(_ALIASES.get(m, m) for m in modalities):
        if m not in table:
            raise VidcatError(f"fusion: no stream model for modality {m!r}; known: {', '.join(table)} "
                              "(or pass streams={...})")
        name, kw = _stream(table[m])
        spec = get_spec(name)
        if spec.modality == MULTI_STREAM:
            raise VidcatError(f"fusion: stream {m!r} cannot itself be a multi-modal model ({name})")
        if pretrained:
            kw.setdefault("pretrained", True)
        if m in ("flow", "mv") and "in_channels" in kw:
            kw["in_channels"] = 2 * int(flow_length)
        names[m], kws[m] = name, kw
    if not names:
        raise VidcatError("fusion: no modalities given (e.g. --modalities video,audio)")
    return names, kws


def video_stream(kw: dict) -> tuple[str, dict] | None:
    """The video stream (model, keywords) of a fusion model: its weights set the RGB input; None without one."""
    modalities = kw.get("modalities") or ("video", "audio")
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",") if m]
    names, kws = resolve_streams(modalities, kw.get("streams"))
    return (names["video"], kws["video"]) if "video" in names else None


# 8 frames 2 apart at 32²: measured on `av` (240 training clips), the cheap clip learns the fused task
# (0.95-0.98 test top-1) where 16x64² clips trained 8x slower and had not yet in the same epochs.
@register_model("fusion", family="fusion", modality=MULTI_STREAM, frames=8, stride=2, size=32, temporal=True,
                defaults={"modalities": ("video", "audio")}, rgb_stream=video_stream,
                description="one stream per modality (tiny3d / audio_cnn / text_hash ...) fused (late by default)",
                paper="Arevalo et al., Gated Multimodal Units, 2017; Neverova et al., ModDrop, TPAMI 2016")
def fusion(num_classes: int, modalities=("video", "audio"), fusion: str = "late", streams: dict | None = None,
           modality_dropout: float = 0.2, pretrained: bool = False, flow_length: int = 1, hidden: int = 256,
           proj_dim: int = 128, dropout: float = 0.2) -> nn.Module:
    """``hidden``, ``proj_dim``, ``dropout``: sizes of the concat/gated fusion heads (:class:`FusionModel`)."""
    if fusion not in FUSIONS:
        raise VidcatError(f"fusion: fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    if not 0 <= float(modality_dropout) < 1:
        raise VidcatError(f"fusion: modality_dropout must be in [0, 1), not {modality_dropout}")
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",") if m]
    names, kws = resolve_streams(modalities, streams, pretrained, flow_length)
    return build_fusion(names, num_classes, fusion, stream_kw=kws, modality_dropout=float(modality_dropout),
                        hidden=hidden, proj_dim=proj_dim, dropout=dropout)
