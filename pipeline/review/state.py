"""Review state in SQL: reviews, their documents, their cells and sign-offs (tables ``review_*``).

The tables live in the workspace's registry database beside ingest's tables (their own metadata, so
neither package owns the other's schema). They are an index for resuming and reporting; the audit
log is the record of truth, and a cell missing here but present there is restored from it
(``ReviewState.restore``). Every write is one transaction, so a killed run leaves whole rows only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    update,
)

from ingest.registry import make_engine
from pipeline.review.checklist import Checklist
from pipeline.review.findings import ReviewFinding, read_finding

metadata = MetaData()

reviews = Table(
    "review_runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("resume_key", String(64), index=True),  # same checklist + documents + reasoner -> same key
    Column("checklist_name", String(64)),
    Column("checklist_sha256", String(64)),
    Column("checklist", JSON),  # the checklist as run, for reports
    Column("collection", String(200)),
    Column("reasoner", String(40)),
    Column("model", String(200)),
    Column("config_hash", String(64)),
    Column("index_generation", Integer),
    Column("created_at", String(32)),
    Column("created_by", String(200)),
    Column("started_seq", Integer),
    Column("completed_at", String(32), nullable=True),
    Column("checkpoint", JSON, nullable=True),
)

review_documents = Table(
    "review_documents", metadata,
    Column("review_id", String(32), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("document_id", Integer, nullable=True),
    Column("name", Text),
    Column("sha256", String(64), nullable=True),
    Column("version", Integer, nullable=True),
    Column("status", String(20)),  # "ready" | "failed"
    Column("error", Text, nullable=True),
)

review_cells = Table(
    "review_cells", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("review_id", String(32), index=True),
    Column("item_id", String(64)),
    Column("doc_sha256", String(64)),
    Column("verdict", String(20)),
    Column("failed", Integer),  # 1 when the cell could not be evaluated (it is redone on the next run)
    Column("confidence", Float),
    Column("audit_seq", Integer),
    Column("finding", JSON),
    UniqueConstraint("review_id", "item_id", "doc_sha256", name="uq_review_cell"),
)

review_signoffs = Table(
    "review_signoffs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("review_id", String(32), index=True),
    Column("item_id", String(64), nullable=True),
    Column("doc_sha256", String(64), nullable=True),
    Column("decision", String(20)),
    Column("verdict", String(20), nullable=True),
    Column("note", Text),
    Column("actor", String(200)),
    Column("time", String(32)),
    Column("audit_seq", Integer),
)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ReviewDocument:
    position: int
    name: str
    status: str
    document_id: int | None = None
    sha256: str | None = None
    version: int | None = None
    error: str | None = None


@dataclass
class Cell:
    item_id: str
    doc_sha256: str
    verdict: str
    failed: bool
    confidence: float
    audit_seq: int
    finding: ReviewFinding


@dataclass
class SignOff:
    item_id: str | None
    doc_sha256: str | None
    decision: str
    verdict: str | None
    note: str
    actor: str
    time: str
    audit_seq: int


@dataclass
class Review:
    """One review with everything recorded about it (what reports and diffs read)."""

    id: str
    resume_key: str
    checklist: dict[str, Any]
    checklist_sha256: str
    collection: str
    reasoner: str
    model: str | None
    config_hash: str
    index_generation: int
    created_at: str
    created_by: str
    started_seq: int
    completed_at: str | None = None
    checkpoint: dict[str, Any] | None = None
    documents: list[ReviewDocument] = field(default_factory=list)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    signoffs: list[SignOff] = field(default_factory=list)

    @property
    def ready_documents(self) -> list[ReviewDocument]:
        return [d for d in self.documents if d.status == "ready"]

    def expected_cells(self) -> list[tuple[str, ReviewDocument]]:
        """Every (item id, document) pair the checklist applies to."""
        checklist = Checklist.model_validate(self.checklist)
        return [
            (item.id, doc)
            for doc in self.ready_documents
            for item in checklist.items
            if item.applies_to.matches(doc.name, self.collection)
        ]


class ReviewState:
    def __init__(self, url: str):
        from pipeline.migrations import upgrade_registry

        self.engine: Engine = make_engine(url)
        upgrade_registry(self.engine)  # the review tables are the registry migrations' too (pipeline/migrations/)

    def close(self) -> None:
        self.engine.dispose()

    # -- writing -----------------------------------------------------------------------------------
    def create(self, review: Review) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(reviews).values(
                id=review.id, resume_key=review.resume_key, checklist_name=review.checklist["name"],
                checklist_sha256=review.checklist_sha256, checklist=review.checklist, collection=review.collection,
                reasoner=review.reasoner, model=review.model, config_hash=review.config_hash,
                index_generation=review.index_generation, created_at=review.created_at,
                created_by=review.created_by, started_seq=review.started_seq,
            ))
            conn.execute(insert(review_documents), [
                {"review_id": review.id, **d.__dict__} for d in review.documents
            ])

    def put_cell(self, review_id: str, cell: Cell) -> None:
        """Insert or replace a cell, in one transaction (a redone cell supersedes the old row)."""
        with self.engine.begin() as conn:
            conn.execute(delete(review_cells).where(
                review_cells.c.review_id == review_id, review_cells.c.item_id == cell.item_id,
                review_cells.c.doc_sha256 == cell.doc_sha256,
            ))
            conn.execute(insert(review_cells).values(
                review_id=review_id, item_id=cell.item_id, doc_sha256=cell.doc_sha256, verdict=cell.verdict,
                failed=int(cell.failed), confidence=cell.confidence, audit_seq=cell.audit_seq,
                finding=cell.finding.to_payload(),
            ))

    def complete(self, review_id: str, checkpoint: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(reviews).where(reviews.c.id == review_id).values(
                completed_at=utc_now(), checkpoint=checkpoint,
            ))

    def reopen(self, review_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(reviews).where(reviews.c.id == review_id).values(completed_at=None))

    def add_signoff(self, review_id: str, signoff: SignOff) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(review_signoffs).values(review_id=review_id, **signoff.__dict__))

    # -- reading -----------------------------------------------------------------------------------
    def find_resumable(self, resume_key: str) -> str | None:
        """The newest review with this key (finished or not): running it again continues it."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(reviews.c.id).where(reviews.c.resume_key == resume_key)
                .order_by(reviews.c.created_at.desc()).limit(1)
            ).scalar()

    def resolve_id(self, ref: str) -> str:
        """A review id from its id or a unique prefix of it."""
        with self.engine.connect() as conn:
            ids = conn.execute(select(reviews.c.id).where(reviews.c.id.startswith(ref))).scalars().all()
        if not ids:
            raise LookupError(f"review {ref!r}: no such review; `docket review list` shows them")
        if len(ids) > 1:
            raise LookupError(f"review {ref!r}: matches {len(ids)} reviews; give more of its id")
        return ids[0]

    def load(self, ref: str) -> Review:
        review_id = self.resolve_id(ref)
        with self.engine.connect() as conn:
            row = conn.execute(select(reviews).where(reviews.c.id == review_id)).mappings().one()
            docs = conn.execute(
                select(review_documents).where(review_documents.c.review_id == review_id)
                .order_by(review_documents.c.position)
            ).mappings().all()
            cells = conn.execute(select(review_cells).where(review_cells.c.review_id == review_id)).mappings().all()
            signoffs = conn.execute(
                select(review_signoffs).where(review_signoffs.c.review_id == review_id).order_by(review_signoffs.c.id)
            ).mappings().all()
        review = Review(**{k: row[k] for k in (
            "id", "resume_key", "checklist", "checklist_sha256", "collection", "reasoner", "model", "config_hash",
            "index_generation", "created_at", "created_by", "started_seq", "completed_at", "checkpoint",
        )})
        review.documents = [ReviewDocument(**{k: v for k, v in d.items() if k != "review_id"}) for d in docs]
        review.cells = {
            (c["item_id"], c["doc_sha256"]): Cell(
                c["item_id"], c["doc_sha256"], c["verdict"], bool(c["failed"]), c["confidence"], c["audit_seq"],
                read_finding(_as_dict(c["finding"]), f"review {review_id}, cell {c['item_id']} x {c['doc_sha256'][:12]}",
                             c["audit_seq"]),
            )
            for c in cells
        }
        review.signoffs = [SignOff(**{k: v for k, v in s.items() if k not in ("id", "review_id")}) for s in signoffs]
        return review

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(reviews.c.id, reviews.c.checklist_name, reviews.c.collection, reviews.c.reasoner,
                       reviews.c.created_at, reviews.c.completed_at).order_by(reviews.c.created_at)
            ).mappings().all()
            counts = dict(conn.execute(
                select(review_cells.c.review_id, func.count()).group_by(review_cells.c.review_id)
            ).all())
        return [{**dict(r), "cells": counts.get(r["id"], 0)} for r in rows]


def _as_dict(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else value
