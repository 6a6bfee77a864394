"""The encoder's ONNX export toolchain: trace, fuse, smooth, quantise and check a sentence-transformers model.

The runtime encoder (``ingest/embedding.py``) only reads the graphs this module writes; it imports this
module when an export it needs is not cached yet, and only then do torch, transformers and onnx load.
How each step was chosen, with the commands that measure it, is in docs/performance.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ingest.embedding import ONNX_INPUTS, EmbeddingModelError, OnnxPrecision, load_tokenizer

# Names how export_onnx builds a graph: part of the cache key, so a changed recipe is exported anew.
EXPORT_RECIPE = (
    "eager-trace, bert-fusion, int8 MatMul+Attention, down-projections smoothed (alpha {alpha}, calibration "
    "text) except the first {fp32} kept fp32"
)
# int8: the feed-forward down-projections of this many first layers stay fp32 (see down_projections).
FP32_DOWN_PROJECTIONS = 1
# int8: how far each down-projection's input channels are evened out before quantising (see smooth).
SMOOTHING_ALPHA = 0.5
# Paragraphs like those Docket reads, run through the fp32 graph to size each channel for smooth.
CALIBRATION_TEXT = Path(__file__).with_name("data") / "calibration.txt"


def recipe_hash():
    """A SHA-256 that has read the export recipe and the calibration text's digest; ``embedding.onnx_path``
    adds the model files' digest to it to name a cached export."""
    digest = hashlib.sha256(EXPORT_RECIPE.format(fp32=FP32_DOWN_PROJECTIONS, alpha=SMOOTHING_ALPHA).encode())
    digest.update(hashlib.sha256(CALIBRATION_TEXT.read_bytes()).digest())
    return digest


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
       kernels (``python -m bench.encoder_bench --unfused`` measures what it is worth).
    3. int8: even out the input channels of the feed-forward down-projections (``smooth``, calibrated on
       ``CALIBRATION_TEXT``), then quantise the weights of every MatMul and fused Attention (their QKV
       projection) per channel, except the down-projections of the first ``fp32_down_projections`` layers.
    4. Check the export against torch on sample texts before caching it (``check_export``): a fusion that
       changed the arithmetic would fail here, not in a workspace's vectors.
    """
    try:
        import onnx
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingModelError(
            "embedding: exporting the ONNX encoder needs the packages torch, sentence-transformers, onnx and "
            "onnxruntime (run `make setup`); or set embedding.backend to 'torch' and embedding.onnx_queries to false"
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
                down = down_projections(graph.graph)
                if smoothing_alpha:
                    smoothed_names = down[fp32_down_projections:]
                    inputs = {node.name: node.input[0] for node in graph.graph.node if node.name in smoothed_names}
                    tensors = [inputs[name] for name in smoothed_names]
                    channel_max = activation_max(fused, tensors, model.tokenizer, model.max_seq_length)
                    smooth(graph.graph, {name: channel_max[inputs[name]] for name in smoothed_names}, smoothing_alpha)
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
        check_export(model, fused, precision, str(model_path), model_path)
        os.replace(fused, target)


# How close an export's vectors must be to torch's on the check texts (per text, cosine).
EXPORT_AGREEMENT = {"fp32": 0.9999, "int8": 0.98}
CHECK_TEXTS = [
    "This Agreement shall be governed by the laws of the State of New York.",
    "Net cash provided by operating activities was $18.4 billion in 2017, compared with $16.4 billion in 2016.",
    "Either party may terminate this Agreement upon thirty (30) days' written notice to the other party. " * 6,
    "Quelle est la durée du contrat ? 契約の期間",
]


def check_export(model, path: Path, precision: OnnxPrecision, name: str, model_path: Path | None = None) -> None:
    """Raise unless the ONNX graph at ``path`` gives torch's vectors (to ``EXPORT_AGREEMENT``), texts
    of mixed lengths batched together, so padding is checked too.

    With ``model_path``, also raise unless the runtime's tokenizer (the folder's tokenizer.json on the
    ``tokenizers`` package, ``embedding.load_tokenizer``) gives the word pieces transformers' tokenizer
    gives: the runtime feeds the graph without transformers, so the two must not differ."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = model.tokenizer(CHECK_TEXTS, padding=True, truncation=True, return_tensors="np")
    if model_path is not None:
        runtime = [e.ids for e in load_tokenizer(str(model_path)).encode_batch(CHECK_TEXTS)]
        expected = model.tokenizer(CHECK_TEXTS)["input_ids"]
        if runtime != expected:
            raise EmbeddingModelError(
                f"embedding: the tokenizer.json of {name} tokenises differently from its transformers tokenizer; "
                "save the tokenizer again (AutoTokenizer.from_pretrained(folder).save_pretrained(folder))"
            )
    feeds = {i.name: batch[i.name].astype(np.int64) for i in session.get_inputs()}
    (exported,) = session.run(None, feeds)
    exported = exported / np.linalg.norm(exported, axis=1, keepdims=True)
    reference = model.encode(CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    worst = float((exported * reference).sum(axis=1).min())
    if worst < EXPORT_AGREEMENT[precision]:
        raise EmbeddingModelError(
            f"embedding: the {precision} ONNX export of {name} disagrees with torch (cosine {worst:.4f} "
            f"< {EXPORT_AGREEMENT[precision]}); set embedding.backend to 'torch' and embedding.onnx_queries to false"
        )


def down_projections(graph) -> list[str]:
    """The feed-forward MatMuls that map the wide inner layer back to the hidden width, first layer first.

    Their inputs come out of GELU with a few channels far larger than the rest, which per-tensor int8
    activations represent badly: int8 costs the most accuracy here, and most in the first layers. Each
    is smoothed (``smooth``) or, for the first ``FP32_DOWN_PROJECTIONS``, kept in fp32. Each fp32 layer
    costs some speed and the first buys the most accuracy
    (``python -m bench.encoder_bench --recipes 3:0,2:0.5,0:0.5 --paragraphs``; docs/performance.md).
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
    model reads whole, so every word is seen, and each window runs alone, so no padding is among them.
    ``tokenizer`` is transformers' (the toolchain's; ``SentenceTransformer.tokenizer``)."""
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


def activation_max(graph_path: Path, tensors: list[str], tokenizer, max_tokens: int) -> dict[str, np.ndarray]:
    """Largest magnitude of each channel of the named tensors over the calibration windows."""
    channel_max: list[np.ndarray] | None = None
    for values in calibration_activations(graph_path, tensors, tokenizer, max_tokens):
        largest = [np.abs(value).max(axis=0) for value in values]
        channel_max = largest if channel_max is None else [np.maximum(a, b) for a, b in zip(channel_max, largest)]
    return dict(zip(tensors, channel_max or []))


def smooth(graph, channel_max: dict[str, np.ndarray], alpha: float) -> None:
    """Rewrite each named MatMul ``X @ W`` as ``(X * 1/s) @ (s * W)``, in place: the same product in fp32,
    with ``s`` per input channel, ``s_j = max|X_j| ** alpha`` (``channel_max``).

    A down-projection's input comes out of GELU with a few channels far larger than the rest, and int8
    activations share one scale per tensor, so the ordinary channels get only a few levels. Dividing
    each channel by ``s`` evens them out; multiplying the matching row of ``W`` by ``s`` keeps the
    product, and W's int8 scales are per output column, where the larger rows cost less. This is
    SmoothQuant (Xiao et al., 2023) without its weight term: with ``s_j = max|X_j| ** a / max|W_j| ** (1 - a)``
    the rows of small weights grow until they set their columns' int8 scales, and each layer's error
    grows, where this scale shrinks it (``python -m bench.smoothing_sim``, docs/performance.md).
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
