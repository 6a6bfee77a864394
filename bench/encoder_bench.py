"""Encoder throughput and agreement: torch fp32 beside Docket's ONNX exports, on real filing text.

    python -m bench.encoder_bench [--filing AMAZON_2017_10K.pdf] [--chunks 96] [--rounds 5] [--unfused]
    python -m bench.encoder_bench --recipes 3:0,1:0.5,0:0.5 --paragraphs

The texts are consecutive windows of the filing's PyMuPDF text, each as long as MiniLM reads (the
longest chunks Docket makes), run in Docket's batches (``Encoder.batches``: ``embedding.batch_size`` and
``max_batch_tokens``) on all cores. Systems, alternated each round so load drift hits all alike:

- ``torch``: sentence-transformers fp32 (``embedding.backend: torch``), the reference;
- ``onnx-fp32``: the fp32 ONNX export that embeds questions for the torch backend;
- ``onnx-int8``: ``embedding.backend: onnx-int8``;
- with ``--unfused``, the same two exported without eager tracing and BERT fusion (the recipe before
  them), into a scratch cache;
- with ``--recipes N:A,...``, int8 exports with the first N down-projections in fp32 and the rest smoothed
  with alpha A (0: not smoothed), into a scratch cache: how ``FP32_DOWN_PROJECTIONS`` and
  ``SMOOTHING_ALPHA`` in ingest/onnx_export.py were chosen.

Reported: word pieces per second (median of the rounds), the ratio to torch, and each system's cosine
to torch's vectors of the same texts (mean and minimum). With ``--paragraphs``, also each ONNX system's
agreement with torch on real paragraphs that none of the exports was calibrated on: the text blocks of
six CUAD contracts and of two FinanceBench filings (``../shared/eval``), as in tests/test_embedding.py:
cosine mean, 1st percentile and minimum, and how far each paragraph's nearest neighbour by the export's
vectors falls short of torch's nearest, by torch's own similarities (near ties may swap).
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

CUAD_PDFS = EVAL_DIR.parent / "cuad" / "pdfs"
PARAGRAPH_FILINGS = ("AMAZON_2017_10K.pdf", "BESTBUY_2023_10K.pdf")
from ingest.config import EmbeddingSettings
from ingest.embedding import Encoder, onnx_path, open_onnx_session
from ingest.onnx_export import export_onnx


def windows(encoder: Encoder, filing: Path, count: int) -> list[list[int]]:
    """``count`` consecutive token windows of the filing's text, each the model's full length."""
    with pymupdf.open(filing) as pdf:
        text = "\n".join(page.get_text() for page in pdf)
    ids = encoder.tokenizer.encode(text, add_special_tokens=False).ids
    cls, sep = encoder.tokenizer.encode("").ids  # the special tokens around every text
    body = encoder.max_tokens - 2
    starts = range(0, min(len(ids) - body, count * body), body)
    return [[cls, *ids[s : s + body], sep] for s in starts]


def text_blocks(paths: list[Path], limit: int) -> list[str]:
    """Up to ``limit`` PyMuPDF text blocks of at least 20 characters from ``paths``, in order."""
    blocks: list[str] = []
    for path in paths:
        with pymupdf.open(path) as pdf:
            for page in pdf:
                blocks += [b[4].strip() for b in page.get_text("blocks") if len(b[4].strip()) >= 20]
    return blocks[:limit]


def agreement(reference: np.ndarray, vectors: np.ndarray) -> str:
    """Cosine to the reference vectors, and the nearest-neighbour shortfall (see the module docstring)."""
    cosine = (reference * vectors).sum(axis=1)
    ref_sim, sim = reference @ reference.T, vectors @ vectors.T
    np.fill_diagonal(ref_sim, -2.0)
    np.fill_diagonal(sim, -2.0)
    rows = np.arange(len(reference))
    shortfall = ref_sim[rows, ref_sim.argmax(axis=1)] - ref_sim[rows, sim.argmax(axis=1)]
    return (
        f"{cosine.mean():.5f} | {np.quantile(cosine, 0.01):.5f} | {cosine.min():.5f} | {shortfall.max():.4f} | "
        f"{(ref_sim.argmax(axis=1) == sim.argmax(axis=1)).mean():.2f}"
    )


def torch_runner(encoder: Encoder, ids: list[list[int]]):
    """Embeds ``ids`` with the sentence-transformers model's own forward, in the same batches (what
    ``SentenceTransformer.encode`` runs after tokenising)."""
    import torch

    model = encoder.model

    def run() -> np.ndarray:
        out = np.empty((len(ids), encoder.dimension), dtype=np.float32)
        for rows in encoder.batches([len(row) for row in ids]):
            batch = [ids[i] for i in rows]
            width = max(map(len, batch))
            input_ids = torch.tensor([row + [0] * (width - len(row)) for row in batch])
            mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch])
            with torch.inference_mode():
                vectors = model({"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(mask)})
            out[rows] = torch.nn.functional.normalize(vectors["sentence_embedding"], dim=1).numpy()
        return out

    return run


def onnx_runner(encoder: Encoder, session, ids: list[list[int]]):
    """Embeds ``ids`` with ``session`` in Docket's batches (what ``Encoder.encode`` does after tokenising)."""
    return lambda: encode_like_docket(encoder, session, ids)


