"""How much int8 error each feed-forward down-projection carries, with and without smoothing: a numpy
simulation of ONNX Runtime's dynamic quantisation on real activations.

    python -m bench.smoothing_sim [--alpha 0.5] [--tokens 500]

The activations entering each down-projection are taken from the fp32 ONNX export (Docket's own, from
the cache) over ``ingest/data/calibration.txt``. Each product ``X @ W`` is then recomputed the way the int8
graph computes it: ``X`` in uint8 with one asymmetric scale per tensor (``DynamicQuantizeLinear``), ``W``
in int8 with one symmetric scale per output column (``per_channel=True``). Reported per layer, as the
relative error of the product (Frobenius norm of the difference over that of the fp32 product):

- ``plain``: no smoothing;
- ``smoothquant``: SmoothQuant's scale ``s_j = max|X_j|^a / max|W_j|^(1-a)``;
- ``activation``: Docket's, ``s_j = max|X_j|^a`` (``ingest.onnx_export.smooth``).

Then the same products as CPUs without VNNI compute them: u8 x s8 products added in pairs with 16-bit
saturation (``vpmaddubsw``), on ``--tokens`` random tokens per layer; the count of saturated pair sums
shows whether that matters.
"""

from __future__ import annotations

import argparse

import numpy as np

from ingest.config import EmbeddingSettings
from ingest.embedding import Encoder, onnx_path
from ingest.onnx_export import calibration_activations, down_projections, export_onnx


def quantised_product(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray]:
    """(x as uint8 codes, w as int8 codes, x's zero point, x's scale, w's column scales)."""
    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    x_scale = (high - low) / 255
    zero = float(np.round(-low / x_scale))
    x_codes = np.clip(np.round(x / x_scale) + zero, 0, 255)
    w_scale = np.abs(w).max(axis=0) / 127
    return x_codes, np.round(w / w_scale), zero, x_scale, w_scale


def relative_error(x: np.ndarray, w: np.ndarray, reference: np.ndarray) -> float:
    x_codes, w_codes, zero, x_scale, w_scale = quantised_product(x, w)
    product = ((x_codes - zero) @ w_codes) * x_scale * w_scale
    return float(np.linalg.norm(product - reference) / np.linalg.norm(reference))


def saturated_pairs(x: np.ndarray, w: np.ndarray) -> tuple[int, int]:
    """(pair sums beyond int16, pair sums in all) of the u8 x s8 product."""
    x_codes, w_codes, *_ = quantised_product(x, w)
    saturated = 0
    for start in range(0, w_codes.shape[1], 32):
        columns = w_codes[:, start : start + 32]
        pairs = x_codes[:, 0::2, None] * columns[None, 0::2] + x_codes[:, 1::2, None] * columns[None, 1::2]
        saturated += int((np.abs(pairs) > 32767).sum())
    return saturated, x_codes.shape[0] * (x_codes.shape[1] // 2) * w_codes.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--tokens", type=int, default=500, help="tokens per layer in the saturation count")
    args = parser.parse_args()

    import onnx
    from onnx import numpy_helper

    encoder = Encoder(EmbeddingSettings())
    path = onnx_path(encoder.model_path, encoder.model_id, "fp32")
    if not path.is_file():
        export_onnx(encoder.model_path, path, "fp32")
    graph = onnx.load(str(path)).graph
    down = down_projections(graph)
    nodes = {node.name: node for node in graph.node}
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    inputs = [nodes[name].input[0] for name in down]
    windows = list(calibration_activations(path, inputs, encoder.model.tokenizer, encoder.max_tokens))
    activations = {name: [values[i] for values in windows] for i, name in enumerate(inputs)}

    rng = np.random.default_rng(0)
    a = args.alpha
    print(f"relative error of each down-projection's int8 product, alpha {a}, on the calibration text:")
    print("| layer | tokens | plain | smoothquant | activation (Docket) | avx2 saturated pairs, activation |")
    print("|---|---|---|---|---|---|")
    for layer, (name, tensor) in enumerate(zip(down, inputs)):
        x = np.concatenate(activations[tensor])
        w = weights[nodes[name].input[1]]
        reference = x @ w
        x_max, w_max = np.maximum(np.abs(x).max(axis=0), 1e-6), np.maximum(np.abs(w).max(axis=1), 1e-6)
        errors = []
        for scale in (np.ones_like(x_max), x_max**a / w_max ** (1 - a), x_max**a):
            errors.append(relative_error(x / scale, w * scale[:, None], reference))
        sample = x[rng.choice(len(x), min(args.tokens, len(x)), replace=False)] / x_max**a
        saturated, pairs = saturated_pairs(sample, w * (x_max**a)[:, None])
        print(f"| {layer} | {len(x)} | {errors[0]:.4f} | {errors[1]:.4f} | {errors[2]:.4f} | {saturated} of {pairs:,} |")


if __name__ == "__main__":
    main()
