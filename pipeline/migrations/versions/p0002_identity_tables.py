"""The identity tables of the service (users, API tokens, access grants, browser sessions).

Registries that ran the service before migrations have them already (pipeline/identity made them
on first use); each is created only where missing. Until pipeline's environment had only its own
tables this was revision 0003 of pipeline/migrations/.

Revision ID: p0002
Revises: p0001
"""

import sqlalchemy as sa
from alembic import context, op

revision = "p0002"
down_revision = "p0001"
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
    create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('disabled_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    create_table('access_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('collection', sa.String(length=200), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    create_index('ix_access_grants_user', 'access_grants', ['user_id', 'collection'], unique=False)
    create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_id'),
    sa.UniqueConstraint('token_sha256')
    )
    create_index('ix_api_tokens_user_id', 'api_tokens', ['user_id'], unique=False)
    create_table('browser_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_sha256', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('session_sha256')
    )
    create_index('ix_browser_sessions_user_id', 'browser_sessions', ['user_id'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the registry is never downgraded; restore a backup of the workspace instead")
