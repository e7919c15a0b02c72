"""A job belongs to one worker at a time, for as long as its lease: a worker that stops leaves
the job to the next one once the lease has passed, and a long job keeps its lease."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

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
                threading.Event().wait(POLL_SECONDS)
            # Three leases long, other workers keep looking for due jobs.
            for _ in range(9):
                Worker(app).run(once=True)
                threading.Event().wait(0.1)
        finally:
            release.set()
            first.stop()
            thread.join(10)

        assert long.payloads == [{"n": 1}]
        [job] = stored_jobs()
        assert (job.state, job.attempts) == (JobState.DONE, 1)
