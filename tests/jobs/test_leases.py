"""A job belongs to one worker at a time, for as long as its lease: a worker that stops leaves
the job to the next one once the lease has passed, a long job keeps its lease, and a worker
keeps going when the database goes away for a moment."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import audit, jobs
from supporters.extensions import db
from supporters.jobs import queue
from supporters.jobs.models import JobState
from supporters.jobs.worker import Worker
from tests.jobs.conftest import POLL_SECONDS, FakeClock, Runs, stored_jobs


def test_a_job_whose_worker_stopped_mid_job_is_taken_again_after_its_lease(
    app: Flask, clock: FakeClock, runs: Runs
) -> None:
    jobs.register_handler(app, "test.record", runs)
    jobs.enqueue("test.record", {"n": 1}, run_at=clock())
    db.session.commit()
    lease = dt.timedelta(seconds=app.config["JOBS_LEASE_SECONDS"])
    # A worker on another machine takes the job, then is killed before it finishes.
    [stopped] = queue.claim_jobs("other-host:4242:dead", 1, now=clock(), lease=lease)
    db.session.commit()

    clock.advance(seconds=lease.total_seconds() - 1)
    Worker(app, clock=clock).run(once=True)
    assert runs.payloads == []
    [job] = stored_jobs()
    assert (job.state, job.locked_by) == (JobState.RUNNING, "other-host:4242:dead")

    clock.advance(seconds=1)
    Worker(app, clock=clock).run(once=True)
    assert runs.payloads == [{"n": 1}]
    [job] = stored_jobs()
    assert (job.state, job.attempts) == (JobState.DONE, 2)

    # Should the stopped worker come back to life, its "done" (and its work) counts for nothing.
    audit.record_action("job.note", actor_id=None)
    assert not queue.finish_job(stopped, now=clock())
    db.session.rollback()


def test_a_job_whose_workers_keep_dying_is_dead_after_the_last_attempt(
    make_app: Any, clock: FakeClock, runs: Runs
) -> None:
    app = make_app(JOBS_POLL_SECONDS=POLL_SECONDS, JOBS_MAX_ATTEMPTS=2)
    with app.app_context():
        jobs.register_handler(app, "test.huge", runs)
        jobs.enqueue("test.huge", {"rows": 10**9}, run_at=clock())
        db.session.commit()
        lease = dt.timedelta(seconds=app.config["JOBS_LEASE_SECONDS"])
        for n in range(2):  # each worker that takes it runs out of memory
            queue.claim_jobs(f"host:{n}:oom", 1, now=clock(), lease=lease)
            db.session.commit()
            clock.advance(seconds=lease.total_seconds())

        Worker(app, clock=clock).run(once=True)

        assert runs.payloads == []
        [job] = stored_jobs()
        assert job.state is JobState.DEAD
        assert job.last_error == queue.LEASE_EXPIRED


def test_a_job_longer_than_its_lease_keeps_it_while_other_workers_look(make_app: Any) -> None:
    app = make_app(JOBS_POLL_SECONDS=POLL_SECONDS, JOBS_LEASE_SECONDS=0.3)
    release = threading.Event()

    class Long(Runs):
        def work(self, payload: dict[str, Any]) -> None:
            if len(self.payloads) == 1:  # a second run (the lease lost) fails the test at once
                assert release.wait(10)

    long = Long()
    with app.app_context():
        jobs.register_handler(app, "test.long", long)
        jobs.enqueue("test.long", {"n": 1})
        db.session.commit()
        first = Worker(app)
        thread = threading.Thread(target=first.run)
        thread.start()
        try:
            while not long.payloads:
                time.sleep(POLL_SECONDS)
            # Three leases long, other workers keep looking for due jobs.
            for _ in range(9):
                Worker(app).run(once=True)
                time.sleep(0.1)
        finally:
            release.set()
            first.stop()
            thread.join(10)

        assert long.payloads == [{"n": 1}]
        [job] = stored_jobs()
        assert (job.state, job.attempts) == (JobState.DONE, 1)


def test_a_worker_outlives_a_database_that_restarts(
    app: Flask, runs: Runs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    jobs.register_handler(app, "test.record", runs)
    jobs.enqueue("test.record", {"n": 1})
    db.session.commit()
    claim = queue.claim_jobs
    outage = iter([True])

    def claim_while_restarting(*args: Any, **kwargs: Any) -> list[queue.Claimed]:
        if next(outage, False):
            raise sa.exc.OperationalError(
                "SELECT", {}, Exception("the server closed the connection")
            )
        return claim(*args, **kwargs)

    monkeypatch.setattr("supporters.jobs.worker.claim_jobs", claim_while_restarting)
    worker = Worker(app)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not runs.payloads and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    finally:
        worker.stop()
        thread.join(10)

    assert runs.payloads == [{"n": 1}]
    assert "cannot reach the jobs table" in caplog.text
