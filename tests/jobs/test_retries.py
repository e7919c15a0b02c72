"""A failing job is tried again after growing, capped, jittered waits, then kept dead with its
error until someone retries it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import audit, jobs
from supporters.extensions import db
from supporters.jobs.models import JobState
from supporters.jobs.worker import Worker
from tests.factories import make_member
from tests.jobs.conftest import POLL_SECONDS, FakeClock, Runs, stored_jobs


class StripeDown(Runs):
    def work(self, payload: dict[str, Any]) -> None:
        raise ConnectionError("Stripe is unreachable")


def test_a_failing_job_waits_longer_each_time_up_to_the_cap_then_is_dead(
    make_app: Any, clock: FakeClock
) -> None:
    app = make_app(
        JOBS_POLL_SECONDS=POLL_SECONDS,
        JOBS_RETRY_BASE_SECONDS=10,
        JOBS_RETRY_CAP_SECONDS=60,
        JOBS_MAX_ATTEMPTS=6,
    )
    failing = StripeDown()
    with app.app_context():
        jobs.register_handler(app, "test.sync", failing)
        jobs.enqueue("test.sync", {"subscription": "sub_1"}, run_at=clock())
        db.session.commit()
        # The jitter at its highest, so each wait is the most it may be.
        worker = Worker(app, clock=clock, jitter=lambda: 1.0)

        waits = []
        for attempt in range(1, 6):
            worker.run(once=True)
            [job] = stored_jobs()
            assert (job.state, job.attempts) == (JobState.FAILED, attempt)
            waits.append((job.run_at - clock()).total_seconds())
            clock.advance(seconds=waits[-1] - 1)
            worker.run(once=True)
            assert len(failing.payloads) == attempt, "tried again before its wait was over"
            clock.advance(seconds=1)
        assert waits == [10, 20, 40, 60, 60]

        worker.run(once=True)
        [job] = stored_jobs()
        assert (job.state, job.attempts) == (JobState.DEAD, 6)
        assert job.last_error == "ConnectionError: Stripe is unreachable"
        assert job.finished_at == clock()
        clock.advance(days=30)
        worker.run(once=True)
        assert len(failing.payloads) == 6


def test_jobs_failing_together_come_back_spread_out(app: Flask, clock: FakeClock) -> None:
    jobs.register_handler(app, "test.sync", StripeDown())
    for n in range(20):
        jobs.enqueue("test.sync", {"n": n}, run_at=clock())
    db.session.commit()

    Worker(app, clock=clock, concurrency=4).run(once=True)

    retries = {job.run_at for job in stored_jobs()}
    base = dt.timedelta(seconds=app.config["JOBS_RETRY_BASE_SECONDS"])
    assert all(clock() <= retry_at <= clock() + base for retry_at in retries)
    assert len(retries) > 10


def test_staff_retry_a_dead_job_with_fresh_attempts_and_the_audit_log_says_who(
    make_app: Any, clock: FakeClock
) -> None:
    app = make_app(JOBS_POLL_SECONDS=POLL_SECONDS, JOBS_MAX_ATTEMPTS=2)
    handler = StripeDown()
    with app.app_context():
        jobs.register_handler(app, "test.sync", handler)
        dead = jobs.enqueue("test.sync", {"n": 1}, run_at=clock())
        waiting = jobs.enqueue("test.sync", {"n": 2}, run_at=clock() + dt.timedelta(hours=1))
        admin = make_member()
        db.session.commit()
        assert dead is not None and waiting is not None
        dead_id, waiting_id = dead.id, waiting.id
        for _ in range(2):
            Worker(app, clock=clock).run(once=True)
            clock.advance(minutes=1)
        assert [job.state for job in stored_jobs()] == [JobState.DEAD, JobState.QUEUED]

        jobs.retry(dead_id, audit.Actor(admin.id, "192.0.2.1"))
        db.session.commit()
        for job_id in (waiting_id, 999_999):
            with pytest.raises(jobs.NotRetryable):
                jobs.retry(job_id, audit.Actor(admin.id))
            db.session.rollback()

        [entry] = db.session.scalars(
            sa.select(audit.AuditEntry).where(audit.AuditEntry.action == "job.retry")
        )
        assert (entry.actor_id, entry.target_type, entry.target_id) == (
            admin.id,
            "job",
            str(dead_id),
        )
        assert entry.details == {"kind": "test.sync", "state": "dead", "attempts": 2}
        job, _ = stored_jobs()
        assert (job.state, job.attempts) == (JobState.QUEUED, 0)

        handler.work = lambda payload: None  # type: ignore[method-assign]  # Stripe is back
        Worker(app).run(once=True)
        job, _ = stored_jobs()
        assert (job.state, job.attempts, job.last_error) == (JobState.DONE, 1, "")
