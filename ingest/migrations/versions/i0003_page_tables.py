"""The tables found on each page (ingest.tables.TableRecord as JSON): cells with boxes, header rows,
statement title, units, periods, and where each table's Markdown sits in the page text.

A page ingested before this revision has no tables recorded: ``[]`` (its text is the flattened text it
was read as; ingest the file again, as a new version, to get its tables).

Revision ID: i0003
Revises: i0002
"""

import sqlalchemy as sa
from alembic import context, op

revision = "i0003"
down_revision = "i0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present: set[str] = set()
    if not context.is_offline_mode():
        present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("pages")}
    if "tables" not in present:
        op.add_column("pages", sa.Column("tables", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    raise NotImplementedError("the registry is never downgraded; restore a backup of the workspace instead")
