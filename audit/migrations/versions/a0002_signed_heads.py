"""Signed tree heads: the table each committed append transaction stores its signed checkpoint in.

Only a new table and its append-only triggers; the chain is not touched. The next append of an
upgraded log signs its first head.

Revision ID: a0002
Revises: a0001
"""

import sqlalchemy as sa
from alembic import context, op

revision = "a0002"
down_revision = "a0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if context.is_offline_mode() or not sa.inspect(op.get_bind()).has_table("audit_signed_heads"):
        op.create_table(
            "audit_signed_heads",
            sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("format", sa.String(length=64), nullable=False),
            sa.Column("log_id", sa.String(length=32), nullable=False),
            sa.Column("root", sa.String(length=64), nullable=False),
            sa.Column("time", sa.String(length=32), nullable=False),
            sa.Column("key_id", sa.String(length=16), nullable=False),
            sa.Column("signature", sa.String(length=128), nullable=False),
            sa.PrimaryKeyConstraint("size"),
        )
    table = "audit_signed_heads"
    if op.get_context().dialect.name == "postgresql":
        # audit_refuse_change() is the baseline's function.
        op.execute(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only: its schema is never downgraded")
