"""Reviewer sign-off: a person accepts or overrides a finding (or a whole review), on the record.

A sign-off is a new ``sign_off`` audit entry, never a change to the finding it is about; reports show
the finding and the sign-offs after it.
"""

from __future__ import annotations

from typing import Literal

from pipeline.app import Docket
from pipeline.review.runner import ReviewError, review_state
from pipeline.review.state import Review, ReviewDocument, SignOff, utc_now
from pipeline.review.verdicts import VERDICTS

Decision = Literal["accept", "override"]
SIGN_OFF_EVENT = "sign_off"


def find_document(review: Review, ref: str) -> ReviewDocument:
    """A reviewed document by name, registry id or SHA-256 prefix (>= 6 hex digits)."""
    ref_l = ref.lower()
    matches = [
        d for d in review.ready_documents
        if d.name == ref or (ref.isdigit() and d.document_id == int(ref))
        or (len(ref_l) >= 6 and d.sha256 and d.sha256.startswith(ref_l))
    ]
    if len(matches) != 1:
        names = ", ".join(d.name for d in review.ready_documents)
        what = "matches no" if not matches else f"matches {len(matches)}"
        raise ReviewError(f"--doc {ref}: {what} document of review {review.id} (documents: {names})")
    return matches[0]


def sign_off(
    docket: Docket,
    review_ref: str,
    decision: str,
    note: str,
    *,
    item: str | None = None,
    doc: str | None = None,
    verdict: str | None = None,
) -> SignOff:
    """Record a reviewer's decision on one cell (item + doc), a row or column, or the whole review."""
    if decision not in ("accept", "override"):
        raise ReviewError(f"--decision {decision}: expected accept or override")
    if not note.strip():
        raise ReviewError("--note is empty: say why (it goes into the audit log with the decision)")
    if verdict is not None and (decision != "override" or verdict not in VERDICTS):
        raise ReviewError(f"--verdict {verdict}: give it with --decision override, one of {', '.join(VERDICTS)}")
    state = review_state(docket)
    try:
        try:
            review = state.load(review_ref)
        except LookupError as exc:
            raise ReviewError(str(exc).strip("'\"")) from None
        item_ids = [i["id"] for i in review.checklist["items"]]
        if item is not None and item not in item_ids:
            raise ReviewError(f"--item {item}: not an item of checklist {review.checklist['name']} ({', '.join(item_ids)})")
        document = find_document(review, doc) if doc is not None else None
        cell = review.cells.get((item, document.sha256)) if item and document else None
        if item and document and cell is None:
            raise ReviewError(f"review {review.id} has no finding yet for {item} on {document.name}; run the review first")
        subjects = [f"review:{review.id}"]
        if document:
            subjects.append(document.sha256)
        if cell:
            subjects.append(f"seq:{cell.audit_seq}")
        s = docket.settings
        payload = {
            "review_id": review.id,
            "item_id": item,
            "document": {"name": document.name, "sha256": document.sha256} if document else None,
            "decision": decision,
            "verdict": verdict,
            "note": note,
            "finding_seq": cell.audit_seq if cell else None,
            "finding_verdict": cell.verdict if cell else None,
        }
        appended = docket.audit.append(
            SIGN_OFF_EVENT, payload, actor=s.actor, request_id=review.id, subjects=subjects, status=decision
        )
        record = SignOff(
            item_id=item, doc_sha256=document.sha256 if document else None, decision=decision, verdict=verdict,
            note=note, actor=s.actor, time=utc_now(), audit_seq=appended.seq,
        )
        state.add_signoff(review.id, record)
        return record
    finally:
        state.close()
