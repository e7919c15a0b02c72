"""``flask worker --once`` and ``flask worker status``, as an operator or a cron job runs them."""

from __future__ import annotations

import datetime as dt

from flask import Flask

from supporters import jobs
from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.models import JobState
from tests.jobs.conftest import Runs, stored_jobs


def test_worker_once_runs_what_is_due_and_exits(app: Flask, runs: Runs) -> None:
    jobs.register_handler(app, "test.record", runs)
    jobs.enqueue("test.record", {"n": 1})
    jobs.enqueue("test.record", {"n": 2}, run_at=utcnow() + dt.timedelta(hours=1))
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["worker", "--once"])

    assert result.exit_code == 0, result.output
    assert runs.payloads == [{"n": 1}]
    assert [job.state for job in stored_jobs()] == [JobState.DONE, JobState.QUEUED]


def test_worker_refuses_more_threads_than_database_connections(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["worker", "--concurrency", "20"])

    assert result.exit_code == 2
    assert "20 jobs at a time need 21 database connections; the pool allows 15" in result.output


def test_worker_status_shows_depth_lag_failed_and_dead_and_alerts_on_lag(app: Flask) -> None:
    now = utcnow()
    for run_at, state in [
        (now - dt.timedelta(seconds=300), JobState.QUEUED),
        (now - dt.timedelta(seconds=5), JobState.FAILED),
        (now + dt.timedelta(hours=1), JobState.FAILED),
        (now - dt.timedelta(days=2), JobState.DEAD),
        (now - dt.timedelta(days=3), JobState.DONE),
    ]:
        job = jobs.enqueue("test.record", run_at=run_at)
        assert job is not None
        job.state = state
    db.session.commit()
    runner = app.test_cli_runner()

    status = runner.invoke(args=["worker", "status"])
    assert status.exit_code == 0, status.output
    lines = dict(line.split(": ") for line in status.output.splitlines())
    assert lines.pop("lag_seconds") in {"300", "301"}
    assert lines == {
        "due": "2",
        "scheduled_later": "1",
        "running": "0",
        "failed": "2",
        "dead": "1",
    }

    alert = runner.invoke(args=["worker", "status", "--max-lag", "120"])
    assert alert.exit_code == 1
    assert "the oldest due job has waited 30" in alert.output
    assert runner.invoke(args=["worker", "status", "--max-lag", "600"]).exit_code == 0
