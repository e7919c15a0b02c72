"""Background jobs, kept in the app's own database.

A feature queues work with :func:`enqueue` inside the unit of work that causes it (a recorded
webhook event, an email to send), so a change that rolls back leaves no job and one that
commits is never forgotten, on SQLite as on PostgreSQL. It registers the handler that runs each
kind of job, and any periodic job, from a function that ``create_app`` calls
(:func:`register_handler`, :func:`register_periodic`). Workers (``flask --app supporters
worker``; under ``flask run``, a thread of the development server) run the jobs: each by one
worker at a time, retried with backoff when it fails, dead after the last attempt and kept
with its error until :func:`retry` queues it again.

This package is of the core layer: it imports no feature.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Flask, current_app

from supporters.db import utcnow
from supporters.jobs.cli import worker_cli
from supporters.jobs.development import is_development_server, start_worker_thread
from supporters.jobs.queue import NotRetryable, QueueStats, enqueue, prune_jobs, retry, stats
from supporters.jobs.registry import (
    FailureHandler,
    Handler,
    Periodic,
    register_handler,
    register_periodic,
)

__all__ = [
    "FailureHandler",
    "Handler",
    "NotRetryable",
    "Periodic",
    "QueueStats",
    "enqueue",
    "init_app",
    "register_handler",
    "register_periodic",
    "retry",
    "stats",
]

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Add ``flask worker``, the daily prune of finished jobs and, under ``flask run`` only, a
    worker thread (call it last in ``create_app``, once every feature has registered)."""
    app.cli.add_command(worker_cli)
    register_handler(app, "jobs.prune", _prune)
    register_periodic(app, "jobs.prune", every=dt.timedelta(days=1), kind="jobs.prune")
    if app.config["DEVELOPMENT_WORKER"] and is_development_server(app):
        start_worker_thread(app)


def _prune(payload: dict[str, Any]) -> None:
    """Delete the jobs done more than ``JOBS_KEEP_DONE_DAYS`` ago (their keys with them)."""
    days = float(current_app.config["JOBS_KEEP_DONE_DAYS"])
    deleted = prune_jobs(now=utcnow(), keep=dt.timedelta(days=days))
    log.info("deleted %d job(s) finished more than %g day(s) ago", deleted, days)
