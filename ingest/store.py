"""DocumentStore: ingest files, list/show/remove documents, and search the live chunks.

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
``FileResult`` while the batch goes on.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ingest.chunking import chunk_document
from ingest.config import ChunkingSettings, EmbeddingSettings, IngestSettings, OcrSettings
from ingest.embedding import Encoder, encode_groups
from ingest.extract import SUPPORTED_SUFFIXES, read_document, sha256_file
from ingest.lexical import LexicalIndex
from ingest.models import Chunk, Deadline, ExtractedDocument, IngestError, PageText, display_path, printable
from ingest.query import plain_query, plan_query
from ingest.registry import ChunkRow, Document, DocumentVersion, IndexState, PageRow, open_registry, utcnow
from ingest.retrieval import ChunkFacts, RetrievalOptions, SearchMode, mmr, needs_facts, rank_chunks, rerank
from ingest.structure import document_label
from ingest.vector_index import VectorIndex, index_kind_for

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


# The texts BM25 indexes, named in its saved copy's manifest (see DocumentStore._rebuild_lexical): the
# layout, and the source of ingest/structure.py, whose document_label turns a file name into words.
LEXICAL_LAYOUT = "document_label(name)\\ncontext\\ntext/1"


@lru_cache(maxsize=1)
def lexical_recipe() -> str:
    structure = Path(__file__).with_name("structure.py").read_bytes()
    return f"{LEXICAL_LAYOUT} structure.py:{hashlib.sha256(structure).hexdigest()}"


@dataclass(frozen=True)
class VersionFacts:
    version: int
    sha256: str
    status: str  # current, superseded or removed
    pages: int
    media_type: str
    size_bytes: int


@dataclass(frozen=True)
class DocumentFacts:
    """What the registry says of one document, without page text (for the audit events of pipeline/)."""

    id: int
    name: str
    collection: str
    source: str
    doc_type: str | None
    doc_date: date | None
    versions: tuple[VersionFacts, ...]  # oldest first


@dataclass(frozen=True)
class DocumentTags:
    """What the user says a document is and its own date; None leaves a field as it was."""

    doc_type: str | None = None
    doc_date: date | None = None

    def apply(self, document: Document) -> None:
        if self.doc_type is not None:
            document.doc_type = self.doc_type
        if self.doc_date is not None:
            document.doc_date = self.doc_date


@dataclass(frozen=True)
class DocumentFilter:
    """Which documents a search may draw on. Types match exactly (case-insensitively); ``since`` and
    ``until`` bound the document's own date, both inclusive, and a document with no date never matches
    a date bound (a filter by date is a promise about every hit)."""

    collection: str | None = None
    document_ids: tuple[int, ...] = ()
    doc_types: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    # The documents the caller may read (pipeline.identity.access.allowed_documents); None: any. Unlike
    # ``document_ids``, an empty set admits nothing: a user with no grant sees no document.
    allowed_document_ids: frozenset[int] | None = None

    @property
    def by_metadata(self) -> bool:
        return bool(self.doc_types) or self.since is not None or self.until is not None


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


@dataclass(frozen=True)
class ChunkHit:
    """A search result with everything needed to cite it."""

    chunk_id: int
    score: float
    doc_sha256: str
    doc_name: str
    document_id: int
    page: int
    char_start: int
    char_end: int
    text: str
    method: str
    confidence: float | None
    context: str


def iter_input_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named directly (whatever their suffix, so a bad one is reported) and supported files in folders."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES and not child.name.startswith("."):
                    yield child
        else:
            yield path


class DocumentStore:
    def __init__(
        self,
        registry_url: str,
        index_dir: Path,
        embedding: EmbeddingSettings | None = None,
        chunking: ChunkingSettings | None = None,
        ocr: OcrSettings | None = None,
        limits: IngestSettings | None = None,
    ):
        self.sessions: sessionmaker = open_registry(registry_url)
        self.limits = limits or IngestSettings()
        self.index_dir = Path(index_dir)
        self.encoder = Encoder(embedding or EmbeddingSettings())
        self.chunking = chunking or ChunkingSettings()
        self.ocr = ocr or OcrSettings()
        # The FAISS index searches read. It is never changed once published: an update builds a copy and
        # swaps it in (_update_index), so a search holding the old one (the service's asks run beside an
        # upload's ingest) reads a whole index. The condition guards the swap and lets a search wait for
        # this process's writer instead of rebuilding the index the writer is about to publish.
        self._vectors: VectorIndex | None = None
        self._vectors_changed = threading.Condition()
        self._writer_thread: int | None = None  # the thread inside _writer_lock, if any
        self._lexical: tuple[int, LexicalIndex] | None = None  # (generation, index)
        self._allowed_cache: dict[tuple, list[int]] = {}
        self._encoder_ready = False

    # -- ingest -------------------------------------------------------------------------------------
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
        with self._writer_lock():
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
        vectors = self._embed(chunks, lambda done: deadline.check(name, f"stopped after embedding {done} of {len(chunks)} chunks"))
        deadline.check(name, "stopped after embedding, before storing")  # the last check: the commit is never cut
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
        FAISS index; the caller holds ``writer_lock``. Ingest's last step, wherever the first ran."""
        name = display_path(path)
        document, version, chunk_ids, retired_ids = self._commit(path, collection, extracted, chunks, vectors, tags)
        self._update_index(chunk_ids, vectors, retired_ids)
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
            texts = [_embedding_text(chunks[i]) for i in todo]
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
            retired_ids = self._retire_versions(session, document.id, status="superseded")
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
            session.add_all(_page_row(version.id, page) for page in extracted.pages)
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
            _bump_generation(session)
            chunk_ids = np.asarray([r.id for r in rows], dtype=np.int64)
        return document, version, chunk_ids, retired_ids

    @staticmethod
    def _retire_versions(session: Session, document_id: int, status: str) -> list[int]:
        """Mark the current version(s) of a document ``status``; return their chunk ids (leaving the index)."""
        current = session.execute(
            select(DocumentVersion.id).where(
                DocumentVersion.document_id == document_id, DocumentVersion.status == "current"
            )
        ).scalars().all()
        if not current:
            return []
        session.execute(update(DocumentVersion).where(DocumentVersion.id.in_(current)).values(status=status))
        return list(session.execute(select(ChunkRow.id).where(ChunkRow.version_id.in_(current))).scalars())

    # -- the derived indexes ------------------------------------------------------------------------
    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One writer at a time per workspace index (several `docket ingest` processes queue here)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with open(self.index_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                with self._vectors_changed:
                    self._writer_thread = threading.get_ident()
                    self._vectors = None  # another process may have written since we last looked
                self.vectors()  # load (or rebuild) now, so each file below updates it incrementally
                yield
            finally:
                with self._vectors_changed:
                    self._writer_thread = None
                    self._vectors_changed.notify_all()
                fcntl.flock(fh, fcntl.LOCK_UN)

    writer_lock = _writer_lock  # the Ray driver holds it for its run, as ingest() does

    def generation(self) -> int:
        with self.sessions() as session:
            return session.get(IndexState, 1).generation

    def vectors(self) -> VectorIndex:
        """The FAISS index at the registry's generation; the caller may search it for as long as it likes."""
        current = self._vectors  # read once: another thread may swap it
        if current is not None and current.generation == self.generation():
            return current
        with self._vectors_changed:
            waited_until = time.monotonic() + WRITER_WAIT_S
            while True:
                generation, current = self.generation(), self._vectors
                if current is not None and current.generation == generation:
                    return current
                # This process's ingest has committed a generation and will swap in its index next: wait
                # for it, rather than rebuild from the registry what it is about to publish.
                left = waited_until - time.monotonic()
                if self._writer_thread in (None, threading.get_ident()) or left <= 0:
                    break
                self._vectors_changed.wait(left)
            loaded = VectorIndex.load(self.index_dir, self.encoder.model_id, self.encoder.dimension, generation)
            if loaded is None:
                loaded = self._rebuild_vectors(generation)
            self._vectors = loaded
            self._vectors_changed.notify_all()
            return loaded

    def _rebuild_vectors(self, generation: int) -> VectorIndex:
        log.info("rebuilding the FAISS index from the registry (generation %d)", generation)
        ids, blobs = [], []
        with self.sessions() as session:
            for chunk_id, blob in session.execute(
                _live_chunks(select(ChunkRow.id, ChunkRow.embedding)).where(
                    ChunkRow.embedding_model == self.encoder.model_id
                )
            ):
                ids.append(chunk_id)
                blobs.append(blob)
        index = VectorIndex(self.encoder.dimension, kind=index_kind_for(len(ids)))
        if ids:
            matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), self.encoder.dimension)
            index.add(np.asarray(ids, dtype=np.int64), matrix)
        index.save(self.index_dir, self.encoder.model_id, generation)
        return index

    def _update_index(self, new_ids: np.ndarray, new_vectors: np.ndarray, retired_ids: list[int]) -> None:
        generation = self.generation()
        with self._vectors_changed:
            index = self._vectors
            stale = index is None or index.generation != generation - 1
            # Removal from HNSW, or growth past the flat limit: rebuild, choosing the type for the new size.
            if stale or (retired_ids and not index.can_remove) or index_kind_for(index.count + len(new_ids)) != index.kind:
                self._vectors = None
            else:
                # Changed on a copy, published whole (see __init__): a search may be reading `index` now.
                updated = index.copy()
                updated.remove(retired_ids)
                updated.add(new_ids, new_vectors)
                updated.save(self.index_dir, self.encoder.model_id, generation)
                self._vectors = updated
                self._vectors_changed.notify_all()
                return
        self.vectors()  # loads (or rebuilds) at the registry's current generation

    def lexical(self) -> LexicalIndex:
        """BM25 over the live chunks at the registry's generation: held in memory, else loaded from the
        copy saved beside the FAISS index at that generation, else rebuilt from the registry and saved
        (an ingest or removal bumps the generation, so a saved copy of older chunks is never used)."""
        generation = self.generation()
        if self._lexical is None or self._lexical[0] != generation:
            index = LexicalIndex.load(self.index_dir, generation, lexical_recipe())
            if index is None:
                index = self._rebuild_lexical(generation)
            self._lexical = (generation, index)
        return self._lexical[1]

    def _rebuild_lexical(self, generation: int) -> LexicalIndex:
        log.info("rebuilding the BM25 index from the registry (generation %d)", generation)
        with self.sessions() as session:
            rows = session.execute(
                _live_chunks(select(ChunkRow.id, Document.name, ChunkRow.context, ChunkRow.text)).join(
                    Document, Document.id == DocumentVersion.document_id
                )
            ).all()
        # BM25 also reads the document's name (as words): questions name the company or the contract.
        # (LEXICAL_LAYOUT names this layout: change one, change the other.)
        texts = [f"{document_label(name)}\n{context}\n{text}" for _, name, context, text in rows]
        index = LexicalIndex.build([r[0] for r in rows], texts)
        # Saved only if no ingest committed while the rows were read: the copy must be the generation's.
        if self.generation() == generation:
            try:
                index.save(self.index_dir, generation, lexical_recipe())
            except OSError as exc:  # a read-only workspace still answers, rebuilding in each process
                log.warning("could not save the BM25 index in %s: %s", self.index_dir, exc)
        return index

    # -- documents ----------------------------------------------------------------------------------
    def documents(
        self, collection: str | None = None, include_removed: bool = False, where: DocumentFilter | None = None
    ) -> list[Document]:
        with self.sessions() as session:
            query = _matching(select(Document).order_by(Document.id), replace(where or DocumentFilter(), collection=collection))
            if not include_removed:
                query = query.where(Document.removed_at.is_(None))
            docs = session.execute(query).scalars().all()
            for doc in docs:
                _ = doc.versions  # load while the session is open
            return list(docs)

    def resolve(self, ref: str, collection: str | None = None) -> Document:
        """A document by id, file name, or a prefix (>= 6 hex digits) of any of its versions' SHA-256."""
        with self.sessions() as session:
            query = select(Document).join(DocumentVersion)
            if collection:
                query = query.where(Document.collection == collection)
            ref_l = ref.lower()
            if ref.isdigit():
                candidates = session.execute(select(Document).where(Document.id == int(ref))).scalars().all()
            elif len(ref_l) >= 6 and all(c in "0123456789abcdef" for c in ref_l):
                candidates = session.execute(query.where(DocumentVersion.sha256.startswith(ref_l))).scalars().unique().all()
            else:
                candidates = session.execute(query.where(Document.name == ref)).scalars().unique().all()
            if not candidates:
                raise LookupError(f"document {ref!r}: no such document; `docket docs list` shows what is ingested")
            if len(candidates) > 1:
                raise LookupError(f"document {ref!r}: matches {len(candidates)} documents; use more of its SHA-256")
            doc = candidates[0]
            for version in doc.versions:
                _ = version.pages
            return doc

    def matching_document_ids(self, where: DocumentFilter) -> list[int]:
        """Ids of the live documents the filter admits (its explicit ids narrowed by type and date)."""
        with self.sessions() as session:
            query = _matching(select(Document.id).order_by(Document.id), where).where(Document.removed_at.is_(None))
            return list(session.execute(query).scalars())

    def tag(self, ref: str, tags: DocumentTags, collection: str | None = None) -> Document:
        """Set a document's type and/or date (``docket docs tag``); the change is the registry's, not a version's."""
        doc = self.resolve(ref, collection)
        with self.sessions.begin() as session:
            document = session.get(Document, doc.id)
            tags.apply(document)
        return self.resolve(str(doc.id))

    def remove(self, ref: str, collection: str | None = None) -> Document:
        """Take a document out of the live index. Its versions, pages and chunks stay for audit and replay."""
        with self._writer_lock():
            doc = self.resolve(ref, collection)
            with self.sessions.begin() as session:
                retired = self._retire_versions(session, doc.id, status="removed")
                session.execute(update(Document).where(Document.id == doc.id).values(removed_at=utcnow()))
                _bump_generation(session)
            self._update_index(np.zeros(0, dtype=np.int64), np.zeros((0, self.encoder.dimension), np.float32), retired)
        return doc

    def document_facts(self, document_id: int) -> DocumentFacts:
        with self.sessions() as session:
            doc = session.get(Document, document_id)
            if doc is None:
                raise LookupError(f"document {document_id}: no such document")
            versions = session.execute(
                select(
                    DocumentVersion.version, DocumentVersion.sha256, DocumentVersion.status, DocumentVersion.page_count,
                    DocumentVersion.media_type, DocumentVersion.size_bytes,
                ).where(DocumentVersion.document_id == document_id).order_by(DocumentVersion.version)
            ).all()
            return DocumentFacts(
                doc.id, doc.name, doc.collection, doc.source_key, doc.doc_type, doc.doc_date,
                tuple(VersionFacts(*row) for row in versions),
            )

    def find_current(self, path: Path, collection: str) -> int | None:
        """The document id whose current version has exactly these bytes in ``collection``, if any.

        Read-only, without the writer lock: lets a caller skip files already ingested while another
        process is ingesting."""
        sha256, _ = sha256_file(path)
        with self.sessions() as session:
            return session.execute(
                select(DocumentVersion.document_id)
                .join(Document)
                .where(Document.collection == collection, DocumentVersion.sha256 == sha256)
                .where(DocumentVersion.status == "current")
            ).scalar_one_or_none()

    def chunk(self, chunk_id: int) -> ChunkRow | None:
        with self.sessions() as session:
            return session.get(ChunkRow, chunk_id)

    # -- search -------------------------------------------------------------------------------------
    def live_chunk_ids(self, collection: str | None = None, document_ids: list[int] | None = None) -> list[int]:
        with self.sessions() as session:
            query = _live_chunks(select(ChunkRow.id)).join(Document, Document.id == DocumentVersion.document_id)
            if collection:
                query = query.where(Document.collection == collection)
            if document_ids:
                query = query.where(Document.id.in_(document_ids))
            return list(session.execute(query).scalars())

    def live_collections(self, document_ids: list[int] | None = None) -> list[str]:
        """The collections that have live chunks (of these documents, if given), sorted."""
        with self.sessions() as session:
            query = _live_chunks(select(Document.collection).distinct().select_from(ChunkRow)).join(
                Document, Document.id == DocumentVersion.document_id
            )
            if document_ids:
                query = query.where(Document.id.in_(document_ids))
            return sorted(session.execute(query).scalars())

    def count_live_chunks(self) -> int:
        with self.sessions() as session:
            return session.execute(_live_chunks(select(func.count(ChunkRow.id)))).scalar_one()

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        collection: str | None = None,
        document_ids: list[int] | None = None,
        mode: SearchMode = "hybrid",
        candidates: int | None = None,
        rrf_k: int | None = None,
        options: RetrievalOptions | None = None,
        allowed_documents: Collection[int] | None = None,
    ) -> list[ChunkHit]:
        """The top-k live chunks for ``query`` (see ``ingest.retrieval`` for the steps and options).

        ``candidates`` and ``rrf_k``, when given, override the same fields of ``options``.
        ``allowed_documents`` are the ids of the documents the caller may read (None: any; empty: none).
        They narrow the chunk ids both retrievers search before either ranks, so the k hits are the best
        k of what the caller may read, never what is left of a top-k after dropping the rest."""
        options = options or RetrievalOptions()
        overrides = {"candidates": candidates, "rrf_k": rrf_k}
        options = replace(options, **{name: v for name, v in overrides.items() if v is not None})
        plan = plan_query(query) if options.query_analysis else plain_query(query)
        if allowed_documents is not None:
            permitted = set(allowed_documents)
            document_ids = sorted(permitted & set(document_ids)) if document_ids else sorted(permitted)
            if not document_ids:
                return []
        allowed = self._allowed_ids(collection, document_ids)
        if allowed is not None and not allowed:
            return []
        depth = max(options.candidates, k)
        query_vector = self.encoder.encode_query(plan.text) if mode in ("hybrid", "dense") else None
        lexical_index = self.lexical() if mode in ("hybrid", "bm25") else None
        # lexical() has just brought self._lexical to the registry's generation: the facts follow it.
        facts = self._chunk_facts(self._lexical[0]) if needs_facts(mode, plan, options) else None  # hybrid only
        scored = rank_chunks(
            plan, query_vector, self.vectors() if query_vector is not None else None, lexical_index, facts, options,
            mode=mode, depth=depth, allowed=allowed, allowed_set=self._allowed_set_of(allowed) if facts is not None else None,
        )
        if options.reranker:
            texts = {cid: f"{row.context}\n{row.text}" for cid, row in self._rows([c for c, _ in scored[: options.rerank_candidates]]).items()}
            scored = rerank(plan.text, scored, texts, options.reranker, options.rerank_candidates)
        if options.mmr_lambda < 1.0:
            pool = scored[: max(options.candidates, k)]
            scored = mmr(pool, self.vectors().vectors([c for c, _ in pool]), k, options.mmr_lambda)
        hits = self._hits(scored[:k])
        return self._expand(hits, options.neighbours) if options.neighbours else hits

    def _chunk_facts(self, generation: int) -> ChunkFacts:
        """Page, opening, statement and document-name facts of every live chunk at ``generation``
        (``ingest.retrieval.ChunkFacts``), read from the registry when the generation changes."""
        cached: tuple[int, ChunkFacts] | None = getattr(self, "_facts", None)  # (generation, facts)
        if cached is None or cached[0] != generation:
            with self.sessions() as session:
                rows = session.execute(
                    _live_chunks(select(ChunkRow.id, ChunkRow.version_id, ChunkRow.page, ChunkRow.char_start, ChunkRow.context))
                ).all()
                names = session.execute(
                    select(DocumentVersion.id, Document.name)
                    .join(Document, Document.id == DocumentVersion.document_id)
                    .where(DocumentVersion.status == "current")
                ).all()
            cached = self._facts = (generation, ChunkFacts.build([tuple(r) for r in rows], dict(names)))
        return cached[1]

    def _allowed_set_of(self, allowed: list[int] | None) -> frozenset[int] | None:
        """``allowed`` as a set; _allowed_ids returns the same cached list while the filter and generation
        hold, so one set per list."""
        if allowed is None:
            return None
        cached: tuple[list[int], frozenset[int]] | None = getattr(self, "_allowed_set", None)
        if cached is None or cached[0] is not allowed:
            cached = self._allowed_set = (allowed, frozenset(allowed))
        return cached[1]

    def _allowed_ids(self, collection: str | None, document_ids: list[int] | None) -> list[int] | None:
        """Live chunk ids under the filters (None = no filter); cached per index generation."""
        if not (collection or document_ids):
            return None
        key = (self.generation(), collection, tuple(sorted(document_ids or ())))
        if key not in self._allowed_cache:
            if len(self._allowed_cache) > 64:
                self._allowed_cache.clear()
            self._allowed_cache[key] = self.live_chunk_ids(collection, document_ids)
        return self._allowed_cache[key]

    def _rows(self, chunk_ids: list[int]) -> dict[int, ChunkRow]:
        with self.sessions() as session:
            rows = session.execute(select(ChunkRow).where(ChunkRow.id.in_(chunk_ids))).scalars().all()
        return {row.id: row for row in rows}

    def _expand(self, hits: list[ChunkHit], neighbours: int) -> list[ChunkHit]:
        """Each hit widened to the span of its ``neighbours`` adjacent chunks on each side, same page.

        The widened text is read from the page, so it is still exactly ``page.text[start:end]``."""
        out = []
        with self.sessions() as session:
            for hit in hits:
                version_id, = session.execute(select(ChunkRow.version_id).where(ChunkRow.id == hit.chunk_id)).one()
                spans = session.execute(
                    select(ChunkRow.id, ChunkRow.char_start, ChunkRow.char_end)
                    .where(ChunkRow.version_id == version_id, ChunkRow.page == hit.page)
                    .order_by(ChunkRow.char_start)
                ).all()
                at = next(i for i, row in enumerate(spans) if row[0] == hit.chunk_id)
                window = spans[max(0, at - neighbours) : at + neighbours + 1]
                start, end = min(r[1] for r in window), max(r[2] for r in window)
                page_text = session.execute(
                    select(PageRow.text).where(PageRow.version_id == version_id, PageRow.number == hit.page)
                ).scalar_one()
                out.append(replace(hit, char_start=start, char_end=end, text=page_text[start:end]))
        return out

    def _hits(self, scored: list[tuple[int, float]]) -> list[ChunkHit]:
        if not scored:
            return []
        with self.sessions() as session:
            rows = session.execute(
                select(ChunkRow, Document.name, Document.id)
                .join(DocumentVersion, ChunkRow.version_id == DocumentVersion.id)
                .join(Document, Document.id == DocumentVersion.document_id)
                .where(ChunkRow.id.in_([cid for cid, _ in scored]))
            ).all()
        by_id = {row[0].id: row for row in rows}
        hits = []
        for chunk_id, score in scored:
            if chunk_id not in by_id:
                continue
            chunk, name, doc_id = by_id[chunk_id]
            hits.append(
                ChunkHit(
                    chunk_id, score, chunk.doc_sha256, name, doc_id, chunk.page, chunk.char_start,
                    chunk.char_end, chunk.text, chunk.method, chunk.confidence, chunk.context,
                )
            )
        return hits


