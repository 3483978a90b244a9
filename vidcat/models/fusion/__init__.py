"""Every fusion model, one vocabulary of modes (each with one meaning):

* ``late``     weighted average of the streams' logits with fixed weights (equal, or tuned on a
               validation set by ``vidcat fuse``);
* ``weighted`` the same with the weights learned jointly (softmax of one parameter per stream);
* ``concat``   concatenated stream features (absent ones zeroed, plus the presence mask) -> MLP;
* ``gated``    per-sample attention over the present streams' projected features -> head;
* ``conv``     (two_stream only) mid-level fusion of the two streams' last conv maps.

``core`` holds :class:`FusionModel`; ``multimodal`` registers ``fusion`` (one stream per modality),
``two_stream`` registers ``two_stream`` (RGB + optical flow or motion vectors).
"""
from vidcat.models.fusion.core import (FUSIONS, FusionModel, as_stream, batch_key, build_fusion, mask_key,
                                      stream_loss_terms)

__all__ = ["FUSIONS", "FusionModel", "as_stream", "batch_key", "build_fusion", "mask_key", "stream_loss_terms"]
