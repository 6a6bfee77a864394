"""Why a replay on today's corpus and settings may differ: what changed since the recorded answer.

Three lists: document versions added, replaced or removed (frozen snapshot against today's); settings,
key by key (the recorded public settings against today's, secrets masked in both); and the models
(encoder, reasoner, language model, Docket's own version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ingest.registry import Document
from ingest.store import DocumentStore
from pipeline.replay.snapshots import CorpusSnapshot

# Who runs a replay is not a setting that moves an answer; the replay entry names its actor anyway.
IGNORED_SETTINGS = ("actor",)


@dataclass(frozen=True)
class VersionChange:
    change: str  # "new-version", "added" (a document that was not live), "removed" (no longer live)
    document_id: int
    name: str
    collection: str
    from_version: int | None
    to_version: int | None
    from_sha256: str | None
    to_sha256: str | None
    searched: bool  # in the collection / documents the recorded search was restricted to

    def describe(self) -> str:
        if self.change == "new-version":
            return f"{self.name}: version {self.from_version} ({self.from_sha256[:12]}) -> version {self.to_version} ({self.to_sha256[:12]})"
        if self.change == "added":
            return f"{self.name}: version {self.to_version} ({self.to_sha256[:12]}) is live, and was not"
        return f"{self.name}: version {self.from_version} ({self.from_sha256[:12]}) is no longer live"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "describe": self.describe()}


def version_changes(store: DocumentStore, frozen: CorpusSnapshot, current: CorpusSnapshot,
                    collection: str | None, document_ids: list[int] | None) -> list[VersionChange]:
    before = {v.document_id: v for v in frozen.versions}
    after = {v.document_id: v for v in current.versions}
    changed = sorted(d for d in before.keys() | after.keys() if (before.get(d) and before[d].version_id) != (after.get(d) and after[d].version_id))
    if not changed:
        return []
    with store.sessions() as session:
        facts = {row[0]: (row[1], row[2]) for row in session.execute(
            select(Document.id, Document.name, Document.collection).where(Document.id.in_(changed)))}
    out = []
    for document_id in changed:
        a, b = before.get(document_id), after.get(document_id)
        name, in_collection = facts.get(document_id, (f"document {document_id}", None))
        kind = "new-version" if a and b else ("added" if b else "removed")
        searched = (collection is None or in_collection == collection) and (not document_ids or document_id in document_ids)
        out.append(VersionChange(kind, document_id, name, in_collection or "", a.version if a else None,
                                 b.version if b else None, a.sha256 if a else None, b.sha256 if b else None, searched))
    return out


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def settings_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    """Every setting whose value differs, as {"key": "retrieval.top_k", "recorded": 5, "current": 3};
    a key only one side has is listed with None on the other."""
    a, b = flatten(recorded), flatten(current)
    keys = sorted(k for k in a.keys() | b.keys() if k not in IGNORED_SETTINGS and a.get(k) != b.get(k))
    return [{"key": k, "recorded": _plain(a.get(k)), "current": _plain(b.get(k))} for k in keys]


def _plain(value: Any) -> Any:
    """Floats as text: the diff goes into the audit log, which keeps floats out."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def model_changes(recorded: dict[str, Any], replayed: dict[str, Any]) -> list[dict[str, Any]]:
    """Encoder, reasoner, language model and Docket's version of two answer payloads, where they differ."""
    def facts(p: dict[str, Any]) -> dict[str, Any]:
        retrieval, call = p.get("retrieval") or {}, p.get("call") or {}
        return {
            "encoder": retrieval.get("embedding_model"), "encoder_backend": retrieval.get("embedding_backend"),
            "reasoner": p.get("reasoner"), "model_requested": call.get("model_requested"),
            "model_returned": call.get("model_returned"), "software_version": p.get("software_version"),
        }

    a, b = facts(recorded), facts(replayed)
    return [{"what": k, "recorded": a[k], "replayed": b[k]} for k in a if a[k] != b[k]]
