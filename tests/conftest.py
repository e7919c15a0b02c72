"""Shared fixtures: an app per test on SQLite or PostgreSQL, a real SMTP server, a client.

Set SUPPORTERS_TEST_DATABASE_URL (e.g. postgresql://127.0.0.1/supporters_test) to run the
suite on PostgreSQL; by default each test gets its own SQLite file.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.smtp import MailServer

TEST_DATABASE_URL = os.environ.get("SUPPORTERS_TEST_DATABASE_URL", "")
TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    # A developer's own SUPPORTERS_* settings must not leak into the tests.
    for name in list(os.environ):
        if name.startswith("SUPPORTERS_") and name != "SUPPORTERS_TEST_DATABASE_URL":
            del os.environ[name]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_DATABASE_URL.startswith("postgres"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set SUPPORTERS_TEST_DATABASE_URL")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def is_postgres() -> bool:
    return TEST_DATABASE_URL.startswith("postgres")


@pytest.fixture(scope="session")
def mail_server() -> Iterator[MailServer]:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[None]:
    """Build the schema once per run on the throw-away PostgreSQL database."""
    if not is_postgres():
        yield
        return
    from supporters import create_app
    from supporters.extensions import db

    app = create_app(
        {"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "DATABASE_URL": TEST_DATABASE_URL}
    )
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        db.create_all()
        db.engine.dispose()
    yield


def app_config(tmp_path: Path, mail_server: MailServer, **overrides: Any) -> dict[str, Any]:
    """Settings of a test app: its own database, the test SMTP server, fixed secrets."""
    config: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'test.sqlite3'}",
        "BASE_URL": "http://localhost",
        "SITE_NAME": "The Test Gazette",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": mail_server.port,
        "SMTP_SECURITY": "none",
        "RATELIMIT_STORAGE_URL": "memory://",
        # Tests that drain the jobs expect no hourly reconciliation calling Stripe meanwhile.
        "RECONCILE_MINUTES": 0,
        # Tests read at once what they just wrote; what workers keep has tests of its own.
        "PUBLIC_CACHE_SECONDS": 0,
    }
    config.update(overrides)
    return config


class IsolatedClient(FlaskClient):
    """A test client whose requests each get their own app context, as in production.

    Tests hold an app context open to use the database; without this, every request would
    share that context's ``g`` (cached user, CSRF token) and database session.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        # Buffered: a streamed response (a CSV export) is read to the end inside its context.
        kwargs.setdefault("buffered", True)
        return contextvars.Context().run(super().open, *args, **kwargs)


def _reset_database(app: Flask) -> None:
    from supporters.extensions import db

    with app.app_context():
        db.session.remove()
        if is_postgres():
            tables = ", ".join(t.name for t in db.metadata.sorted_tables)
            with db.engine.begin() as connection:
                connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.engine.dispose()


@pytest.fixture
def make_app(tmp_path: Path, mail_server: MailServer, _postgres_schema: None) -> Iterator[Any]:
    """Build an app with extra settings; its database is empty and wiped afterwards."""
    from supporters import create_app
    from supporters.extensions import db

    built: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(app_config(tmp_path, mail_server, **overrides))
        app.test_client_class = IsolatedClient
        if not is_postgres():
            with app.app_context():
                db.create_all()
        built.append(app)
        mail_server.deliveries.append(lambda: run_jobs(app))
        return app

    mail_server.clear()
    yield factory
    for app in built:
        _reset_database(app)


def run_jobs(app: Flask, *, concurrency: int = 1) -> None:
    """Run the app's due jobs (its queued messages and webhook events among them) as a worker
    does, ``concurrency`` at a time, then return."""
    from supporters.jobs.worker import Worker

    Worker(app, concurrency=concurrency).run(once=True)


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    """The application with default test settings, inside an app context."""
    application = make_app()
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
