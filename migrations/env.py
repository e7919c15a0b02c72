"""Alembic environment: runs migrations against the app's engine and metadata."""

import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.operations import MigrationScript
from alembic.runtime.migration import MigrationContext
from flask import current_app
from flask_sqlalchemy import SQLAlchemy

config = context.config
if config.config_file_name is not None and not logging.getLogger().handlers:
    # Configure logging only when run as a command, not inside an app that already logs.
    fileConfig(config.config_file_name)
logger = logging.getLogger("alembic.env")


def _database() -> SQLAlchemy:
    database: SQLAlchemy = current_app.extensions["migrate"].db
    return database


def _url() -> str:
    return _database().engine.url.render_as_string(hide_password=False).replace("%", "%%")


config.set_main_option("sqlalchemy.url", _url())
target_metadata = _database().metadata


def run_migrations_offline() -> None:
    """Write the SQL to stdout instead of running it (``flask db upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a connection of the app's engine."""

    def skip_empty_revisions(
        context: MigrationContext, revision: Any, directives: list[MigrationScript]
    ) -> None:
        # `flask db migrate` with no model change writes no empty migration file.
        upgrade_ops = directives[0].upgrade_ops
        if (
            getattr(config.cmd_opts, "autogenerate", False)
            and upgrade_ops
            and upgrade_ops.is_empty()
        ):
            directives[:] = []
            logger.info("No changes in schema detected.")

    configure_args = dict(current_app.extensions["migrate"].configure_args)
    configure_args.setdefault("process_revision_directives", skip_empty_revisions)

    with _database().engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **configure_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
