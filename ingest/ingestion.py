"""Ingest files: hash, extract, chunk, embed, then commit a version, one file at a time.

One file is ingested as: hash its bytes (same bytes already here -> nothing to do), extract its pages,
chunk them, encode the chunks (re-using stored vectors of identical text), then write the version, its
pages and chunks with their vectors in ONE registry transaction. The FAISS index is updated after the
commit and saved atomically; if the process dies in between, the index's manifest no longer matches the
registry's generation and the index is rebuilt from the registry on the next open. An interrupted
ingest therefore leaves either the whole file or nothing.

Each file is bounded by ``IngestSettings``: its page count (checked before any page is read) and a
deadline checked between pages and steps but never inside the commit, so a file over time leaves
nothing either. Paths are stored and reported as ``display_path`` gives them (terminal escapes and
bytes that are not UTF-8 escaped), and any failure of one file, expected or not, is one line in its
``FileResult`` while the batch goes on. The Ray engine (pipeline/compute/) runs the same steps apart:
``find_unchanged`` first, ``chunk_for_encoder`` and ``encode_texts`` on its workers, ``commit_version`` last.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from ingest import progress
from ingest.chunking import chunk_document
from ingest.config import ChunkingSettings, IngestSettings, OcrSettings
from ingest.documents import DocumentTags
from ingest.embedding import Encoder, encode_groups
from ingest.extract import SUPPORTED_SUFFIXES, read_document, sha256_file
from ingest.index_cache import IndexCache
from ingest.models import Chunk, Deadline, ExtractedDocument, IngestError, PageText, display_path, printable
from ingest.registry import ChunkRow, Document, DocumentVersion, PageRow, bump_generation, retire_versions

log = logging.getLogger(__name__)

Outcome = Literal["added", "new-version", "unchanged", "failed"]


@dataclass
class FileResult:
    path: str
    outcome: Outcome
    sha256: str | None = None
    document_id: int | None = None
    version: int | None = None
    pages: int = 0
    chunks: int = 0
    ocr_pages: int = 0
    error: str | None = None  # one line, for outcome == "failed"
    warnings: list[str] = field(default_factory=list)  # what the PDF readers complained of (first few)


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.outcome == "failed"]

    def summary(self) -> dict[str, int]:
        done = [r for r in self.results if r.outcome in ("added", "new-version")]
        return {
            "files": len(self.results),
            "added": self.count("added"),
            "new_versions": self.count("new-version"),
            "unchanged": self.count("unchanged"),
            "failed": self.count("failed"),
            "pages": sum(r.pages for r in done),
            "ocr_pages": sum(r.ocr_pages for r in done),
            "chunks": sum(r.chunks for r in done),
        }


def iter_input_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named directly (whatever their suffix, so a bad one is reported) and supported files in folders."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES and not child.name.startswith("."):
                    yield child
        else:
            yield path


def embedding_text(chunk: Chunk) -> str:
    """What a chunk's vector is of: its context (section heading etc.), then its text."""
    return f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text


ENCODE_GROUP_TEXTS = 512  # about this many texts per Encoder.encode call (see ingest.embedding.encode_groups)


def chunk_for_encoder(extracted: ExtractedDocument, encoder: Encoder, chunking: ChunkingSettings) -> list[Chunk]:
    """The chunks of a document for this encoder (only its tokenizer is loaded)."""
    # The encoder's two special tokens ([CLS], [SEP]) count against its max sequence length.
    return chunk_document(extracted, encoder.token_offsets, chunking, encoder.max_tokens - 2)


def encode_texts(
    encoder: Encoder, texts: list[str], between: Callable[[int], None] | None = None, done: int = 0
) -> np.ndarray:
    """Vectors of ``texts`` in ingest's groups and batches. A vector depends on the texts batched with it
    (to the last bit in fp32, by more in int8), so every engine encodes a document's texts through here:
    the same texts, the same vectors. ``between(done)`` is called before each group, ``done`` counting up."""
    vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    for group in encode_groups(encoder, texts, ENCODE_GROUP_TEXTS):
        if between:
            between(done)
        vectors[group] = encoder.encode([texts[i] for i in group])
        done += len(group)
    return vectors


def page_row(version_id: int, page: PageText) -> PageRow:
    return PageRow(
        version_id=version_id,
        number=page.number,
        text=page.text,
        method=page.method,
        engine_version=page.engine_version,
        route=page.route,
        dpi=page.dpi,
        confidence=page.confidence,
        width=page.width,
        height=page.height,
        notes=list(page.notes),
        spans=[[s.start, s.end, *s.box, s.confidence] for s in page.spans],
        tables=[t.to_dict() for t in page.tables],  # ingest.tables.TableRecord.from_dict reads them back
    )


