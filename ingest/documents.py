"""The documents of the registry: list, resolve, tag and remove them, and what the registry says of each.

A document is one source (path) in one collection, with one or more versions. Removing one takes its
chunks out of the live index (through the index cache's writer lock); its versions, pages and chunks
stay for audit and replay.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from ingest.extract import sha256_file
from ingest.index_cache import IndexCache
from ingest.registry import ChunkRow, Document, DocumentVersion, bump_generation, retire_versions, utcnow


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


def matching(query, where: DocumentFilter):
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


class Documents:
    def __init__(self, sessions: sessionmaker, indexes: IndexCache):
        self.sessions = sessions
        self.indexes = indexes

    def documents(
        self, collection: str | None = None, include_removed: bool = False, where: DocumentFilter | None = None
    ) -> list[Document]:
        with self.sessions() as session:
            query = matching(select(Document).order_by(Document.id), replace(where or DocumentFilter(), collection=collection))
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
            query = matching(select(Document.id).order_by(Document.id), where).where(Document.removed_at.is_(None))
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
        with self.indexes.writer_lock():
            doc = self.resolve(ref, collection)
            with self.sessions.begin() as session:
                retired = retire_versions(session, doc.id, status="removed")
                session.execute(update(Document).where(Document.id == doc.id).values(removed_at=utcnow()))
                bump_generation(session)
            dimension = self.indexes.encoder.dimension
            self.indexes.update(np.zeros(0, dtype=np.int64), np.zeros((0, dimension), np.float32), retired)
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

