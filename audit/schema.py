"""Tables and append-only triggers, for SQLite and PostgreSQL.

``audit_entries`` is the chain. Payloads live beside it in ``audit_payloads`` so that `redact` can
erase one (its salted commitment stays in the chain). ``audit_head`` is the one updatable row: the
writers' lock, and the running size, head hash and Merkle frontier that make checkpoints O(log n).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, String, Table, Text

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

APPEND_ONLY_TABLES = ("audit_entries", "audit_subjects", "audit_redactions", "audit_signed_heads")

_SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
        for table in APPEND_ONLY_TABLES
        for op in ("UPDATE", "DELETE")
    ),
    "CREATE TRIGGER IF NOT EXISTS audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
    "BEGIN SELECT RAISE(ABORT, 'audit_payloads is append-only: UPDATE refused'); END",
    # Erasing a payload is allowed only as part of a recorded redaction.
    "CREATE TRIGGER IF NOT EXISTS audit_payloads_no_delete BEFORE DELETE ON audit_payloads "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_redactions WHERE seq = OLD.seq) "
    "BEGIN SELECT RAISE(ABORT, 'audit_payloads: DELETE refused; use redact'); END",
]

_POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      -- Concatenated rather than RAISE placeholders, which the DB driver would take for its own.
      RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused';
    END $$""",
    """CREATE OR REPLACE FUNCTION audit_payload_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM audit_redactions WHERE seq = OLD.seq) THEN
        RAISE EXCEPTION 'audit_payloads: DELETE refused; use redact';
      END IF;
      RETURN OLD;
    END $$""",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        for table in APPEND_ONLY_TABLES
    ),
    *(
        f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        for table in (*APPEND_ONLY_TABLES, "audit_payloads")
    ),
    "CREATE OR REPLACE TRIGGER audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    "CREATE OR REPLACE TRIGGER audit_payloads_redact_only BEFORE DELETE ON audit_payloads "
    "FOR EACH ROW EXECUTE FUNCTION audit_payload_delete()",
]


# PostgreSQL compresses payloads of a few kilobytes (TOAST) with pglz by default, and `verify`
# decompresses every one of them; with lz4 the server hands them over faster (docs/audit.md). A
# column setting for values written from now on: values already stored keep their compression and
# read the same. Only where the server is built with lz4 (PostgreSQL 14+, `--with-lz4`).
_LZ4_AVAILABLE = (
    "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)
_PAYLOADS_LZ4 = "ALTER TABLE audit_payloads ALTER COLUMN payload SET COMPRESSION lz4"


def add_signed_heads(conn: Connection) -> None:
    """The upgrade of a log created before signed heads: their table and its triggers, nothing else.

    Idempotent; the rest of an existing log's schema (payload compression included) stays as it is.
    """
    signed_heads.create(conn, checkfirst=True)
    postgres = conn.dialect.name == "postgresql"
    for statement in _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        if "audit_signed_heads" in statement or statement.startswith("CREATE OR REPLACE FUNCTION"):
            conn.exec_driver_sql(statement)


def create_schema(conn: Connection) -> None:
    """Tables and triggers, idempotent; the caller holds a lock so concurrent openers do not race."""
    metadata.create_all(conn, checkfirst=True)
    postgres = conn.dialect.name == "postgresql"
    for statement in _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        conn.exec_driver_sql(statement)
    if postgres and conn.exec_driver_sql(_LZ4_AVAILABLE).first() is not None:
        conn.exec_driver_sql(_PAYLOADS_LZ4)
