"""Baseline: the audit log as Docket made it before migrations (chain, subjects, payloads, redactions, head).

A log made before migrations has these tables already and gains only the version row; each table
and trigger here is created only where it is missing. Nothing reads or writes a row.

Revision ID: a0001
Revises:
"""

import sqlalchemy as sa
from alembic import context, op

revision = "a0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_entries", "audit_subjects", "audit_redactions")

SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
        for table in APPEND_ONLY
        for verb in ("UPDATE", "DELETE")
    ),
    "CREATE TRIGGER IF NOT EXISTS audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
    "BEGIN SELECT RAISE(ABORT, 'audit_payloads is append-only: UPDATE refused'); END",
    # Erasing a payload is allowed only as part of a recorded redaction.
    "CREATE TRIGGER IF NOT EXISTS audit_payloads_no_delete BEFORE DELETE ON audit_payloads "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_redactions WHERE seq = OLD.seq) "
    "BEGIN SELECT RAISE(ABORT, 'audit_payloads: DELETE refused; use redact'); END",
]

POSTGRES_FUNCTIONS = [
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
]

POSTGRES_TRIGGERS = [
    *(
        f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        for table in APPEND_ONLY
    ),
    *(
        f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        for table in (*APPEND_ONLY, "audit_payloads")
    ),
    "CREATE OR REPLACE TRIGGER audit_payloads_no_update BEFORE UPDATE ON audit_payloads "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    "CREATE OR REPLACE TRIGGER audit_payloads_redact_only BEFORE DELETE ON audit_payloads "
    "FOR EACH ROW EXECUTE FUNCTION audit_payload_delete()",
]

# lz4 for payloads written from now on (values already stored keep theirs); only on a new table, so
# an existing log's storage settings stay as its operator left them. docs/audit.md says why.
LZ4_AVAILABLE = "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
PAYLOADS_LZ4 = "ALTER TABLE audit_payloads ALTER COLUMN payload SET COMPRESSION lz4"

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def missing(table: str) -> bool:
    return context.is_offline_mode() or not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if missing("audit_entries"):
        op.create_table(
            "audit_entries",
            sa.Column("seq", SEQ, autoincrement=False, nullable=False),
            sa.Column("time", sa.String(length=32), nullable=False),
            sa.Column("event_type", sa.String(length=32), nullable=False),
            sa.Column("actor", sa.String(length=200), nullable=False),
            sa.Column("request_id", sa.String(length=200), nullable=True),
            sa.Column("subjects", sa.Text(), nullable=False),
            sa.Column("status", sa.String(length=32), nullable=True),
            sa.Column("payload_commitment", sa.String(length=64), nullable=False),
            sa.Column("prev_hash", sa.String(length=64), nullable=False),
            sa.Column("leaf_hash", sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
        )
        for column in ("actor", "event_type", "request_id", "status", "time"):
            op.create_index(f"ix_audit_entries_{column}", "audit_entries", [column], unique=False)
    if missing("audit_head"):
        op.create_table(
            "audit_head",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("log_id", sa.String(length=32), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("head_hash", sa.String(length=64), nullable=False),
            sa.Column("frontier", sa.Text(), nullable=False),
            sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
            sa.Column("key_id", sa.String(length=16), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    new_payloads = missing("audit_payloads")
    if new_payloads:
        op.create_table(
            "audit_payloads",
            sa.Column("seq", SEQ, autoincrement=False, nullable=False),
            sa.Column("salt", sa.String(length=64), nullable=False),
            sa.Column("payload", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
        )
    if missing("audit_redactions"):
        op.create_table(
            "audit_redactions",
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("redaction_seq", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
        )
    if missing("audit_subjects"):
        op.create_table(
            "audit_subjects",
            sa.Column("subject", sa.String(length=200), nullable=False),
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.PrimaryKeyConstraint("subject", "seq"),
        )
    if op.get_context().dialect.name == "postgresql":
        for statement in (*POSTGRES_FUNCTIONS, *POSTGRES_TRIGGERS):
            op.execute(statement)
        if new_payloads and not context.is_offline_mode() and op.get_bind().exec_driver_sql(LZ4_AVAILABLE).first():
            op.execute(PAYLOADS_LZ4)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only: its schema is never downgraded")
