"""Reviewer sign-off: a person accepts or overrides a finding (or a whole review), on the record.

A sign-off is a new ``sign_off`` audit entry, never a change to the finding it is about; reports show
the finding and the sign-offs after it.

The whole-review rule lives here and only here (the CLI, the API and the web app all call
``sign_off``): accepting a whole review is refused while it has open items (``reports.open_items``:
cells that still need a human, cells not run, documents not reviewed), unless the reviewer states how
many they accept open (``acknowledge_open``, which must be that number, so a stale or guessed
acknowledgement is refused too). The acknowledgement, with the items and who gave it, is recorded in
the ``sign_off`` entry's payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pipeline.review.reports import OpenItem, open_items
from pipeline.review.runner import ReviewError, review_state
from pipeline.review.state import Review, ReviewDocument, SignOff, utc_now
from pipeline.review.verdicts import VERDICTS

if TYPE_CHECKING:
    from pipeline.app import Docket

Decision = Literal["accept", "override"]
SIGN_OFF_EVENT = "sign_off"
_LISTED = 5  # open items named in a refusal; the count is always whole


class SignOffRefused(ReviewError):
    """A whole-review accept while items are open and not (correctly) acknowledged.

    ``str()`` is the CLI's line; ``message(how)`` says the same with another interface's way to
    acknowledge (the API's JSON field, the web page's tick box)."""

    def __init__(self, review_id: str, items: list[OpenItem], acknowledged: int | None):
        self.review_id, self.items, self.acknowledged = review_id, items, acknowledged
        super().__init__(self.message(f"--acknowledge-open {len(items)}"))

    def message(self, how: str) -> str:
        n = len(self.items)
        named = "; ".join(o.describe() for o in self.items[:_LISTED]) + ("; …" if n > _LISTED else "")
        if n == 0:
            return (f"review {self.review_id}: not signed off, the acknowledgement says {self.acknowledged} open but "
                    "none is open now; accept it without the acknowledgement")
        if self.acknowledged is None:
            lead = f"review {self.review_id}: not signed off, {n} open item{'' if n == 1 else 's'} ({named})"
        else:
            lead = (f"review {self.review_id}: not signed off, the acknowledgement says {self.acknowledged} open "
                    f"but {n} {'is' if n == 1 else 'are'} open now ({named})")
        return f"{lead}; resolve them (sign off each cell), or accept the review with them open: {how}"


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
    acknowledge_open: int | None = None,
) -> SignOff:
    """Record a reviewer's decision on one cell (item + doc), a row or column, or the whole review.

    A whole-review accept with open items raises ``SignOffRefused`` unless ``acknowledge_open`` is their
    number; nothing is recorded then."""
    if decision not in ("accept", "override"):
        raise ReviewError(f"--decision {decision}: expected accept or override")
    if not note.strip():
        raise ReviewError("--note is empty: say why (it goes into the audit log with the decision)")
    if verdict is not None and (decision != "override" or verdict not in VERDICTS):
        raise ReviewError(f"--verdict {verdict}: give it with --decision override, one of {', '.join(VERDICTS)}")
    whole_accept = decision == "accept" and item is None and doc is None
    if acknowledge_open is not None and not whole_accept:
        raise ReviewError("--acknowledge-open is for accepting the whole review (no --item, no --doc, --decision accept)")
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
        acknowledged = None
        if whole_accept:
            opened = open_items(review)
            if (opened or acknowledge_open is not None) and acknowledge_open != len(opened):
                raise SignOffRefused(review.id, opened, acknowledge_open)
            if opened:  # who accepted which items open, beside the decision itself
                acknowledged = {"count": len(opened), "by": docket.settings.actor,
                                "items": [o.to_dict() for o in opened]}
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
        if acknowledged is not None:
            payload["acknowledged_open"] = acknowledged
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
