"""``ChainVerifier``: the one-pass (O(n) time, O(log n) memory) check of a stream of entries, and
``check_range`` / ``ChainVerifier.absorb``, which let ranges of it be checked in other processes with
the same report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.verification.formats import CHECKPOINT_FORMAT, GENESIS_HASH, LEAF_VERSION, STRUCTURAL_EVENTS
from audit.verification.tree import Frontier, leaf_hash
from audit.verification.entries import (
    FRONTIER_BATCH, KEY_ANNOUNCEMENT_VERSION, ROW_FIELDS, checkpoint_message, endorsement_message,
    handover_message, json_value, key_id_of, leaf_text, payload_commitment, quote_json_string, signature_ok,
    stored_subjects_as_json, subjects_as_json,
)


@dataclass
class VerifyReport:
    ok: bool
    size: int
    root: str
    first_bad_seq: int | None = None
    problem: str | None = None
    redacted: list[int] = field(default_factory=list)
    checkpoints_verified: int = 0
    signed_heads_verified: int = 0  # signed tree heads (the log's own, and the witness's lines) checked
    signed_size: int | None = None  # the size the newest signed head in the log covers (None: none)
    notes: list[str] = field(default_factory=list)  # what an OK does not cover, in plain words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChainProblem(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


@dataclass
class KeyInfo:
    """A key the log announced: since which seq it is valid, how it got there, and whether it is trusted.

    ``how``: "genesis" (the log's first key), "handover" (a rotation signed by the key it retires,
    ``by``) or "endorsed" (another writer's key, enrolled by the valid key ``by``). ``trusted``: one of
    the verifier's trust anchors, or reached from one through handovers and endorsements (always False
    when the verifier was given no anchors).
    """

    public_key: Ed25519PublicKey
    from_seq: int
    retired_at_seq: int | None = None
    key_id: str = ""
    how: str = "genesis"
    by: str | None = None
    trusted: bool = False


_KeyWindow = KeyInfo  # its old name


@dataclass
class TreeHead:
    """A signed tree head to check against the chain: one of the log's own, or a line of a witness file."""

    label: str  # how a problem names it: "signed head of size 12", "witness FILE line 3"
    head: Mapping[str, Any]
    witness: str | None = None  # the witness file it was read from


@dataclass
class RangeNote:
    """What the row checks hand on to the chain-wide checks, in seq order.

    ``missing``: a payload is erased (a later redaction event must explain it); ``event``: a checkpoint,
    key_rotation or redaction event with its payload; ``mark``: the tree just reached the size of the
    checkpoint kept outside. `frontier` is the range's tree at that point, kept only when the range is
    checked apart from the chain (parallel verification).
    """

    kind: str
    seq: int
    event_type: str = ""
    payload: dict[str, Any] | None = None
    commitment: str = ""  # of an erased payload
    frontier: Frontier | None = None


def _misplaced(seq: Any, size: int) -> ChainProblem:
    expected = size + 1
    if seq == expected - 1:
        return ChainProblem(seq, f"seq {seq} appears twice (row duplicated)")
    if isinstance(seq, int) and seq > expected:
        return ChainProblem(expected, f"seq {expected} is missing; the next row is seq {seq} (row deleted)")
    return ChainProblem(seq, f"seq {seq} comes after seq {expected - 1} (rows out of order)")


def _explain_leaf_mismatch(row: Sequence[Any]) -> str:
    seq, stored_leaf = row[0], row[9]
    subjects_json = subjects_as_json(row[5])
    if subjects_json is not None and isinstance(seq, int):
        # Renumbering and reordering keep a row's content but change its seq: find the seq it was
        # committed under, nearby. Only runs on the failure path.
        for committed in [s for d in range(1, 4) for s in (seq + d, seq - d) if s >= 1]:
            text = leaf_text(committed, *row[1:5], subjects_json, *row[6:9])
            if leaf_hash(text.encode("utf-8")).hex() == stored_leaf:
                if committed > seq:
                    return (
                        f"seq {seq} holds the entry committed as seq {committed} "
                        "(rows deleted and renumbered, or rows swapped)"
                    )
                return f"seq {seq} holds a copy of the entry committed as seq {committed} (row duplicated or moved)"
    return f"seq {seq}: its fields do not match its leaf_hash (entry metadata edited)"