class Ingestion:
    def __init__(
        self, sessions: sessionmaker, indexes: IndexCache, encoder: Encoder, chunking: ChunkingSettings,
        ocr: OcrSettings, limits: IngestSettings,
    ):
        self.sessions = sessions
        self.indexes = indexes
        self.encoder = encoder
        self.chunking = chunking
        self.ocr = ocr
        self.limits = limits
        self._encoder_ready = False

    def ingest(
        self,
        paths: Iterable[Path],
        collection: str = "default",
        on_file: Callable[[FileResult], None] | None = None,
        tags: DocumentTags | None = None,
    ) -> IngestReport:
        """Ingest every file; a failure is recorded and the batch goes on. ``tags`` are set on every
        document of the batch, in the same transaction as its version (or, for unchanged bytes, alone)."""
        report = IngestReport()
        tags = tags or DocumentTags()
        with self.indexes.writer_lock():
            for path in iter_input_files(paths):
                try:
                    result = self._ingest_file(path, collection, tags)
                except IngestError as exc:
                    result = FileResult(display_path(path), "failed", error=printable(str(exc)))
                except Exception as exc:  # a reader's or library's bug must not cost the rest of the batch
                    log.debug("ingesting %s failed", display_path(path), exc_info=True)
                    result = FileResult(display_path(path), "failed", error=printable(
                        f"{display_path(path)}: unexpected error ({type(exc).__name__}: {exc}); "
                        "run with -v for the details and report it"
                    ))
                report.results.append(result)
                if on_file:
                    on_file(result)
        return report


    def _ingest_file(self, path: Path, collection: str, tags: DocumentTags) -> FileResult:
        name = display_path(path)
        deadline = Deadline(self.limits.document_timeout_s)
        _, unchanged = self.find_unchanged(path, collection, tags)
        if unchanged is not None:
            return unchanged

        extracted = read_document(path, self.ocr, self.limits, deadline)
        deadline.check(name, "stopped after reading its pages, before chunking")
        deadline.extend(self._ready_encoder())
        chunks = self._chunk(extracted)
        deadline.check(name, "stopped after chunking, before embedding")
        def between(done: int) -> None:
            deadline.check(name, f"stopped after embedding {done} of {len(chunks)} chunks")
            progress.report("embedding", done, len(chunks))

        vectors = self._embed(chunks, between)
        deadline.check(name, "stopped after embedding, before storing")  # the last check: the commit is never cut
        progress.report("storing", len(chunks), len(chunks))
        return self.commit_version(path, collection, extracted, chunks, vectors, tags)


    def find_unchanged(self, path: Path, collection: str, tags: DocumentTags) -> tuple[str, FileResult | None]:
        """Hash ``path``: (its SHA-256, the "unchanged" result when those bytes are the current version of a
        document in ``collection``, the document re-tagged; else None). Ingest's first step, also the Ray
        driver's (pipeline/compute/ingest.py), which must skip the same files."""
        name = display_path(path)
        try:
            sha256, _ = sha256_file(path)
        except FileNotFoundError as exc:
            raise IngestError(name, "no such file", "check the path") from exc
        except IsADirectoryError as exc:
            raise IngestError(name, "is a folder where a file was expected") from exc
        except OSError as exc:
            raise IngestError(name, f"cannot read the file ({exc.strerror or exc})", "check its permissions") from exc
        with self.sessions.begin() as session:
            existing = session.execute(
                select(DocumentVersion)
                .join(Document)
                .where(Document.collection == collection, DocumentVersion.sha256 == sha256)
                .where(DocumentVersion.status == "current")
            ).scalar_one_or_none()
            if existing is not None:
                tags.apply(existing.document)  # re-ingesting with --type/--date re-tags
                return sha256, FileResult(name, "unchanged", sha256, existing.document_id, existing.version)
        return sha256, None


    def commit_version(
        self, path: Path, collection: str, extracted: ExtractedDocument, chunks: list[Chunk], vectors: np.ndarray,
        tags: DocumentTags,
    ) -> FileResult:
        """Store a prepared version (its pages, chunks and their vectors) in ONE transaction, then update the
        FAISS index; the caller holds the index cache's ``writer_lock``. Ingest's last step, wherever the first ran."""
        name = display_path(path)
        document, version, chunk_ids, retired_ids = self._commit(path, collection, extracted, chunks, vectors, tags)
        self.indexes.update(chunk_ids, vectors, retired_ids)
        return FileResult(
            name,
            "new-version" if version.version > 1 else "added",
            extracted.sha256,
            document.id,
            version.version,
            pages=len(extracted.pages),
            chunks=len(chunks),
            ocr_pages=sum(p.method not in ("pymupdf", "pypdf") for p in extracted.pages),
            warnings=list(extracted.warnings),
        )


    def _ready_encoder(self) -> float:
        """Load the encoder (tokenizer and model) if not yet loaded; the seconds it took. Loading is the
        process's cost, once, not the document's: it is left out of the document's time limit."""
        if self._encoder_ready:
            return 0.0
        started = time.monotonic()
        self.encoder.encode(["Docket"])  # loads the tokenizer and whichever model the backend runs
        self._encoder_ready = True
        return time.monotonic() - started


    def _chunk(self, extracted: ExtractedDocument) -> list[Chunk]:
        return chunk_for_encoder(extracted, self.encoder, self.chunking)


    def _embed(self, chunks: list[Chunk], between: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for ``chunks``; a chunk already encoded by the same model is not encoded again.

        The vector is of context + text, so a stored vector is reused only when both are the same.
        ``between(chunks_done)`` is called before each encoder group (the deadline's check)."""
        vectors = np.zeros((len(chunks), self.encoder.dimension), dtype=np.float32)
        known = self.stored_vectors(chunks)
        keys = [(c.text_sha256, c.context) for c in chunks]
        todo = [i for i, key in enumerate(keys) if key not in known]
        for i, key in enumerate(keys):
            if key in known:
                vectors[i] = np.frombuffer(known[key], dtype=np.float32)
        if todo:
            texts = [embedding_text(chunks[i]) for i in todo]
            vectors[todo] = encode_texts(self.encoder, texts, between, done=len(chunks) - len(todo))
        return vectors


    def stored_vectors(self, chunks: list[Chunk]) -> dict[tuple[str, str], bytes]:
        """(text SHA-256, context) -> the vector the registry holds for it from this encoder, of the chunks
        whose text is stored already: those are not encoded again."""
        hashes = sorted({c.text_sha256 for c in chunks})
        known: dict[tuple[str, str], bytes] = {}
        with self.sessions() as session:
            for start in range(0, len(hashes), 500):
                rows = session.execute(
                    select(ChunkRow.text_sha256, ChunkRow.context, ChunkRow.embedding).where(
                        ChunkRow.embedding_model == self.encoder.model_id,
                        ChunkRow.text_sha256.in_(hashes[start : start + 500]),
                    )
                )
                known.update({(h, context): blob for h, context, blob in rows})
        return known


    def _commit(
        self, path: Path, collection: str, extracted: ExtractedDocument, chunks: list[Chunk], vectors: np.ndarray,
        tags: DocumentTags,
    ) -> tuple[Document, DocumentVersion, np.ndarray, list[int]]:
        # Stored as UTF-8: a name's bytes that are not UTF-8 as \\xff escapes (the name, shown everywhere,
        # has its terminal escapes escaped too; the source key keeps them, so two such files stay two).
        source_key = os.fsencode(path.resolve()).decode("utf-8", "backslashreplace")
        with self.sessions.begin() as session:
            document = session.execute(
                select(Document).where(Document.collection == collection, Document.source_key == source_key)
            ).scalar_one_or_none()
            if document is None:
                document = Document(collection=collection, source_key=source_key, name=display_path(path.name))
                session.add(document)
                session.flush()
            document.removed_at = None
            tags.apply(document)
            retired_ids = retire_versions(session, document.id, status="superseded")
            number = (
                session.execute(
                    select(func.max(DocumentVersion.version)).where(DocumentVersion.document_id == document.id)
                ).scalar()
                or 0
            ) + 1
            version = DocumentVersion(
                document_id=document.id,
                sha256=extracted.sha256,
                version=number,
                size_bytes=extracted.size_bytes,
                media_type=extracted.media_type,
                title=extracted.title,
                page_count=len(extracted.pages),
            )
            session.add(version)
            session.flush()
            session.add_all(page_row(version.id, page) for page in extracted.pages)
            rows = [
                ChunkRow(
                    version_id=version.id,
                    doc_sha256=c.doc_sha256,
                    page=c.page,
                    char_start=c.char_start,
                    char_end=c.char_end,
                    text=c.text,
                    text_sha256=c.text_sha256,
                    token_count=c.token_count,
                    method=c.method,
                    confidence=c.confidence,
                    boxes=[list(b) for b in c.boxes],
                    context=c.context,
                    embedding_model=self.encoder.model_id,
                    embedding=vectors[i].tobytes(),
                )
                for i, c in enumerate(chunks)
            ]
            session.add_all(rows)
            session.flush()
            bump_generation(session)
            chunk_ids = np.asarray([r.id for r in rows], dtype=np.int64)
        return document, version, chunk_ids, retired_ids

