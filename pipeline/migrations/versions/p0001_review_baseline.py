"""Baseline: pipeline's review-state tables of the registry as Docket made them before migrations.

The review tables only appear once a review has run, so a database made before migrations has all of
them or none; each table and index is created only where it is missing. Until pipeline had its own
environment this was part of revision 0001 of pipeline/migrations/ (the document tables are ingest's i0001).

Revision ID: p0001
Revises:
"""

import sqlalchemy as sa
from alembic import context, op

revision = "p0001"
down_revision = None
branch_labels = None
depends_on = None


def has_table(name: str) -> bool:
    return not context.is_offline_mode() and sa.inspect(op.get_bind()).has_table(name)


def create_table(name: str, *columns) -> None:
    if not has_table(name):
        op.create_table(name, *columns)


def create_index(name: str, table: str, columns: list[str], unique: bool = False) -> None:
    if not (has_table(table) and name in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(table)}):
        op.create_index(name, table, columns, unique=unique)


def upgrade() -> None:
    create_table('review_cells',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('review_id', sa.String(length=32), nullable=True),
    sa.Column('item_id', sa.String(length=64), nullable=True),
    sa.Column('doc_sha256', sa.String(length=64), nullable=True),
    sa.Column('verdict', sa.String(length=20), nullable=True),
    sa.Column('failed', sa.Integer(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('audit_seq', sa.Integer(), nullable=True),
    sa.Column('finding', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('review_id', 'item_id', 'doc_sha256', name='uq_review_cell')
    )
    create_index('ix_review_cells_review_id', 'review_cells', ['review_id'], unique=False)
    create_table('review_documents',
    sa.Column('review_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('review_id', 'position')
    )
    create_table('review_runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('resume_key', sa.String(length=64), nullable=True),
    sa.Column('checklist_name', sa.String(length=64), nullable=True),
    sa.Column('checklist_sha256', sa.String(length=64), nullable=True),
    sa.Column('checklist', sa.JSON(), nullable=True),
    sa.Column('collection', sa.String(length=200), nullable=True),
    sa.Column('reasoner', sa.String(length=40), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('config_hash', sa.String(length=64), nullable=True),
    sa.Column('index_generation', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.String(length=32), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('started_seq', sa.Integer(), nullable=True),
    sa.Column('completed_at', sa.String(length=32), nullable=True),
    sa.Column('checkpoint', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    create_index('ix_review_runs_resume_key', 'review_runs', ['resume_key'], unique=False)
    create_table('review_signoffs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('review_id', sa.String(length=32), nullable=True),
    sa.Column('item_id', sa.String(length=64), nullable=True),
    sa.Column('doc_sha256', sa.String(length=64), nullable=True),
    sa.Column('decision', sa.String(length=20), nullable=True),
    sa.Column('verdict', sa.String(length=20), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('time', sa.String(length=32), nullable=True),
    sa.Column('audit_seq', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    create_index('ix_review_signoffs_review_id', 'review_signoffs', ['review_id'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the registry is never downgraded; restore a backup of the workspace instead")
