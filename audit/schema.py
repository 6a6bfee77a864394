"""The audit log's tables, for SQLite and PostgreSQL; the migrations (audit/migrations/) create them and their triggers.

``audit_entries`` is the chain. Payloads live beside it in ``audit_payloads`` so that `redact` can
erase one (its salted commitment stays in the chain). ``audit_head`` is the one updatable row: the
writers' lock, and the running size, head hash and Merkle frontier that make checkpoints O(log n).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# On SQLite, `seq` is declared INTEGER so that, as the primary key, it is the table's rowid: the
# table is then stored in seq order and a scan in seq order reads it directly, where a BIGINT key
# is a separate index that costs a search per row (verify's 100k-entry read: 3.4 against 3.9 CPU
# µs per entry; docs/audit.md). SQLite integers are 64-bit either way. Logs created before keep
# their BIGINT key and read the same, a little slower.
SEQ = BigInteger().with_variant(Integer(), "sqlite")

entries = Table(
    "audit_entries",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("time", String(32), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("request_id", String(200)),
    Column("subjects", Text, nullable=False),  # canonical JSON list; the leaf commits to it
    Column("status", String(32)),
    Column("payload_commitment", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    Index("ix_audit_entries_time", "time"),
    Index("ix_audit_entries_actor", "actor"),
    Index("ix_audit_entries_event_type", "event_type"),
    Index("ix_audit_entries_status", "status"),
    Index("ix_audit_entries_request_id", "request_id"),
)

# An index for `--subject` filters only; verification reads subjects from the entry itself.
subjects = Table(
    "audit_subjects",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

payloads = Table(
    "audit_payloads",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("salt", String(64), nullable=False),
    Column("payload", Text, nullable=False),
)

redactions = Table(
    "audit_redactions",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("redaction_seq", BigInteger, nullable=False),
)

head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("log_id", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("frontier", Text, nullable=False),  # JSON list of hex subtree roots
    Column("checkpoint_size", BigInteger, nullable=False),
    Column("key_id", String(16)),  # the key the log last announced
)

# The tree head signed by the writer's key on every committed append transaction: a checkpoint dict
# (format, log_id, size, root, time, key_id, signature). Kept beside the chain rather than as entries,
# so that an append stays one entry; verify checks that the newest one covers the whole log.
signed_heads = Table(
    "audit_signed_heads",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("format", String(64), nullable=False),
    Column("log_id", String(32), nullable=False),
    Column("root", String(64), nullable=False),
    Column("time", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
)
