"""Replay one recorded answer, frozen or against today, and record the replay as an audit event.

Frozen (the default): the settings the answer ran with (its ``settings`` entry), the corpus it searched (its
``corpus`` entry: the versions live then, their chunks and stored vectors, BM25 over exactly them), the
documents it was restricted to, its question; then the reasoner it used, asked again with the recorded
messages, model and parameters (``pipeline.replay.recorded_call``), or Docket's extractive answerer run
again on the replayed evidence. Against ``current``: the same question through ``pipeline.ask.ask`` on
today's corpus and settings, and the reasons the result may have moved (``pipeline.replay.changes``).

Either way the replay is one ``replay`` audit entry naming the entry it replays (subject ``seq:N``) and its
outcome: ``identical``, ``evidence-changed``, ``answer-changed``, ``incomplete`` (something a frozen replay
needs is gone; nothing was substituted) or ``nothing-to-replay`` (the recorded ask stopped before its search).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any, Literal

from pipeline.app import Docket
from pipeline.records import AnswerRecord, floats_to_strings
from pipeline.replay.compare import EvidenceComparison, TextChange, compare_evidence, compare_texts
from pipeline.replay.frozen import Missing
from pipeline.replay.recorded import RecordedAnswer, ReplayError, read_recorded

Against = Literal["frozen", "current"]
REPLAY_EVENT = "replay"
# The sections of the recorded settings a frozen replay takes; the rest (workspace, databases, service,
# audit, OCR, ingest limits) are today's, since they do not take part in answering a question.
REPLAYED_SECTIONS = ("reasoner", "embedding", "chunking", "retrieval", "llm", "grounding")
MASK = "***"
# Settings added after records were first made, with the value that answers as Docket did before they
# existed: a record whose settings section lacks one is replayed with this value, not today's default.
SETTINGS_BEFORE_ADDED: dict[tuple[str, str], Any] = {
    ("retrieval", "query_expansion"): False,
    ("retrieval", "page_repeat_penalty"): 0.0,
    ("retrieval", "name_routing"): False,
}


@dataclass
class ReplayReport:
    recorded: RecordedAnswer
    against: Against
    outcome: str = "incomplete"
    replayed: dict[str, Any] | None = None  # the replayed answer's payload
    evidence: EvidenceComparison | None = None
    texts: list[TextChange] = field(default_factory=list)
    verdict: dict[str, Any] | None = None  # review findings: the recorded and the replayed verdict
    missing: list[Missing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)
    index_source: str = ""
    prompt_rebuilt_same: bool | None = None
    audit_seq: int | None = None

    @property
    def fields_changed(self) -> list[str]:
        changed = [t.field for t in self.texts if not t.same]
        if self.verdict and self.verdict["recorded"] != self.verdict["replayed"]:
            changed.append("verdict")
        return changed

    def decide(self) -> None:
        if self.missing or self.recorded.missing:
            self.outcome = "incomplete"
        elif self.replayed is None:
            self.outcome = "nothing-to-replay"
        elif self.evidence is not None and not self.evidence.same:
            self.outcome = "evidence-changed"
        elif self.fields_changed:
            self.outcome = "answer-changed"
        else:
            self.outcome = "identical"

    def to_dict(self) -> dict[str, Any]:
        original = self.recorded.payload or {}
        return {
            "replays_seq": self.recorded.seq,
            "replays": self.recorded.to_dict(),
            "question": original.get("question"),
            "against": self.against,
            "outcome": self.outcome,
            "fields_changed": self.fields_changed,
            "evidence": self.evidence.to_dict() if self.evidence else None,
            "texts": [t.to_dict() for t in self.texts],
            "verdict": self.verdict,
            "missing": [m.to_dict() for m in [*self.recorded.missing, *self.missing]],
            "notes": [*self.recorded.notes, *self.notes],
            "changes": self.changes,
            "index": self.index_source,
            "prompt_rebuilt_same": self.prompt_rebuilt_same,
            "seed": ((original.get("call") or {}).get("parameters") or {}).get("seed"),
            "record": self.replayed,
            "audit_seq": self.audit_seq,
        }


def replay_entry(docket: Docket, seq: int, against: Against = "frozen", *,
                 allowed_documents: frozenset[int] | None = None, record: bool = True) -> ReplayReport:
    """Replay entry ``seq`` (an answer or a review finding); ReplayError when it cannot be replayed at all.

    ``allowed_documents``: what the caller may read, for a replay against today (the service passes the
    user's grants); a frozen replay searches what the original searched. ``record``: append the replay entry."""
    recorded = read_recorded(docket, seq)
    if against == "current":
        # Today's replay needs only the entry itself; what is missing of its time limits what can be said
        # about the changes, not the replay.
        recorded.notes += [f"not known of the entry's time: {m.detail}" for m in recorded.missing if m.what != "entry"]
        recorded.missing = [m for m in recorded.missing if m.what == "entry"]
    report = ReplayReport(recorded, against)
    if not recorded.missing:
        original = recorded.payload
        if original.get("status") == "error" and not original.get("evidence"):
            report.notes.append(f"the recorded ask stopped before its search ({original.get('error')}); there is no "
                                "retrieval or reasoning to replay")
        elif against == "frozen":
            _replay_frozen(docket, report)
        else:
            _replay_current(docket, report, allowed_documents)
    if report.replayed is not None:
        report.evidence = compare_evidence(recorded.payload.get("evidence") or [], report.replayed.get("evidence") or [])
        report.texts = compare_texts(recorded.payload, report.replayed)
        if recorded.finding is not None:
            report.verdict = _verdicts(docket, recorded, report.replayed)
    report.decide()
    if record:
        _record_replay(docket, report)
    return report


# -- frozen -------------------------------------------------------------------------------------------------


def _replay_frozen(docket: Docket, report: ReplayReport) -> None:
    from pipeline.ask import AskOptions, answer_record, to_evidence
    from pipeline.replay.frozen import frozen_search, open_frozen
    from pipeline.replay.snapshots import corpus_snapshot

    recorded = report.recorded
    original = recorded.payload
    settings, problems = replay_settings(docket, recorded)
    report.missing += problems
    if settings is None or recorded.corpus is None:
        return
    retrieval = recorded_retrieval(original)
    encoder, problem = replay_encoder(docket, settings, retrieval.get("embedding_model"))
    if problem:
        report.missing.append(problem)
        return
    index, missing = open_frozen(docket.store, recorded.corpus, encoder.model_id, encoder.dimension,
                                 corpus_snapshot(docket.store))
    report.missing += missing
    if index is None:
        return
    report.index_source = f"{index.source}: {recorded.corpus_source}, {len(index.chunk_ids)} chunks"
    if index.vectors.kind == "hnsw" and index.source != "live":
        report.notes.append("above ingest.vector_index.FLAT_LIMIT chunks the dense index is HNSW, an approximate graph; "
                            "the one rebuilt here is not the one the answer searched, so a rank may differ by its recall")
    from ingest.retrieval import RetrievalOptions

    question = original["question"]
    retrieval_options = RetrievalOptions.from_settings(settings.retrieval)

    def search(query: str, k: int):
        """The recorded search over the frozen index: its hits, and what of them was altered since."""
        return frozen_search(docket.store, index, encoder.encode_query, query, k,
                             collection=original.get("collection"), document_ids=recorded.searched_document_ids,
                             mode=settings.retrieval.mode, options=retrieval_options)

    hits, altered = search(question, int(retrieval["top_k"]))
    report.missing += altered
    if altered:
        return
    from pipeline.ask import with_needed_passages

    # The passages ask added to its search's (statement rows, a clause's wording), searched for in the frozen index.
    hits = with_needed_passages(question, hits, lambda query, k: search(query, k)[0])
    evidence = to_evidence(hits)
    reasoner = _reasoner(settings, original, encoder)
    call = original.get("call") or {}
    if original.get("reasoner") == "magistral" and (call.get("parameters") or {}).get("seed") is None:
        report.notes.append("the answer was recorded without a seed (llm.seed unset): the model is asked again without "
                            "one, and may sample another answer")
    streamed = bool((call.get("parameters") or {}).get("stream"))
    output = reasoner.answer(question, evidence, None, (lambda kind, text: None) if streamed else None)
    report.prompt_rebuilt_same = getattr(reasoner, "rebuilt_same", None)
    if report.prompt_rebuilt_same is False:
        report.notes.append("today's Docket would build another prompt from the same evidence; the recorded "
                            "messages were sent")
    options = _ask_options(original)
    allow = settings.grounding.allow_ungrounded or any(f.startswith("shown although") for f in original.get("flags") or [])
    # What the record builder reads of a Docket: the replay's settings and reasoner, the workspace's registry.
    view = SimpleNamespace(settings=settings, reasoner=reasoner, store=docket.store)
    replayed = answer_record(
        view, question, options, original.get("collection"),
        {**retrieval, "index_generation": recorded.corpus.generation}, evidence, output, allow,
        uuid.uuid4().hex, _now(),
    )
    replayed.payload_version, replayed.corpus = _payload_version(), recorded.corpus.reference()
    replayed.searched_document_ids = recorded.searched_document_ids
    # The settings it replays (the replay's own actor aside, they are the recorded ones).
    replayed.config_hash = original.get("config_hash") or replayed.config_hash
    replayed.settings_sha256 = original.get("settings_sha256")
    report.replayed = replayed.audit_payload()
    report.changes = {"models": _model_changes(original, report.replayed)}


def _payload_version() -> int:
    """The format ask writes today: the replayed record is built by today's code (pipeline.records names
    the format as ANSWER_PAYLOAD_VERSION once the record is typed; before that, ask wrote 2)."""
    from pipeline import records

    return getattr(records, "ANSWER_PAYLOAD_VERSION", 2)


def recorded_retrieval(original: dict[str, Any]) -> dict[str, Any]:
    """The record's retrieval fields, floats back from the strings the log keeps them as."""
    from pipeline.settings import RetrievalSettings

    retrieval = dict(original.get("retrieval") or {})
    known = {k: v for k, v in retrieval.items() if k in RetrievalSettings.model_fields}
    checked = RetrievalSettings.model_validate(known).model_dump(mode="json")
    # Only the fields the record has: one it lacks is the recorded settings' (or SETTINGS_BEFORE_ADDED's).
    return {**retrieval, **{k: checked[k] for k in known}, "top_k": int(retrieval.get("top_k") or checked["top_k"])}


def replay_settings(docket: Docket, recorded: RecordedAnswer):
    """Today's settings with the answering sections replaced by the recorded ones (a secret the record
    masks stays today's); (None, [Missing]) when the recorded settings do not validate any more."""
    from pydantic import ValidationError

    from pipeline.settings import DocketSettings

    current = docket.settings
    data = current.model_dump()
    notes = recorded.notes
    source = recorded.settings or _settings_from_record(recorded.payload)
    for section in REPLAYED_SECTIONS:
        value = source.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            data[section] = value
            continue
        model = DocketSettings.model_fields[section].annotation
        merged = dict(data[section])
        for key, item in value.items():
            if key not in model.model_fields:
                notes.append(f"the recorded setting {section}.{key} is no longer a setting; left out")
            elif isinstance(item, str) and MASK in item:
                pass  # masked in the record (a key, a password in a URL): today's value is the one there is
            else:
                merged[key] = item
        for (added_in, key), before in SETTINGS_BEFORE_ADDED.items():
            if added_in == section and key not in value:
                merged[key] = before
                notes.append(f"the record predates the setting {section}.{key}; replayed as before it: {before}")
        data[section] = merged
    data["retrieval"] = {**data["retrieval"], **{k: v for k, v in recorded_retrieval(recorded.payload).items()
                                                 if k in data["retrieval"]}}
    try:
        return DocketSettings(**data), []
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return None, [Missing("settings", f"the recorded setting {where} no longer validates ({err['msg']})")]


def _settings_from_record(payload: dict[str, Any]) -> dict[str, Any]:
    """Payload format 1: what the record itself says of its settings."""
    retrieval = payload.get("retrieval") or {}
    out: dict[str, Any] = {"reasoner": payload.get("reasoner")}
    if retrieval.get("embedding_backend"):
        out["embedding"] = {"backend": retrieval["embedding_backend"]}
    return out


def replay_encoder(docket: Docket, settings, model_id: str | None):
    """The recorded encoder, or (None, Missing) when it no longer loads or is another model."""
    from ingest.embedding import EmbeddingModelError, Encoder

    encoder = docket.store.encoder if settings.embedding == docket.store.encoder.settings else Encoder(settings.embedding)
    try:
        _ = encoder.model_path, encoder.dimension
    except (EmbeddingModelError, OSError) as exc:
        return None, Missing("encoder", f"the encoder {model_id} (embedding.model {settings.embedding.model!r}) no "
                                        f"longer loads: {exc}")
    if model_id and encoder.model_id != model_id:
        return None, Missing("encoder", f"the answer's encoder was {model_id}; embedding.model "
                                        f"{settings.embedding.model!r} is {encoder.model_id}")
    return encoder, None


def _reasoner(settings, original: dict[str, Any], encoder):
    call = original.get("call") or {}
    if original.get("reasoner") == "magistral":
        from pipeline.replay.recorded_call import RecordedCallReasoner, recorded_llm_settings

        llm = recorded_llm_settings(settings.llm, call)
        if call.get("messages"):
            return RecordedCallReasoner(llm, recorded_messages=list(call["messages"]))
        from pipeline.llm import MagistralReasoner

        return MagistralReasoner(llm)
    from pipeline.extractive import ExtractiveReasoner

    return ExtractiveReasoner(encoder.encode_for_question)


def _ask_options(original: dict[str, Any]):
    from pipeline.ask import AskOptions

    filters = original.get("document_filter") or {}
    day = lambda v: date.fromisoformat(v) if v else None  # noqa: E731
    return AskOptions(
        collection=original.get("collection"), every_collection=original.get("collection") is None,
        documents=list(original.get("documents") or []), doc_types=list(filters.get("types") or []),
        since=day(filters.get("since")), until=day(filters.get("until")), record=False,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- against today ------------------------------------------------------------------------------------------


def _replay_current(docket: Docket, report: ReplayReport, allowed_documents: frozenset[int] | None) -> None:
    from pipeline.ask import ask
    from pipeline.replay.changes import settings_changes, version_changes
    from pipeline.replay.snapshots import corpus_snapshot

    recorded = report.recorded
    original = recorded.payload
    options = _ask_options(original)
    options.allowed_documents = allowed_documents
    replayed = ask(docket, original["question"], options)
    report.replayed = replayed.audit_payload()
    report.index_source = f"live: today's corpus (generation {replayed.corpus.get('generation')})"
    today = corpus_snapshot(docket.store)
    changes: dict[str, Any] = {"models": _model_changes(original, report.replayed)}
    if recorded.corpus is not None:
        versions = version_changes(docket.store, recorded.corpus, today, original.get("collection"),
                                   recorded.searched_document_ids)
        changes["versions"] = [v.to_dict() for v in versions]
    else:
        changes["versions"] = None
        report.notes.append("the recorded corpus is not known, so the versions that changed cannot be listed")
    recorded_settings = recorded.settings or _settings_from_record(original)
    changes["settings"] = settings_changes(_comparable(recorded_settings, recorded), docket.settings.public_dict())
    if recorded.settings is None:
        changes["settings_compared"] = "the record's own retrieval fields (payload format 1 stored no settings)"
    report.changes = changes


def _comparable(settings: dict[str, Any], recorded: RecordedAnswer) -> dict[str, Any]:
    if recorded.settings is not None:
        return settings
    retrieval = {k: v for k, v in recorded_retrieval(recorded.payload).items()
                 if k not in ("embedding_model", "embedding_backend", "index_generation")}
    return {"reasoner": settings.get("reasoner"), "retrieval": retrieval}


def _model_changes(original: dict[str, Any], replayed: dict[str, Any]) -> list[dict[str, Any]]:
    from pipeline.replay.changes import model_changes

    return model_changes(original, replayed)


# -- review findings --------------------------------------------------------------------------------------


def _verdicts(docket: Docket, recorded: RecordedAnswer, replayed: dict[str, Any]) -> dict[str, Any]:
    """The finding's verdict, and the verdict the same judge gives the replayed answer."""
    from pipeline.review.checklist import Checklist
    from pipeline.review.verdicts import judge
    from pipeline.replay.snapshots import find_entry

    finding = recorded.finding
    started = find_entry(docket.audit, "review_started", f"review:{finding['review_id']}")
    item = None
    if started is not None and started.payload is not None:
        item = Checklist.model_validate(started.payload["checklist"]).item(finding["item_id"])
    judgement = judge(AnswerRecord.model_validate(replayed), finding.get("reasoner") or replayed["reasoner"], item)
    return {"recorded": finding.get("verdict"), "replayed": judgement.verdict, "basis": judgement.basis}


# -- the replay's own entry -------------------------------------------------------------------------------


def _record_replay(docket: Docket, report: ReplayReport) -> None:
    data = report.to_dict()
    data.pop("audit_seq")
    shas = {e["doc_sha256"] for side in ((report.recorded.payload or {}), report.replayed or {})
            for e in side.get("evidence") or []}
    appended = docket.audit.append(
        REPLAY_EVENT, floats_to_strings(data), actor=docket.settings.actor, request_id=uuid.uuid4().hex,
        subjects=[f"seq:{report.recorded.seq}", *sorted(shas)], status=report.outcome,
    )
    report.audit_seq = appended.seq


__all__ = ["ReplayError", "ReplayReport", "replay_entry"]
