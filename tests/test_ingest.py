"""Ingest on real PDFs: provenance, token limits, dedup, versions, removal, crash consistency."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pymupdf
import pytest
from sqlalchemy import select

from conftest import DRIVEN, DUOS, NETGEAR, SAMPLES
from ingest.registry import ChunkRow, DocumentVersion, PageRow
from ingest.store import DocumentStore
from ingest.vector_index import MANIFEST_FILE


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _store(home: Path) -> DocumentStore:
    return DocumentStore(f"sqlite:///{home / 'registry.db'}", home / "index")


def _all(store: DocumentStore, model):
    with store.sessions() as session:
        return session.execute(select(model)).scalars().all()


def test_chunks_point_at_their_exact_page_span_and_boxes(ingested_samples: Path):
    store = _store(ingested_samples)
    pages = {(p.version_id, p.number): p for p in _all(store, PageRow)}
    versions = {v.id: v for v in _all(store, DocumentVersion)}
    chunks = _all(store, ChunkRow)
    assert len(chunks) > 100
    pdfs = {path.name: pymupdf.open(path) for path in SAMPLES.glob("*.pdf")}
    names = {v.id: d.name for d in store.documents() for v in d.versions}
    for chunk in chunks:
        page = pages[(chunk.version_id, chunk.page)]
        # The recorded span is exactly the chunk's text in the stored page text ...
        assert page.text[chunk.char_start : chunk.char_end] == chunk.text
        # ... and that text really is on that page of the PDF, read independently.
        pdf_page = pdfs[names[chunk.version_id]].load_page(chunk.page - 1)
        assert _squash(chunk.text) in _squash(pdf_page.get_text()) or all(
            word in _squash(pdf_page.get_text()) for word in _squash(chunk.text).split()[:8]
        )
        # Its boxes lie on the page and hold its words.
        assert chunk.boxes, chunk.id
        first_box = pymupdf.Rect(chunk.boxes[0])
        assert pdf_page.rect.contains(first_box) or pdf_page.rect.intersects(first_box)
        assert chunk.doc_sha256 == versions[chunk.version_id].sha256
        assert chunk.method == "pymupdf"


def test_no_chunk_is_longer_than_the_encoder_reads(ingested_samples: Path):
    store = _store(ingested_samples)
    limit = store.encoder.max_tokens - 2  # [CLS] and [SEP]
    for chunk in _all(store, ChunkRow):
        assert store.encoder.count_tokens(chunk.text) <= limit
        assert chunk.token_count <= limit


def test_same_bytes_again_is_a_no_op_even_under_another_name(home: Path, tmp_path: Path):
    store = _store(home)
    first = store.ingest([SAMPLES / NETGEAR])
    assert first.count("added") == 1
    chunks_before = len(_all(store, ChunkRow))
    copy = tmp_path / "renamed.pdf"
    shutil.copy(SAMPLES / NETGEAR, copy)
    again = store.ingest([SAMPLES / NETGEAR, copy])
    assert [r.outcome for r in again.results] == ["unchanged", "unchanged"]
    assert len(_all(store, ChunkRow)) == chunks_before
    assert len(_all(store, DocumentVersion)) == 1


def _pdf_with(path: Path, paragraphs: list[str]) -> None:
    doc = pymupdf.open()
    for text in paragraphs:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 770), text, fontsize=11)
    doc.save(path)


def test_changed_file_is_a_new_version_and_the_old_one_leaves_the_index(home: Path, tmp_path: Path):
    store = _store(home)
    path = tmp_path / "policy.pdf"
    _pdf_with(path, ["The retention period for client files is seven years from the end of the engagement."])
    assert store.ingest([path]).results[0].outcome == "added"
    _pdf_with(path, ["The retention period for client files is ten years after the relationship ends."])
    result = store.ingest([path]).results[0]
    assert (result.outcome, result.version) == ("new-version", 2)

    doc = store.resolve("policy.pdf")
    assert [(v.version, v.status) for v in doc.versions] == [(1, "superseded"), (2, "current")]
    assert "seven years" in doc.versions[0].pages[0].text  # the old version stays readable
    hits = store.search("How long are client files retained?", 5)
    assert hits and all("ten years" in h.text for h in hits)
    assert store.vectors().count == len(store.live_chunk_ids())


def test_unchanged_text_reuses_stored_vectors(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = _store(home)
    path = tmp_path / "memo.pdf"
    kept = "Payment is due within thirty days of the invoice date, without set-off or deduction."
    _pdf_with(path, [kept, "Original closing page about notices to the registered office."])
    store.ingest([path])
    encoded: list[str] = []
    real_encode = store.encoder.encode
    monkeypatch.setattr(store.encoder, "encode", lambda texts: encoded.extend(texts) or real_encode(texts))
    _pdf_with(path, [kept, "A rewritten closing page about notices by electronic mail."])
    store.ingest([path])
    assert encoded and all("Payment is due" not in t for t in encoded)


def test_remove_takes_a_document_out_of_search_but_keeps_its_record(home: Path):
    store = _store(home)
    store.ingest([SAMPLES / NETGEAR, SAMPLES / DUOS])
    netgear = store.resolve(NETGEAR)
    store.remove(NETGEAR)
    hits = store.search("laws of the State of California", 10)
    assert hits and all(h.doc_name != NETGEAR for h in hits)
    assert store.resolve(NETGEAR).versions[0].status == "removed"
    assert [d.name for d in store.documents()] == [DUOS]
    assert netgear.id in [d.id for d in store.documents(include_removed=True)]


def test_search_filters_by_document_and_collection(home: Path):
    store = _store(home)
    store.ingest([SAMPLES / NETGEAR], "a")
    store.ingest([SAMPLES / DRIVEN], "b")
    only_b = store.search("governing law", 5, collection="b")
    assert only_b and {h.doc_name for h in only_b} == {DRIVEN}
    netgear = store.resolve(NETGEAR)
    only_netgear = store.search("governing law", 5, document_ids=[netgear.id])
    assert only_netgear and {h.doc_name for h in only_netgear} == {NETGEAR}


def test_a_crash_after_the_commit_is_repaired_from_the_registry(home: Path, monkeypatch: pytest.MonkeyPatch):
    store = _store(home)
    store.ingest([SAMPLES / NETGEAR])

    def die(*_a, **_k):
        raise KeyboardInterrupt  # Ctrl-C between the SQL commit and the FAISS save

    monkeypatch.setattr("ingest.vector_index.VectorIndex.save", die)
    with pytest.raises(KeyboardInterrupt):
        store.ingest([SAMPLES / DUOS])
    monkeypatch.undo()

    reopened = _store(home)  # a new process: the manifest is one generation behind the registry
    assert reopened.vectors().count == len(reopened.live_chunk_ids())
    assert any(h.doc_name == DUOS for h in reopened.search("laws of the State of Florida", 5))


def test_a_crash_before_the_commit_leaves_nothing_behind(home: Path, monkeypatch: pytest.MonkeyPatch):
    store = _store(home)
    store.ingest([SAMPLES / NETGEAR])
    before = (len(_all(store, ChunkRow)), len(_all(store, PageRow)), store.generation())

    def die(_texts):
        raise KeyboardInterrupt  # Ctrl-C while encoding

    monkeypatch.setattr(store.encoder, "encode", die)
    with pytest.raises(KeyboardInterrupt):
        store.ingest([SAMPLES / DUOS])
    assert (len(_all(store, ChunkRow)), len(_all(store, PageRow)), store.generation()) == before
    assert [d.name for d in store.documents()] == [NETGEAR]


def test_a_tampered_index_file_is_rebuilt(home: Path):
    store = _store(home)
    store.ingest([SAMPLES / NETGEAR])
    (home / "index" / "faiss.index").write_bytes(b"garbage")
    reopened = _store(home)
    assert reopened.vectors().count == len(reopened.live_chunk_ids()) > 0
    assert (home / "index" / MANIFEST_FILE).exists()


def test_pypdf_reads_what_pymupdf_cannot(home: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(*_a, **_k):
        raise RuntimeError("cannot open broken document")

    monkeypatch.setattr(pymupdf, "open", broken)
    store = _store(home)
    result = store.ingest([SAMPLES / NETGEAR]).results[0]
    assert result.outcome == "added", result.error
    pages = _all(store, PageRow)
    assert pages and {p.method for p in pages} == {"pypdf"}
    assert "California" in " ".join(p.text for p in pages)