def _embedding_text(chunk: Chunk) -> str:
    return f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text


# Seconds a search waits for this process's ingest to publish the index of the generation it committed
# (a save of the index file), before rebuilding that index itself.
WRITER_WAIT_S = 30.0
ENCODE_GROUP_TEXTS = 512  # about this many texts per Encoder.encode call (see ingest.embedding.encode_groups)
embedding_text = _embedding_text  # what a chunk's vector is of (public for the Ray encoder actors)


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


def _matching(query, where: DocumentFilter):
    """``query`` (over Document) narrowed to the documents ``where`` admits."""
    if where.collection:
        query = query.where(Document.collection == where.collection)
    if where.document_ids:
        query = query.where(Document.id.in_(where.document_ids))
    if where.allowed_document_ids is not None:
        query = query.where(Document.id.in_(sorted(where.allowed_document_ids)))
    if where.doc_types:
        query = query.where(func.lower(Document.doc_type).in_([t.lower() for t in where.doc_types]))
    if where.since is not None:
        query = query.where(Document.doc_date >= where.since)
    if where.until is not None:
        query = query.where(Document.doc_date <= where.until)
    return query


def _live_chunks(query):
    return query.join(DocumentVersion, ChunkRow.version_id == DocumentVersion.id).where(
        DocumentVersion.status == "current"
    )


def _bump_generation(session: Session) -> None:
    session.execute(update(IndexState).where(IndexState.id == 1).values(generation=IndexState.generation + 1))


def _page_row(version_id: int, page: PageText) -> PageRow:
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
