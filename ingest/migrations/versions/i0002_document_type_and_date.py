"""Document type and date (``docket docs tag``, ``--type``/``--date`` at ingest): two nullable columns.

Registries made after the columns appeared but before migrations have them already; they are added
only where missing, with their indexes. Until ingest had its own environment this was revision 0002
of pipeline/migrations/.

Revision ID: i0002
Revises: i0001
"""

import sqlalchemy as sa
from alembic import context, op

revision = "i0002"
down_revision = "i0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present: set[str] = set()
    indexes: set[str] = set()
    if not context.is_offline_mode():
        inspector = sa.inspect(op.get_bind())
        present = {c["name"] for c in inspector.get_columns("documents")}
        indexes = {i["name"] for i in inspector.get_indexes("documents")}
    for column, kind in (("doc_type", sa.String(length=100)), ("doc_date", sa.Date())):
        if column not in present:
            op.add_column("documents", sa.Column(column, kind, nullable=True))
        if f"ix_documents_{column}" not in indexes:
            op.create_index(f"ix_documents_{column}", "documents", [column], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the registry is never downgraded; restore a backup of the workspace instead")
