"""The document registry: SQLAlchemy schema for documents, versions, pages and chunks.

The registry is the source of truth. Chunk rows carry their vectors, so the FAISS index can always be
rebuilt from here, and an unchanged chunk in a new version reuses its vector instead of re-encoding.
``IndexState.generation`` counts changes to the set of live chunks; the FAISS manifest records the
generation it was built at, which is how a stale index (after a crash) is noticed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Document(Base):
    """A logical document: one source (path) in one collection, with one or more versions."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection", "source_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    source_key: Mapped[str] = mapped_column(Text)  # resolved path the file was ingested from
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the user says the document is ("10-K", "NDA", ...) and its own date (a contract's date, a
    # filing's period end): given at ingest or by `docket docs tag`, never guessed; retrieval filters on them.
    doc_type: Mapped[str | None] = mapped_column(String(100), index=True, default=None)
    doc_date: Mapped[date | None] = mapped_column(Date, index=True, default=None)

    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="DocumentVersion.version"
    )


class DocumentVersion(Base):
    """One exact byte string of a document; ``status`` is current, superseded or removed."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "version"), Index("ix_versions_sha256", "sha256"))

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="current")
    size_bytes: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(Text)
    page_count: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)

    document: Mapped[Document] = relationship(back_populates="versions")
    pages: Mapped[list[PageRow]] = relationship(order_by="PageRow.number")


class PageRow(Base):
    __tablename__ = "pages"
    __table_args__ = (UniqueConstraint("version_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(40))
    engine_version: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(40))
    dpi: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)
    notes: Mapped[list[Any]] = mapped_column(default=list)
    # [[start, end, x0, y0, x1, y1, confidence], ...]: blocks of a text layer, words of an OCR read.
    spans: Mapped[list[Any]] = mapped_column(default=list)
    # The page's tables, ingest.tables.TableRecord.to_dict() each ([] before migration i0003).
    tables: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")


class ChunkRow(Base):
    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(primary_key=True)  # also the chunk's id in FAISS
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"), index=True)
    doc_sha256: Mapped[str] = mapped_column(String(64))
    page: Mapped[int] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64), index=True)
    token_count: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[float | None] = mapped_column(Float)
    boxes: Mapped[list[Any]] = mapped_column(default=list)
    context: Mapped[str] = mapped_column(Text, default="")
    embedding_model: Mapped[str] = mapped_column(String(200))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32, L2-normalised


class IndexState(Base):
    """A single row: the generation of the live chunk set (bumped by every ingest and removal)."""

    __tablename__ = "index_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


# -- queries every part of the store shares ---------------------------------------------------------


def live_chunks(query):
    """``query`` (over ChunkRow) narrowed to the chunks of current versions: what the indexes hold."""
    return query.join(DocumentVersion, ChunkRow.version_id == DocumentVersion.id).where(
        DocumentVersion.status == "current"
    )


def bump_generation(session: Session) -> None:
    """The live chunk set changed (an ingest, a removal): the saved indexes of the old generation are stale."""
    session.execute(update(IndexState).where(IndexState.id == 1).values(generation=IndexState.generation + 1))


def retire_versions(session: Session, document_id: int, status: str) -> list[int]:
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


def make_engine(url: str) -> Engine:
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers never block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


def open_registry(url: str, auto_upgrade: bool | None = None) -> sessionmaker:
    """The registry's session factory, ingest's tables brought to head by ingest's migrations (ingest/migrations/).

    `auto_upgrade` None: a SQLite workspace upgrades itself, a PostgreSQL database that is behind
    raises a MigrationError naming `docket db upgrade` (ingest.migrations.auto_upgrade_default).
    The review and identity tables in the same database are pipeline's to migrate (pipeline.migrations).
    """
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    from ingest.migrations import upgrade_ingest

    upgrade_ingest(engine, auto_upgrade)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        if session.get(IndexState, 1) is None:
            session.add(IndexState(id=1, generation=0))
    return factory