def payload_matches(salt: Any, payload: Any, commitment: Any) -> bool:
    try:
        return payload_commitment(salt, payload) == commitment
    except (TypeError, ValueError):  # a salt that is not hex, a payload that is not valid Unicode
        return False


def _structural_payload(seq: int, event_type: str, payload: str | bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ChainProblem(seq, f"seq {seq}: the payload of a {event_type} event is not a JSON object")
    return parsed


class RangeChecker:
    """The checks each row needs and nothing else: seq order, leaf hash, chaining to the previous row,
    payload commitment. It grows the Merkle frontier of the rows it checked and hands whatever needs
    the whole chain (erasures, the log's own events, the outside checkpoint's size) to `on_note`.

    `ChainVerifier` runs one over the whole log; parallel verification runs one per range of seqs.
    """

    def __init__(self, start: int, head: str, mark: int | None, on_note: Callable[[RangeNote], None]) -> None:
        self.start = start  # rows before this range
        self.head = head  # leaf hash of the row before it (hex)
        self.mark = mark  # size of the checkpoint kept outside, if any
        self.on_note = on_note
        self.frontier = Frontier()  # over this range's rows only

    def check_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Check rows (tuples in `ROW_FIELDS` order) in seq order; raises ChainProblem at the first bad one."""
        # The hot loop of every verification: names bound locally, no dict and no Python function call
        # per row. Leaf hashes are compared in hex, the form they are stored in, and gathered (`pending`)
        # to grow the Merkle frontier a level at a time (`Frontier.extend`), before any note (whose
        # handler may read the tree) and every `FRONTIER_BATCH` rows (memory stays O(log n)).
        frontier, head, mark, on_note = self.frontier, self.head, self.mark, self.on_note
        sha256, fromhex, json_string, stored_subjects = hashlib.sha256, bytes.fromhex, quote_json_string, stored_subjects_as_json
        version, structural, batch_mask = LEAF_VERSION, STRUCTURAL_EVENTS, FRONTIER_BATCH - 1
        size = self.start + frontier.size
        pending: list[str] = []
        gather = pending.append
        try:
            for row in rows:
                seq, time, event_type, actor, request_id, subjects, status, commitment, prev_hash, stored_leaf, salt, payload = row
                if seq != size + 1:
                    raise _misplaced(seq, size)
                subjects_json = stored_subjects(subjects) if type(subjects) is str else json_value(subjects)
                try:  # `HASHED_LEAF_TEMPLATE % ...` as in `leaf_text`, written as an f-string, which is faster per row
                    text = (
                        f'\x00{{"actor":{json_string(actor)},"event_type":{json_string(event_type)},'
                        f'"payload_commitment":{json_string(commitment)},"prev_hash":{json_string(prev_hash)},'
                        f'"request_id":{"null" if request_id is None else json_string(request_id)},'
                        f'"seq":{seq if type(seq) is int else json_value(seq)},'
                        f'"status":{"null" if status is None else json_string(status)},'
                        f'"subjects":{subjects_json},"time":{json_string(time)},"v":{version}}}'
                    )
                except TypeError:  # a value that is not a string where one belongs (an edited row)
                    text = "\x00" + leaf_text(seq, time, event_type, actor, request_id, subjects_json, status, commitment, prev_hash)
                try:
                    computed = sha256(text.encode("utf-8")).hexdigest()
                except UnicodeEncodeError:
                    raise ChainProblem(seq, f"seq {seq}: a field is not valid Unicode (entry edited)") from None
                if computed != stored_leaf or subjects_json is None:
                    raise ChainProblem(seq, _explain_leaf_mismatch(row))
                if prev_hash != head:
                    # This row's prev_hash is covered by its own (verified) leaf hash, so it is the
                    # original value: the row before it is the one that changed.
                    raise ChainProblem(
                        seq - 1,
                        f"seq {seq - 1} no longer has the leaf hash that seq {seq} was chained to "
                        "(entry edited and rehashed, or replaced)",
                    )
                if payload is None:
                    if event_type in structural:
                        raise ChainProblem(seq, f"seq {seq}: the payload of a {event_type} event is missing")
                    if pending:
                        frontier.extend(fromhex("".join(pending)))
                        pending.clear()
                    on_note(RangeNote("missing", seq, commitment=commitment))
                else:
                    # `payload_matches`, inline: this is the bulk of the bytes verification hashes.
                    try:
                        digest = sha256(fromhex(salt))
                        digest.update(payload if type(payload) is bytes else payload.encode("utf-8"))
                        matches = digest.hexdigest() == commitment
                    except (TypeError, ValueError):  # a salt that is not hex, a payload that is not valid Unicode
                        matches = False
                    if not matches:
                        raise ChainProblem(seq, f"seq {seq}: payload does not match its commitment (payload edited)")
                    # Only the log's own events need reading; other payloads are opaque bytes here.
                    if event_type in structural:
                        if pending:
                            frontier.extend(fromhex("".join(pending)))
                            pending.clear()
                        on_note(RangeNote("event", seq, event_type, _structural_payload(seq, event_type, payload)))
                gather(computed)
                size += 1
                head = computed
                if seq == mark or not size & batch_mask:
                    frontier.extend(fromhex("".join(pending)))
                    pending.clear()
                    if seq == mark:
                        on_note(RangeNote("mark", seq))
        finally:
            self.head = head
            if pending:  # the rows that passed every check, up to a problem if there was one
                frontier.extend(fromhex("".join(pending)))


@dataclass
class RangeResult:
    """A range of seqs checked on its own (`check_range`), to be joined to the chain with `ChainVerifier.absorb`."""

    start: int  # the range holds the rows after seq `start`
    first_seq: int | None  # seq of its first row (None: it has no rows)
    frontier: Frontier  # over its rows, up to the problem if there is one
    head: str
    notes: list[RangeNote]
    problem: tuple[int | None, str] | None = None  # (seq, why) of the first bad row


def check_range(batches: Iterable[Sequence[Sequence[Any]]], start: int, head: str, mark: int | None) -> RangeResult:
    """Check the rows after seq `start`, assuming the chain up to there is intact and ends in `head`.

    `ChainVerifier.absorb` checks that assumption when it joins the result, so the report is the one a
    single pass would give. Memory: the range's frontier, plus a frontier per note.
    """
    notes: list[RangeNote] = []

    def keep(note: RangeNote) -> None:
        note.frontier = Frontier(checker.frontier.size, checker.frontier.hashes)
        notes.append(note)

    checker = RangeChecker(start, head, mark, keep)
    first_seq: int | None = None
    problem: tuple[int | None, str] | None = None
    try:
        for batch in batches:
            if first_seq is None and batch:
                first_seq = batch[0][0]
            checker.check_rows(batch)
    except ChainProblem as found:
        problem = (found.seq, found.problem)
    return RangeResult(start, first_seq, checker.frontier, checker.head, notes, problem)


class ChainVerifier:
    """Feed rows in seq order (`add`, `add_rows`) or ranges checked elsewhere (`absorb`); `finish` reports.

    Memory is the Merkle frontier, the key windows and the seqs whose payload is missing but not yet
    explained by a redaction event, so O(log n) for an honest log.
    """

    def __init__(
        self,
        trusted_keys: Mapping[str, Ed25519PublicKey] | None,
        log_id: str | None = None,
        stored_payload: Callable[[int], tuple[Any, Any] | None] | None = None,
    ) -> None:
        self.trusted_keys = trusted_keys
        self.log_id = log_id
        # For ranges read in a later snapshot than ours (SQLite workers), where a payload may have been
        # erased since: (salt, payload) of a seq as our snapshot holds it, None when erased here too.
        self.stored_payload = stored_payload
        self.rows = RangeChecker(0, GENESIS_HASH, None, lambda note: self._apply(note, self.frontier))
        # Every key the log announced (`KeyInfo`), in announcement order; several can be valid at once
        # (one per writer). `trusted_keys` are the anchors: the log's first key must be one of them.
        self.keys: dict[str, KeyInfo] = {}
        self.genesis_key_id: str | None = None
        self.active_key_id: str | None = None  # the key announced last
        self.signers: dict[str, int] = {}  # key id -> checkpoints and signed heads it signed, as checked
        self.announces_signed_heads = False  # a v2 key announcement: its writer signs every transaction's head
        self.signed_heads_verified = 0
        self.signed_size: int | None = None
        self.notes: list[str] = []
        self.awaiting_redaction: set[int] = set()
        self.redacted: list[int] = []
        self.last_good_checkpoint_size = 0
        self.checkpoints_verified = 0
        self.outside: Mapping[str, Any] | None = None
        self.outside_label = ""

    @property
    def frontier(self) -> Frontier:
        return self.rows.frontier

    @property
    def windows(self) -> dict[str, KeyInfo]:  # its old name
        return self.keys

    def key_valid_at(self, key_id: str, size: int, *, head: bool = False) -> bool:
        """May this key sign a checkpoint (or, with `head`, a signed head) of this size?

        The log's first key signs heads from the first entry on: it is announced lazily, at the first
        checkpoint, after the heads of the entries before it were signed.
        """
        info = self.keys.get(key_id)
        if info is None:
            return False
        starts = 0 if head and info.how == "genesis" else info.from_seq
        return starts <= size and (info.retired_at_seq is None or size < info.retired_at_seq)

    def trust_summary(self) -> list[str]:
        """One line per key that signed something checked: pinned, reached from a pinned key, or neither."""
        lines = []
        for key_id, count in sorted(self.signers.items()):
            info = self.keys.get(key_id)
            what = f"key {key_id} signed {count} checkpoint(s) or head(s)"
            if self.trusted_keys is None:
                lines.append(f"{what}: no key was pinned, so it is trusted only because the log announces it")
            elif key_id in self.trusted_keys:
                lines.append(f"{what}: a trusted (pinned) key")
            elif info is not None and info.trusted:
                lines.append(f"{what}: reached from a trusted key ({info.how} by {info.by})")
            else:
                lines.append(f"{what}: NOT reached from any trusted key")
        return lines

    # -- checkpoints kept outside the log --------------------------------------------------------
    def expect_checkpoint(self, checkpoint: Mapping[str, Any], label: str) -> None:
        """Compare the tree against a checkpoint the auditor kept; signature checked at `finish`."""
        for name in ("size", "root", "time", "key_id", "signature"):
            if name not in checkpoint:
                raise ChainProblem(None, f"checkpoint {label}: field '{name}' is missing")
        self.outside, self.outside_label = checkpoint, label
        self.rows.mark = checkpoint["size"]
        if self.trusted_keys is not None:
            # Check it now, so that a forged checkpoint is not mistaken for a rewritten log.
            self._check_signature(checkpoint, f"checkpoint {label}", None)

    # -- the stream --------------------------------------------------------------------------------
    def add(self, entry: Mapping[str, Any]) -> None:
        """One entry as a mapping with the `ROW_FIELDS` (a bundle line)."""
        self.rows.check_rows([tuple(entry.get(name) for name in ROW_FIELDS)])

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows as tuples in `ROW_FIELDS` order (a database cursor's)."""
        self.rows.check_rows(rows)

    def absorb(self, part: RangeResult) -> None:
        """Continue the chain with a range checked elsewhere, reporting exactly what `add_rows` would have."""
        if part.first_seq is None:
            return  # no rows: the next row's seq check tells what is missing
        base = self.frontier
        if base.size != part.start:
            # The range was checked assuming the chain reached seq `start`; it did not, and its first
            # row is the next one a single pass would have seen.
            raise _misplaced(part.first_seq, base.size)
        for note in part.notes:
            assert note.frontier is not None
            self._apply_at(note, base.extended(note.frontier))
        self.rows.frontier = base.extended(part.frontier)
        self.rows.head = part.head
        if part.problem is not None:
            raise ChainProblem(*part.problem)

    def finish(self, recorded_size: int | None = None) -> VerifyReport:
        """End of stream: truncation, unexplained erasures, and the outside checkpoint's signature."""
        size = self.frontier.size
        if recorded_size is not None and recorded_size > size:
            raise ChainProblem(
                size + 1, f"the chain head records {recorded_size} entries but the log ends at seq {size} (tail truncated)"
            )
        if self.outside is not None:
            label = f"checkpoint {self.outside_label}"
            if self.outside["size"] > size:
                if self.trusted_keys is None and self.outside["key_id"] in self.windows:
                    self._check_signature(self.outside, label, None)
                raise ChainProblem(
                    size + 1,
                    f"checkpoint {self.outside_label} covers {self.outside['size']} entries but the log ends at seq "
                    f"{size}: seq {size + 1}..{self.outside['size']} are missing (tail truncated or an old backup restored)",
                )
            self._check_key_window(self.outside, label, None)
        if self.awaiting_redaction:
            seq = min(self.awaiting_redaction)
            raise ChainProblem(seq, f"seq {seq}: payload is missing and no redaction event covers it (payload deleted)")
        return self._report()

    def report(self, problem: ChainProblem) -> VerifyReport:
        return self._report(problem)

    def report_ok(self) -> VerifyReport:
        return self._report()

    def _report(self, problem: ChainProblem | None = None) -> VerifyReport:
        return VerifyReport(
            ok=problem is None,
            size=self.frontier.size,
            root=self.frontier.root().hex(),
            first_bad_seq=None if problem is None else problem.seq,
            problem=None if problem is None else problem.problem,
            redacted=sorted(self.redacted),
            checkpoints_verified=self.checkpoints_verified,
            signed_heads_verified=self.signed_heads_verified,
            signed_size=self.signed_size,
            notes=list(self.notes),
        )

    # -- helpers -----------------------------------------------------------------------------------
    def _apply_at(self, note: RangeNote, frontier: Frontier) -> None:
        """A note from a range checked elsewhere; on failure the report shows the tree at that note."""
        try:
            if note.kind == "missing" and self.stored_payload is not None:
                stored = self.stored_payload(note.seq)
                if stored is not None:  # erased after our snapshot: check it as a single pass would have
                    if not payload_matches(*stored, note.commitment):
                        raise ChainProblem(note.seq, f"seq {note.seq}: payload does not match its commitment (payload edited)")
                    return
            self._apply(note, frontier)
        except ChainProblem:
            self.rows.frontier = frontier
            raise

    def _apply(self, note: RangeNote, frontier: Frontier) -> None:
        """`frontier` is the whole tree at the note: before an event's own leaf, after a mark's."""
        if note.kind == "missing":
            self.awaiting_redaction.add(note.seq)
        elif note.kind == "event":
            assert note.payload is not None
            self._check_event(note.seq, note.event_type, note.payload, frontier)
        else:
            self._compare_outside(frontier)

    def _check_event(self, seq: int, kind: str, payload: dict[str, Any], frontier: Frontier) -> None:
        if kind == "redaction":
            target = payload.get("seq")
            if target in self.awaiting_redaction:
                self.awaiting_redaction.discard(target)
                self.redacted.append(target)
        elif kind == "key_rotation":
            self._register_key(seq, payload)
        elif kind == "checkpoint":
            label = f"checkpoint at seq {seq}"
            if payload.get("size") != seq - 1:
                raise ChainProblem(seq, f"{label} claims size {payload.get('size')}, expected {seq - 1}")
            self._check_signature(payload, label, seq)
            self._check_key_window(payload, label, seq)
            if payload.get("root") != frontier.root().hex():
                lo = self.last_good_checkpoint_size + 1
                raise ChainProblem(
                    lo, f"{label} signs a different root for size {seq - 1}: entries {lo}..{seq - 1} were rewritten"
                )
            self.last_good_checkpoint_size = seq - 1
            self.checkpoints_verified += 1

    def _register_key(self, seq: int, payload: Mapping[str, Any]) -> None:
        """A key announcement: the log's first key, a writer's rotation (handover) or another writer's key (endorsed).

        Only the first announcement of a log may stand alone; any later key counts only when a key
        valid at that seq signed it in (handover or endorsement), so a key announced by someone who
        holds no key counts for nothing.
        """
        key_id, public_hex = payload.get("key_id"), payload.get("public_key", "")
        try:
            announced = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        except (TypeError, ValueError):
            raise ChainProblem(seq, f"seq {seq}: key_rotation carries an invalid public key") from None
        if key_id_of(announced) != key_id:
            raise ChainProblem(seq, f"seq {seq}: key_rotation key id {key_id} does not match its public key")
        if key_id in self.keys:
            raise ChainProblem(seq, f"seq {seq}: key_rotation announces key {key_id} a second time")
        log_id = payload.get("log_id", "")
        previous, endorser = payload.get("previous_key_id"), payload.get("endorsed_by")
        if previous is not None:
            old = self.keys.get(previous)
            if old is None or old.retired_at_seq is not None:
                raise ChainProblem(
                    seq, f"seq {seq}: key_rotation hands over from {previous}, which is not a valid key of this log "
                    "(never announced, or already retired)"
                )
            message = handover_message(log_id, key_id, public_hex, previous)
            if not signature_ok(old.public_key, payload.get("handover_signature", ""), message):
                raise ChainProblem(seq, f"seq {seq}: key_rotation is not signed by the outgoing key {previous}")
            old.retired_at_seq = seq
            info = KeyInfo(announced, seq, key_id=key_id, how="handover", by=previous, trusted=old.trusted)
        elif endorser is not None:
            by = self.keys.get(endorser)
            if by is None or not self.key_valid_at(endorser, seq):
                raise ChainProblem(seq, f"seq {seq}: key {key_id} is endorsed by {endorser}, which is not a valid key at seq {seq}")
            message = endorsement_message(log_id, key_id, public_hex, endorser)
            if not signature_ok(by.public_key, payload.get("endorsement_signature", ""), message):
                raise ChainProblem(seq, f"seq {seq}: the endorsement of key {key_id} does not verify with key {endorser} (forged)")
            info = KeyInfo(announced, seq, key_id=key_id, how="endorsed", by=endorser, trusted=by.trusted)
        elif self.genesis_key_id is None:
            if self.trusted_keys is not None and key_id not in self.trusted_keys:
                raise ChainProblem(
                    seq, f"seq {seq}: key_rotation announces the log's first key {key_id}, which is not a trusted public key"
                )
            self.genesis_key_id = key_id
            info = KeyInfo(announced, seq, key_id=key_id, how="genesis", trusted=self.trusted_keys is not None)
        else:
            raise ChainProblem(
                seq, f"seq {seq}: key_rotation announces key {key_id} with neither a handover nor an endorsement by a "
                "valid key (a key announced without one counts for nothing)"
            )
        if self.trusted_keys is not None and key_id in self.trusted_keys:
            info.trusted = True
        if payload.get("v") == KEY_ANNOUNCEMENT_VERSION:
            self.announces_signed_heads = True
        self.keys[key_id] = info
        self.active_key_id = key_id

    def _check_signature(self, checkpoint: Mapping[str, Any], label: str, seq: int | None) -> None:
        """Is the checkpoint from this log and signed by the key it names?"""
        key_id = checkpoint.get("key_id")
        if self.log_id is not None and checkpoint.get("log_id") != self.log_id:
            raise ChainProblem(seq, f"{label} belongs to log {checkpoint.get('log_id')}, not {self.log_id}")
        window = self.windows.get(key_id)
        key = window.public_key if window else (self.trusted_keys or {}).get(key_id)
        if key is None:
            raise ChainProblem(seq, f"{label} is signed by key {key_id}, which is not a trusted public key (wrong key)")
        if not signature_ok(key, checkpoint.get("signature", ""), checkpoint_message(checkpoint)):
            raise ChainProblem(seq, f"{label}: signature does not verify with key {key_id} (forged or altered)")
        self.signers[key_id] = self.signers.get(key_id, 0) + 1

    def _check_key_window(self, checkpoint: Mapping[str, Any], label: str, seq: int | None) -> None:
        """Was the signing key the log's active key at the checkpoint's size?"""
        key_id, size = checkpoint.get("key_id"), checkpoint.get("size")
        window = self.windows.get(key_id)
        if window is None:
            raise ChainProblem(seq, f"{label} is signed by key {key_id}, which the log never announced")
        if size < window.from_seq or (window.retired_at_seq is not None and size >= window.retired_at_seq):
            last = "" if window.retired_at_seq is None else window.retired_at_seq - 1
            raise ChainProblem(
                seq,
                f"{label} (size {size}) is signed by key {key_id}, which is valid only for sizes "
                f"{window.from_seq}..{last} (rotated-out key)",
            )

    def _compare_outside(self, frontier: Frontier) -> None:
        assert self.outside is not None
        self._check_signature(self.outside, f"checkpoint {self.outside_label}", None)
        if frontier.root().hex() != self.outside["root"]:
            lo = self.last_good_checkpoint_size + 1
            raise ChainProblem(
                lo,
                f"checkpoint {self.outside_label} signs a different root for size {self.outside['size']}: "
                f"entries {lo}..{self.outside['size']} were rewritten (chain recomputed)",
            )

    # -- signed tree heads (after the chain pass: the key windows are known) ------------------------
    def check_tree_heads(
        self, heads: Iterable[TreeHead], leaves: Iterable[bytes], *, heads_expected: bool, newest_witnessed: TreeHead | None = None
    ) -> None:
        """Check signed heads against the chain just verified; raises ChainProblem at the first bad one.

        `heads`: the log's own and the witness's, in order of size (the log's first at equal sizes);
        `leaves`: the stored leaf hashes of seq 1.. in order, as chunks of concatenated 32-byte hashes
        (verified by the pass that came before, in the same snapshot). Each head must name this log,
        be signed by a key valid at its size, and sign the root of the first `size` entries; the
        newest of the log's own heads must cover the whole log. A log without any must not be one whose
        writers sign them: `heads_expected` (the caller knows), or a key announced since signed heads.
        """
        size = self.frontier.size
        if newest_witnessed is not None and newest_witnessed.head.get("size", 0) > size:
            heads = [newest_witnessed]  # a rollback: name the newest size the witness saw
        tree, buffered, chunks = Frontier(), b"", iter(leaves)
        good = 0  # the largest size a head checked so far vouches for
        first_own: int | None = None
        for item in heads:
            head = item.head
            head_size = self._tree_head_fields(item)
            if head_size > size:
                self._check_head_signature(item, head_size)
                if item.witness is not None:
                    raise ChainProblem(
                        size + 1, f"the log has {size} entries but the witness {item.witness} holds a signed head for "
                        f"{head_size} ({item.label}): tail truncated or an old backup restored"
                    )
                raise ChainProblem(
                    size + 1, f"{item.label} covers {head_size} entries but the log ends at seq {size}: "
                    f"seq {size + 1}..{head_size} are missing (tail truncated)"
                )
            while tree.size < head_size:  # grow the tree to exactly this head's size
                if not buffered:
                    buffered = next(chunks, b"")
                    if not buffered:
                        raise ChainProblem(tree.size + 1, f"seq {tree.size + 1}: its leaf hash could not be read again")
                take = min(len(buffered) // 32, head_size - tree.size) * 32
                tree.extend(buffered[:take])
                buffered = buffered[take:]
            self._check_head_signature(item, head_size)
            if head.get("root") != tree.root().hex():
                lo = good + 1
                where = f"seq {lo} was" if lo == head_size else f"entries {lo}..{head_size} were"
                source = f" (the witness {item.witness} disagrees with the log)" if item.witness is not None else ""
                raise ChainProblem(lo, f"{item.label} signs a different root for size {head_size}: {where} rewritten{source}")
            good = max(good, head_size)
            self.signed_heads_verified += 1
            if item.witness is None:
                first_own = head_size if first_own is None else first_own
                self.signed_size = head_size
        if self.signed_size is None:
            if size and (heads_expected or self.announces_signed_heads):
                raise ChainProblem(
                    1, f"the log holds {size} entries but no signed head: entries 1..{size} are not covered by a "
                    "signed head (signed heads deleted)"
                )
            if size:
                self.notes.append(
                    f"no signed head: the {size} entries were written without one (before signed heads, or "
                    "without a key) and are covered only by checkpoints"
                )
            return
        if self.signed_size < size:
            raise ChainProblem(
                self.signed_size + 1, f"entries after seq {self.signed_size} are not covered by a signed head "
                f"(seq {self.signed_size + 1}..{size}: appended without a key, or their signed heads deleted)"
            )
        if first_own is not None and any(info.from_seq < first_own for info in self.keys.values()):
            self.notes.append(
                f"the first signed head covers size {first_own}: entries 1..{first_own} were written before it "
                "(an older log, or one first transaction) and changes made to them before it was signed are "
                "caught only by checkpoints"
            )
        if not self.announces_signed_heads and self.keys:
            self.notes.append(
                "this log's keys were announced before signed heads: run `docket audit rotate-key` once, so that "
                "the log itself records that its heads are signed (until then, deleting every signed head passes)"
            )

    def _tree_head_fields(self, item: TreeHead) -> int:
        head = item.head
        for name in ("format", "log_id", "size", "root", "time", "key_id", "signature"):
            if name not in head:
                raise ChainProblem(None, f"{item.label}: field '{name}' is missing")
        head_size = head["size"]
        if type(head_size) is not int or head_size < 0:
            raise ChainProblem(None, f"{item.label}: size {head_size!r} is not a whole number")
        if not all(type(head[name]) is str for name in ("format", "log_id", "root", "time", "key_id", "signature")):
            raise ChainProblem(None, f"{item.label}: a field is not a string")
        if head["format"] != CHECKPOINT_FORMAT:
            raise ChainProblem(None, f"{item.label}: format {head['format']!r} is not {CHECKPOINT_FORMAT}")
        if self.log_id is not None and head["log_id"] != self.log_id:
            raise ChainProblem(None, f"{item.label} belongs to log {head['log_id']}, not {self.log_id}")
        return head_size

    def _check_head_signature(self, item: TreeHead, head_size: int) -> None:
        head, key_id = item.head, item.head["key_id"]
        info = self.keys.get(key_id)
        seq = None if item.witness is not None or head_size < 1 else head_size
        if info is not None:
            if not self.key_valid_at(key_id, head_size, head=True):
                last = "" if info.retired_at_seq is None else info.retired_at_seq - 1
                start = 0 if info.how == "genesis" else info.from_seq
                raise ChainProblem(
                    seq, f"{item.label} is signed by key {key_id}, which is valid only for sizes {start}..{last}"
                )
            key = info.public_key
        elif not self.keys and self.trusted_keys is not None and key_id in self.trusted_keys:
            key = self.trusted_keys[key_id]  # the first writer's key, not announced yet (at the first checkpoint)
        elif not self.keys and self.trusted_keys is None:
            note = f"signed heads by key {key_id} were not checked: the log does not announce it yet and no keys directory was given"
            if note not in self.notes:
                self.notes.append(note)
            return
        else:
            raise ChainProblem(seq, f"{item.label} is signed by key {key_id}, which is not a valid key of this log (wrong key)")
        if not signature_ok(key, head["signature"], checkpoint_message(head)):
            raise ChainProblem(seq, f"{item.label}: signature does not verify with key {key_id} (forged or altered)")
        self.signers[key_id] = self.signers.get(key_id, 0) + 1


def verify_rows(
    batches: Iterable[Iterable[Sequence[Any]]],
    trusted_keys: Mapping[str, Ed25519PublicKey] | None,
    *,
    checked_ranges: Iterable[RangeResult] = (),
    stored_payload: Callable[[int], tuple[Any, Any] | None] | None = None,
    log_id: str | None = None,
    outside_checkpoint: Mapping[str, Any] | None = None,
    checkpoint_label: str = "",
    recorded_size: int | None = None,
    after_chain: Callable[[ChainVerifier], None] | None = None,
) -> VerifyReport:
    """Verify a log in one pass: ranges checked elsewhere (in seq order), then batches of the rows after them.

    The report names the first bad seq and why, the same with or without `checked_ranges`
    (`stored_payload`: see `ChainVerifier`). `after_chain` runs once the chain checked out, with the
    verifier (e.g. `check_tree_heads`); a ChainProblem it raises is the report.
    """
    verifier = ChainVerifier(trusted_keys, log_id, stored_payload)
    try:
        if outside_checkpoint is not None:
            verifier.expect_checkpoint(outside_checkpoint, checkpoint_label)
        for part in checked_ranges:
            verifier.absorb(part)
        for batch in batches:
            verifier.add_rows(batch)
        report = verifier.finish(recorded_size)
        if after_chain is None:
            return report
        after_chain(verifier)  # the checks that need the whole chain's keys first: signed heads, the witness
        return verifier.report_ok()
    except ChainProblem as problem:
        return verifier.report(problem)


def verify_stream(
    entries: Iterable[Mapping[str, Any]],
    trusted_keys: Mapping[str, Ed25519PublicKey] | None,
    **options: Any,
) -> VerifyReport:
    """Verify a stream of entries (mappings with the `ROW_FIELDS`) in one pass, as `verify_rows` does."""
    return verify_rows(([tuple(e.get(name) for name in ROW_FIELDS)] for e in entries), trusted_keys, **options)
