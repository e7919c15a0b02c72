"""Periodic jobs: one run per period, however many workers look, and a daily prune that keeps
what staff still need."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa
from flask import Flask

from supporters import jobs
from supporters.extensions import db
from supporters.jobs.models import Job, JobState
from supporters.jobs.worker import Worker
from tests.jobs.conftest import FakeClock, Runs, stored_jobs


def run_side_by_side(workers: list[Worker]) -> None:
    """Run each worker's loop until nothing is due, all at once."""
    start = threading.Barrier(len(workers))

    def work(worker: Worker) -> None:
        start.wait()
        worker.run(once=True)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_a_periodic_job_runs_once_per_period_with_two_workers(
    app: Flask, clock: FakeClock, runs: Runs
) -> None:
    jobs.register_handler(app, "test.reconcile", runs)
    jobs.register_periodic(
        app, "test.hourly", every=dt.timedelta(hours=1), kind="test.reconcile", payload={"all": 1}
    )
    clock.now = dt.datetime(2026, 12, 1, 10, 20, tzinfo=dt.UTC)
    workers = [Worker(app, clock=clock), Worker(app, clock=clock)]

    run_side_by_side(workers)
    assert runs.payloads == [{"all": 1}]

    clock.now = dt.datetime(2026, 12, 1, 10, 59, 59, tzinfo=dt.UTC)
    run_side_by_side(workers)
    # Restarted workers remember nothing: the database says this period has had its run.
    run_side_by_side([Worker(app, clock=clock), Worker(app, clock=clock)])
    assert len(runs.payloads) == 1

    clock.now = dt.datetime(2026, 12, 1, 11, 0, 1, tzinfo=dt.UTC)
    run_side_by_side(workers)
    assert len(runs.payloads) == 2
    # Workers that were all down for a day queue the current period's run only.
    clock.now = dt.datetime(2026, 12, 2, 11, 30, tzinfo=dt.UTC)
    run_side_by_side(workers)
    assert len(runs.payloads) == 3
    assert {job.state for job in stored_jobs()} == {JobState.DONE}


def test_the_daily_prune_forgets_old_finished_jobs_and_keeps_dead_ones(
    app: Flask, runs: Runs
) -> None:
    jobs.register_handler(app, "test.record", runs)
    now = dt.datetime.now(dt.UTC)
    keep = dt.timedelta(days=app.config["JOBS_KEEP_DONE_DAYS"])
    for n, (state, finished_at) in enumerate(
        [
            (JobState.DONE, now - keep - dt.timedelta(hours=1)),
            (JobState.DONE, now - keep + dt.timedelta(hours=1)),
            (JobState.DEAD, now - 10 * keep),
        ]
    ):
        job = jobs.enqueue("test.record", {"n": n})
        assert job is not None
        job.state, job.finished_at = state, finished_at
    db.session.commit()

    Worker(app).run(once=True)

    assert [(job.payload["n"], job.state) for job in stored_jobs()] == [
        (1, JobState.DONE),
        (2, JobState.DEAD),
    ]
    prune_runs = db.session.scalars(sa.select(Job.state).where(Job.kind == "jobs.prune")).all()
    assert prune_runs == [JobState.DONE]
