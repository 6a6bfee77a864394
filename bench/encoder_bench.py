"""Encoder throughput and agreement: torch fp32 beside Docket's ONNX exports, on real filing text.

    python -m bench.encoder_bench [--filing AMAZON_2017_10K.pdf] [--chunks 96] [--rounds 5] [--unfused]

The texts are consecutive windows of the filing's PyMuPDF text, each as long as MiniLM reads (the
longest chunks Docket makes), run in Docket's batches (``length_batches``, ``embedding.batch_size`` and
``max_batch_tokens``) on all cores. Systems, alternated each round so load drift hits all alike:

- ``torch``: sentence-transformers fp32 (``embedding.backend: torch``), the reference;
- ``onnx-fp32``: the fp32 ONNX export that embeds questions for the torch backend;
- ``onnx-int8``: ``embedding.backend: onnx-int8``;
- with ``--unfused``, the same two exported without eager tracing and BERT fusion (the recipe before
  them), into a scratch cache.

Reported: word pieces per second (median of the rounds), the ratio to torch, and each system's cosine
to torch's vectors of the same texts (mean and minimum).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pymupdf

from bench.ingest_bench import EVAL_DIR
from ingest.config import EmbeddingSettings
from ingest.embedding import Encoder, _onnx_session, export_onnx, length_batches, onnx_path


def windows(encoder: Encoder, filing: Path, count: int) -> list[list[int]]:
    """``count`` consecutive token windows of the filing's text, each the model's full length."""
    with pymupdf.open(filing) as pdf:
        text = "\n".join(page.get_text() for page in pdf)
    tokenizer = encoder.tokenizer
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    body = encoder.max_tokens - 2
    starts = range(0, min(len(ids) - body, count * body), body)
    return [[tokenizer.cls_token_id, *ids[s : s + body], tokenizer.sep_token_id] for s in starts]


def torch_runner(encoder: Encoder, ids: list[list[int]]):
    """Embeds ``ids`` with the sentence-transformers model's own forward, in the same batches (what
    ``SentenceTransformer.encode`` runs after tokenising)."""
    import torch

    model, settings = encoder.model, encoder.settings

    def run() -> np.ndarray:
        out = np.empty((len(ids), encoder.dimension), dtype=np.float32)
        for batch in length_batches([len(row) for row in ids], settings.batch_size, settings.max_batch_tokens):
            rows = ids[batch]
            width = max(map(len, rows))
            input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
            mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
            with torch.inference_mode():
                vectors = model({"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(mask)})
            out[batch] = torch.nn.functional.normalize(vectors["sentence_embedding"], dim=1).numpy()
        return out

    return run


def onnx_runner(encoder: Encoder, session, ids: list[list[int]]):
    """Embeds ``ids`` with ``session`` in Docket's batches (what ``Encoder.encode`` does after tokenising)."""
    settings = encoder.settings

    def run() -> np.ndarray:
        out = np.empty((len(ids), encoder.dimension), dtype=np.float32)
        for batch in length_batches([len(row) for row in ids], settings.batch_size, settings.max_batch_tokens):
            out[batch] = encoder._encode_onnx(session, ids[batch])
        return out

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filing", default="AMAZON_2017_10K.pdf")
    parser.add_argument("--chunks", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unfused", action="store_true", help="also time the exports made without fusion")
    args = parser.parse_args()

    torch_encoder = Encoder(EmbeddingSettings())
    ids = windows(torch_encoder, EVAL_DIR / "pdfs" / args.filing, args.chunks)
    fp32 = Encoder(EmbeddingSettings(onnx_queries=True))
    int8 = Encoder(EmbeddingSettings(backend="onnx-int8"))
    systems = {
        "torch": torch_runner(torch_encoder, ids),
        "onnx-fp32": onnx_runner(fp32, fp32.query_session, ids),
        "onnx-int8": onnx_runner(int8, int8.onnx_session, ids),
    }
    scratch = tempfile.TemporaryDirectory()
    if args.unfused:
        for precision in ("fp32", "int8"):
            path = Path(scratch.name) / onnx_path(fp32.model_path, fp32.model_id, precision).name
            print(f"exporting the unfused {precision} graph ...", flush=True)
            export_onnx(fp32.model_path, path, precision, fuse=False)
            systems[f"onnx-{precision}-unfused"] = onnx_runner(fp32, _onnx_session(str(path), None), ids)

    vectors = {name: run() for name, run in systems.items()}  # warm-up, and the vectors compared
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    for round_ in range(args.rounds):
        for name in list(systems)[:: 1 if round_ % 2 == 0 else -1]:
            started = time.perf_counter()
            systems[name]()
            seconds[name].append(time.perf_counter() - started)
    scratch.cleanup()

    tokens = sum(len(row) for row in ids)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{len(ids)} windows of {len(ids[0])} word pieces from {args.filing}, {args.rounds} rounds; load {load}")
    print("| system | word pieces/s | x torch | cosine to torch: mean | min |")
    print("|---|---|---|---|---|")
    base = tokens / statistics.median(seconds["torch"])
    for name in systems:
        rate = tokens / statistics.median(seconds[name])
        cosine = (vectors[name] * vectors["torch"]).sum(axis=1)
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} | {cosine.mean():.5f} | {cosine.min():.5f} |")


if __name__ == "__main__":
    main()
