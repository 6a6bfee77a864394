"""What keeps an ingest's memory bounded on a long document must not change what is ingested: a PDF read
in slices (reopened every few pages) gives the same pages, and chunks encoded in groups get the same
vectors, to the bit, as one call over the whole document (int8 vectors depend on their batch mates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf
import pytest
from sqlalchemy import select

from conftest import DRIVEN, DUOS, NETGEAR, SAMPLES
from ingest import extract, ingestion
from ingest.config import EmbeddingSettings, OcrSettings
from ingest.embedding import Encoder, encode_groups, length_batches
from ingest.registry import ChunkRow, PageRow
from ingest.store import DocumentStore


@pytest.fixture(scope="module")
def int8_encoder() -> Encoder:
    return Encoder(EmbeddingSettings(backend="onnx-int8", threads=2))


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    texts = []
    for name in (DRIVEN, DUOS, NETGEAR):
        with pymupdf.open(SAMPLES / name) as pdf:
            for page in pdf:
                texts += [block[4].strip() for block in page.get_text("blocks") if len(block[4].strip()) >= 20]
    return texts[:120]


def test_encode_groups_are_whole_batches_of_the_one_call(int8_encoder: Encoder, paragraphs: list[str]):
    groups = encode_groups(int8_encoder, paragraphs, group_texts=16)
    assert len(groups) > 3
    assert sorted(i for group in groups for i in group) == list(range(len(paragraphs)))
    # Every group is a run of the batches Encoder.encode cuts for the whole list.
    ids = int8_encoder.token_ids(paragraphs)
    order = sorted(range(len(paragraphs)), key=lambda i: len(ids[i]), reverse=True)
    settings = int8_encoder.settings
    batches = [order[b] for b in length_batches([len(ids[i]) for i in order], settings.batch_size, settings.max_batch_tokens)]
    cuts, at = set(), 0
    for batch in batches:
        at += len(batch)
        cuts.add(at)
    at = 0
    for group in groups:
        at += len(group)
        assert at in cuts


def test_vectors_encoded_in_groups_are_the_one_calls_to_the_bit(int8_encoder: Encoder, paragraphs: list[str]):
    whole = int8_encoder.encode(paragraphs)
    grouped = np.zeros_like(whole)
    for group in encode_groups(int8_encoder, paragraphs, group_texts=16):
        grouped[group] = int8_encoder.encode([paragraphs[i] for i in group])
    assert np.array_equal(grouped, whole)
    # The guard is needed: the same texts cut into other batches get other int8 vectors.
    halves = np.concatenate([int8_encoder.encode(paragraphs[:7]), int8_encoder.encode(paragraphs[7:])])
    assert not np.array_equal(halves, whole)


def test_a_pdf_read_in_slices_gives_the_same_pages(monkeypatch: pytest.MonkeyPatch):
    ocr = OcrSettings(mode="never")
    whole = extract.read_document(SAMPLES / NETGEAR, ocr)
    assert len(whole.pages) > 4
    opened = []
    real_open = pymupdf.open
    monkeypatch.setattr(pymupdf, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    monkeypatch.setattr(extract, "PAGES_PER_OPEN", 2)
    sliced = extract.read_document(SAMPLES / NETGEAR, ocr)
    assert len(opened) == (len(whole.pages) + 1) // 2  # really reopened
    assert sliced == whole


def _ingested(home: Path) -> tuple[list[tuple], list[tuple], int]:
    store = DocumentStore(
        f"sqlite:///{home / 'registry.db'}", home / "index", EmbeddingSettings(backend="onnx-int8", threads=2)
    )
    report = store.ingest([SAMPLES / NETGEAR, SAMPLES / DUOS])
    assert report.count("added") == 2, report.results
    with store.sessions() as session:
        chunks = [
            (r.id, r.page, r.char_start, r.char_end, r.text, r.context, r.boxes, r.embedding)
            for r in session.execute(select(ChunkRow).order_by(ChunkRow.id)).scalars()
        ]
        pages = [(p.number, p.text, p.spans) for p in session.execute(select(PageRow).order_by(PageRow.id)).scalars()]
    assert store.vectors().count == len(chunks)
    return chunks, pages, store.generation()


def test_ingest_in_slices_and_groups_stores_what_one_pass_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    one_pass = _ingested(tmp_path / "one-pass")
    monkeypatch.setattr(extract, "PAGES_PER_OPEN", 3)
    monkeypatch.setattr(ingestion, "ENCODE_GROUP_TEXTS", 8)
    sliced = _ingested(tmp_path / "sliced")
    assert len(sliced[0]) > 3 * 8  # several groups per document
    assert sliced == one_pass
