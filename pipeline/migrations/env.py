"""Alembic's environment for pipeline's tables of the registry (review state, identity); run by pipeline.migrations (the connection comes in cfg.attributes)."""

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
