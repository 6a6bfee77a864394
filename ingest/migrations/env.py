"""Alembic's environment for ingest's tables of the registry (documents, versions, pages, chunks, index state); run by ingest.migrations (the connection comes in cfg.attributes)."""

from alembic import context

config = context.config
version_table = config.get_main_option("version_table")

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, version_table=version_table)
    with context.begin_transaction():
        context.run_migrations()
else:
    # Inside the caller's transaction (ingest.migrations.ensure_at_head): Alembic joins it.
    context.configure(connection=config.attributes["connection"], version_table=version_table)
    with context.begin_transaction():
        context.run_migrations()