def encode_like_docket(encoder: Encoder, session, ids: list[list[int]]) -> np.ndarray:
    """Vectors of texts of any lengths through ``session``, sorted and batched as ``Encoder.encode`` does."""
    out = np.empty((len(ids), encoder.dimension), dtype=np.float32)
    for rows in encoder.batches([len(row) for row in ids]):
        out[rows] = encoder.encode_ids(session, [ids[i] for i in rows])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filing", default="AMAZON_2017_10K.pdf")
    parser.add_argument("--chunks", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unfused", action="store_true", help="also time the exports made without fusion")
    parser.add_argument("--recipes", default="", help="int8 recipes FP32_DOWN:ALPHA, comma-separated, e.g. 3:0,1:0.5")
    parser.add_argument("--paragraphs", action="store_true", help="also measure agreement on held-out paragraphs")
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
            systems[f"onnx-{precision}-unfused"] = onnx_runner(fp32, open_onnx_session(str(path), None), ids)
    sessions = {"onnx-fp32": fp32.query_session, "onnx-int8": int8.onnx_session}
    for recipe in filter(None, args.recipes.split(",")):
        down, alpha = recipe.split(":")
        name = f"int8 fp32-down={down} alpha={alpha}"
        path = Path(scratch.name) / f"recipe-{down}-{alpha}.onnx"
        print(f"exporting {name} ...", flush=True)
        export_onnx(fp32.model_path, path, "int8", fp32_down_projections=int(down), smoothing_alpha=float(alpha))
        sessions[name] = open_onnx_session(str(path), None)
        systems[name] = onnx_runner(int8, sessions[name], ids)

    vectors = {name: run() for name, run in systems.items()}  # warm-up, and the vectors compared
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    for round_ in range(args.rounds):
        for name in list(systems)[:: 1 if round_ % 2 == 0 else -1]:
            started = time.perf_counter()
            systems[name]()
            seconds[name].append(time.perf_counter() - started)
    paragraphs = {}
    if args.paragraphs:
        held_out = {
            "CUAD contracts": text_blocks(sorted(CUAD_PDFS.glob("*.pdf"))[:6], 400),
            "FinanceBench filings": text_blocks([EVAL_DIR / "pdfs" / name for name in PARAGRAPH_FILINGS], 600),
        }
        for label, texts in held_out.items():
            ids_of = torch_encoder.token_ids(texts)
            reference = torch_encoder.encode(texts)
            rows = {
                name: agreement(reference, encode_like_docket(int8, session, ids_of))
                for name, session in sessions.items()
            }
            paragraphs[label] = (len(texts), rows)
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
    for label, (count, rows) in paragraphs.items():
        print(f"\nagreement with torch on {count} paragraphs of {label}:")
        print("| system | cosine mean | 1st percentile | min | nearest-neighbour shortfall, max | same nearest |")
        print("|---|---|---|---|---|---|")
        for name, row in rows.items():
            print(f"| {name} | {row} |")


if __name__ == "__main__":
    main()
