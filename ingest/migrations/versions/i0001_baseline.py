"""Baseline: ingest's tables of the registry (documents, versions, pages, chunks, index state) as Docket made them before migrations.

A database made before migrations has these tables already, so each table and index is created only
where it is missing. The document type and date columns came later (i0002). Until ingest had its own
environment this was revision 0001 of pipeline/migrations/ (with the review tables, now pipeline's p0001).

Revision ID: i0001
Revises:
"""

import sqlalchemy as sa
from alembic import context, op

revision = "i0001"
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
    create_table('documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('collection', sa.String(length=200), nullable=False),
    sa.Column('source_key', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('removed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('collection', 'source_key')
    )
    create_index('ix_documents_collection', 'documents', ['collection'], unique=False)
    create_table('index_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    create_table('document_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('page_count', sa.Integer(), nullable=False),
    sa.Column('ingested_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_id', 'version')
    )
    create_index('ix_versions_sha256', 'document_versions', ['sha256'], unique=False)
    create_table('chunks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('doc_sha256', sa.String(length=64), nullable=False),
    sa.Column('page', sa.Integer(), nullable=False),
    sa.Column('char_start', sa.Integer(), nullable=False),
    sa.Column('char_end', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_sha256', sa.String(length=64), nullable=False),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('boxes', sa.JSON(), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('embedding_model', sa.String(length=200), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['document_versions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    create_index(op.f('ix_chunks_text_sha256'), 'chunks', ['text_sha256'], unique=False)
    create_index('ix_chunks_version_id', 'chunks', ['version_id'], unique=False)
    create_table('pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('engine_version', sa.String(length=200), nullable=False),
    sa.Column('route', sa.String(length=40), nullable=False),
    sa.Column('dpi', sa.Integer(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('width', sa.Float(), nullable=False),
    sa.Column('height', sa.Float(), nullable=False),
    sa.Column('notes', sa.JSON(), nullable=False),
    sa.Column('spans', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['document_versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version_id', 'number')
    )
    create_index('ix_pages_version_id', 'pages', ['version_id'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the registry is never downgraded; restore a backup of the workspace instead")
