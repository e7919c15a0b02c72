"""Background jobs, kept in the app's own database.

A feature queues work with :func:`enqueue` inside the unit of work that causes it (a recorded
webhook event, an email to send), so a change that rolls back leaves no job and one that
commits is never forgotten, on SQLite as on PostgreSQL. It registers the handler that runs each
kind of job, and any periodic job, from a function that ``create_app`` calls
(:func:`register_handler`, :func:`register_periodic`). Workers (:mod:`supporters.jobs.worker`)
run the jobs: each by one worker at a time, retried with backoff when it fails, dead after the
last attempt and kept with its error until :func:`retry` queues it again.

This package is of the core layer: it imports no feature.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Flask, current_app

from supporters.db import utcnow
from supporters.jobs.queue import NotRetryable, QueueStats, enqueue, prune_jobs, retry, stats
from supporters.jobs.registry import Handler, Periodic, register_handler, register_periodic

__all__ = [
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
    """Add the daily prune of finished jobs (call it last in ``create_app``, once every feature
    has registered)."""
    register_handler(app, "jobs.prune", _prune)
    register_periodic(app, "jobs.prune", every=dt.timedelta(days=1), kind="jobs.prune")


def _prune(payload: dict[str, Any]) -> None:
    """Delete the jobs done more than ``JOBS_KEEP_DONE_DAYS`` ago (their keys with them)."""
    keep = dt.timedelta(days=float(current_app.config["JOBS_KEEP_DONE_DAYS"]))
    deleted = prune_jobs(now=utcnow(), keep=keep)
    log.info("deleted %d job(s) done before the last %s", deleted, keep)
