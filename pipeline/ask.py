"""Ask: retrieve evidence, reason over it, check the answer against it, and record all of it.

Every ask appends exactly one ``answer`` entry to the audit log, whatever its status (answered,
withheld, refused, incomplete, error). An answer that fails grounding (a citation, a quote or a number
not in its sources, or no answer of the kind the question asks for) is withheld by default, whatever
the reasoner: it stays in the record (``withheld_answer``), and only ``grounding.allow_ungrounded`` /
``--allow-ungrounded`` shows it as an answer. The record is written before the answer is returned: if the audit log
cannot take it, the caller gets an error, never an unrecorded answer.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from ingest.passages import source_label
from ingest.retrieval import RetrievalOptions
from ingest.store import ChunkHit, DocumentFilter
from ingest.tables import tables_for_sources
from pipeline.app import Docket, software_version
from pipeline.clause_match import passages_to_add
from pipeline.grounding import check_grounding
from pipeline.grounding_record import GroundingRecord
from pipeline.table_answers import rows_to_add
from pipeline.reasoning import ChatTurn, Evidence, ReasonerOutput
from pipeline.records import ANSWER_PAYLOAD_VERSION, AnswerRecord
from pipeline.replay.snapshots import commit_snapshots, corpus_snapshot, settings_sha256
from pipeline.retrieval_info import RetrievalInfo

WITHHELD = "Answer withheld: {label}."
ALLOWED_UNGROUNDED = "shown although {label} (grounding.allow_ungrounded is on)"
NO_DOCUMENTS = "No documents are ingested{where}; run `docket ingest PATH` first."
NO_MATCH = "No documents match {what}; `docket docs list` shows each document's type and date."


@dataclass
class AskOptions:
    collection: str | None = None  # None: the setting `collection`, unless every_collection
    every_collection: bool = False  # search every collection (the CLI's ask without -c); the record's collection is None
    documents: list[str] = field(default_factory=list)  # document refs (id, name, SHA-256 prefix)
    doc_types: list[str] = field(default_factory=list)  # any of these document types
    since: date | None = None  # documents dated on or after
    until: date | None = None  # documents dated on or before
    top_k: int | None = None
    # None: the setting grounding.allow_ungrounded decides (default False: an unsupported answer is withheld).
    allow_ungrounded: bool | None = None
    strict: bool | None = None  # no longer used: withholding is the default (kept so old callers still work)
    # The question whose kind of answer is checked, when ``question`` wraps it (a review's prompt); None: the question.
    kind_question: str | None = None
    history: list[ChatTurn] = field(default_factory=list)
    on_delta: Callable[[str, str], None] | None = None
    # False when the caller records the answer inside its own audit entry (a review cell is ONE entry).
    record: bool = True
    # The documents the caller may read (the service: the user's grants); None = every document. The
    # search is restricted to them before ranking, so top-k stays complete; a --doc outside them is
    # "no such document", so its name does not leak.
    allowed_documents: frozenset[int] | None = None
    # When given, the wall seconds of each stage (retrieval, answerer, grounding, audit) are added to it:
    # the service's Server-Timing header. Not in the record: they differ between runs of the same ask.
    timings: dict[str, float] | None = None


def to_evidence(hits: list[ChunkHit]) -> list[Evidence]:
    """The search's passages as the reasoner's sources: ranked and labelled by their place in ``hits``
    (the search ranks them so already; a passage whose place differs is relabelled, not copied field by field)."""
    return [h if h.rank == rank else replace(h, rank=rank, label=source_label(rank)) for rank, h in enumerate(hits, start=1)]


def with_needed_passages(question: str, hits: list[ChunkHit],
                         search: Callable[[str, int], list[ChunkHit]]) -> list[ChunkHit]:
    """The search's hits, then what the question needs that they lack, found by further searches.

    First the statement rows a figure the question asks for needs (a margin's revenue,
    `pipeline.table_answers.rows_to_add`), then, for a question about a known clause, passages with the
    clause's wording when no hit so far has it (`pipeline.clause_match.passages_to_add`). `search` is
    the caller's own (the live store for `ask`, the frozen index for a replay), so both add the same.
    """
    hits = hits + rows_to_add(question, hits, search)
    return hits + passages_to_add(question, hits, search)


def ask(docket: Docket, question: str, options: AskOptions | None = None) -> AnswerRecord:
    options = options or AskOptions()
    s = docket.settings
    collection = None if options.every_collection and not options.collection else options.collection or s.collection
    allow_ungrounded = s.grounding.allow_ungrounded if options.allow_ungrounded is None else options.allow_ungrounded
    top_k = options.top_k or s.retrieval.top_k
    request_id = uuid.uuid4().hex
    mark, stage = time.perf_counter(), "retrieval"  # the stage the time until the next lap is spent on
    created_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    retrieval_options = RetrievalOptions.from_settings(s.retrieval)
    corpus = corpus_snapshot(docket.store)  # the live versions searched, committed for replay (pipeline/replay)
    retrieval = RetrievalInfo(**{
        **s.retrieval.model_dump(mode="json"),
        "top_k": top_k,
        "embedding_model": docket.store.encoder.model_id,
        "embedding_backend": s.embedding.backend,
        "index_generation": corpus.generation,  # the snapshot's: read once, and the same the record names
    })
    searched: list[int] | None = None  # the documents the search is restricted to, as the store is given them

    evidence: list[Evidence] = []
    try:
        document_ids = [docket.store.resolve(ref, collection).id for ref in options.documents]
        allowed = options.allowed_documents
        if allowed is not None:
            hidden = [ref for ref, i in zip(options.documents, document_ids) if i not in allowed]
            if hidden:
                raise LookupError(f"document {hidden[0]!r}: no such document; `docket docs list` shows what is ingested")
            if not document_ids:  # every document the caller may read (none: an empty filter, not no filter)
                document_ids = docket.store.matching_document_ids(DocumentFilter(collection)) or [0]
                document_ids = [i for i in document_ids if i in allowed] or [0]  # 0: no document has it
        where = DocumentFilter(collection, tuple(document_ids), tuple(options.doc_types), options.since, options.until)
        if where.by_metadata:
            document_ids = docket.store.matching_document_ids(where)
            if not document_ids:
                raise LookupError(NO_MATCH.format(what=describe_filter(options, collection)))
        searched = sorted(document_ids) if document_ids else None
        if not has_live_chunks(docket.store, corpus.generation, collection, document_ids or None):
            in_collection = f" in collection {collection!r}" if collection else ""
            where = in_collection if not options.documents else " for the given --doc"
            if options.allowed_documents is not None and not options.documents:
                where = f" that you may read{in_collection}"
            output = ReasonerOutput(status="error", answer="", error=NO_DOCUMENTS.format(where=where))
        else:
            def search(query: str, k: int) -> list[ChunkHit]:
                return docket.store.search(query, k, collection=collection, document_ids=document_ids or None,
                                           mode=s.retrieval.mode, options=retrieval_options)

            hits = with_needed_passages(question, search(question, top_k), search)
            evidence = to_evidence(hits)
            mark, stage = _lap(options, "retrieval", mark), "answerer"
            output = docket.reasoner.answer(question, evidence, options.history or None, options.on_delta)
    except LookupError as exc:  # a --doc that names no document, a filter that admits none
        output = ReasonerOutput(status="error", answer="", error=str(exc).strip("'\""))

    mark = _lap(options, stage, mark)
    record = _record(docket, question, options, collection, retrieval, evidence, output, allow_ungrounded,
                     request_id, created_at)
    mark = _lap(options, "grounding", mark)
    record.payload_version = ANSWER_PAYLOAD_VERSION
    record.corpus, record.searched_document_ids = corpus.reference(), searched
    record.settings_sha256 = settings_sha256(s)
    # The settings and corpus the record names by hash go into the log first (once each), also for a review
    # cell, whose finding entry carries this record.
    commit_snapshots(docket.audit, s.actor, s, corpus, request_id)
    if not options.record:
        return record
    appended = docket.audit.append(
        "answer",
        record.audit_payload(),
        actor=s.actor,
        request_id=request_id,
        subjects=sorted({e.doc_sha256 for e in evidence}),
        status=record.status,
    )
    record.audit_seq = appended.seq
    _lap(options, "audit", mark)  # the snapshots' check and the answer's entry
    return record


# Whether a filter has live chunks, per store and index generation: the live chunk set changes only with
# the generation (every ingest and removal bumps it in the transaction that changes the set), so an
# answer found at generation G holds for as long as G is current, and a removal is seen on the next ask.
_live_by_store: weakref.WeakKeyDictionary[Any, dict[tuple, bool]] = weakref.WeakKeyDictionary()
_live_lock = threading.Lock()
_LIVE_ENTRIES = 256  # filters kept per store; past it the cache starts again (a generation's worth is small)


def has_live_chunks(store: Any, generation: int, collection: str | None, document_ids: list[int] | None) -> bool:
    """Whether any live chunk is in ``collection`` (any, if None) and ``document_ids`` (any, if None), at
    ``generation``. Read from the registry once per filter and generation."""
    key = (generation, collection, tuple(sorted(document_ids or ())))
    with _live_lock:
        known = _live_by_store.setdefault(store, {})
        if key in known:
            return known[key]
    live = bool(store.live_chunk_ids(collection, document_ids))
    # Kept only when no ingest or removal committed around the read (SQLite runs each SELECT in its own
    # snapshot): the answer is then the one of ``generation`` itself.
    if store.generation() == generation:
        with _live_lock:
            if len(known) >= _LIVE_ENTRIES:
                known.clear()
            known[key] = live
    return live


def _lap(options: AskOptions, stage: str, since: float) -> float:
    """Add the time since ``since`` to ``stage`` in ``options.timings`` (if kept); now."""
    now = time.perf_counter()
    if options.timings is not None:
        options.timings[stage] = options.timings.get(stage, 0.0) + now - since
    return now


def filter_fields(options: AskOptions) -> dict:
    """The document filter as given, for the answer record (empty when there was none)."""
    fields = {"types": list(options.doc_types), "since": options.since, "until": options.until}
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in fields.items() if v}


def describe_filter(options: AskOptions, collection: str | None) -> str:
    parts = [f"--type {' or '.join(options.doc_types)}"] if options.doc_types else []
    parts += [f"--{k} {v}" for k, v in filter_fields(options).items() if k != "types"]
    if options.documents:
        parts.append("the given --doc")
    return " ".join(parts) + (f" in collection {collection!r}" if collection else "")


def _record(docket, question, options, collection, retrieval, evidence, output, allow_ungrounded, request_id, created_at):
    s = docket.settings
    threshold = s.grounding.low_confidence_threshold
    status, answer, withheld = output.status, output.answer, None
    grounding = GroundingRecord.not_checked()
    flags: list[str] = []
    if output.status == "answered":
        # Ground against what the reasoner was actually shown: a source dropped for the token budget
        # cannot support a claim, even if the model cites its label.
        sent = output.call.sources_sent
        shown = [e for e in evidence if e.label in sent] if sent is not None else evidence
        report = check_grounding(
            output.answer, shown, low_confidence_threshold=threshold, question=options.kind_question or question,
            tables=tables_for_sources(docket.store.sessions, shown),  # a number's table cell and box (ingest.tables)
        )
        grounding = report.to_record()
        flags = [
            f"{low.label} rests on page {low.page} of {low.doc_name}, read by OCR with confidence "
            f"{low.confidence:.2f} (below {threshold}); check the page image"
            for low in report.low_confidence
        ]
        if report.possible_injection:
            flags.insert(0, (
                f"possible injection: the answer cites {', '.join(report.unknown_citations)}, which no source sent "
                f"carries (sent: {', '.join(e.label for e in shown) or 'none'}); text in a document or the "
                "question may have steered the model"
            ))
        if not report.supported:
            # Fail closed: what a reader would take as an answer is shown only when every check held.
            if allow_ungrounded:
                flags.insert(0, ALLOWED_UNGROUNDED.format(label=report.label))
            else:
                status, answer, withheld = "withheld", WITHHELD.format(label=report.label), output.answer
    notice = getattr(docket.reasoner, "notice", None) if status == "answered" else None
    return AnswerRecord(
        request_id=request_id,
        created_at=created_at,
        actor=s.actor,
        question=question,
        collection=collection,
        documents=list(options.documents),
        document_filter=filter_fields(options),
        retrieval=retrieval,
        reasoner=docket.settings.reasoner,
        notice=notice,
        status=status,
        answer=answer,
        withheld_answer=withheld,
        citations=output.citations,
        trace=output.trace,
        trace_format=output.trace_format,
        # The passages the reasoner was shown, flagged where OCR read their page below the threshold.
        evidence=[
            replace(e, low_confidence=True) if e.confidence is not None and e.confidence < threshold else e
            for e in evidence
        ],
        grounding=grounding,
        flags=flags,
        call=output.call,
        error=output.error,
        software_version=software_version(),
        config_hash=s.config_hash(),
    )


# A replay (pipeline/replay) builds the record of a replayed answer with the very same function, so its
# grounding, flags and withholding are decided as they were for the original.
answer_record = _record
