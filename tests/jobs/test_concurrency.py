"""Workers racing on one PostgreSQL database: each job runs exactly once, never twice at the
same time."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from supporters import jobs
from supporters.extensions import db
from supporters.jobs.models import JobState
from supporters.jobs.worker import Worker
from tests.jobs.conftest import POLL_SECONDS, Runs, stored_jobs

pytestmark = pytest.mark.postgres_only


class Slowish(Runs):
    def work(self, payload: dict[str, Any]) -> None:
        time.sleep(0.002)  # long enough for the other workers to look for the same jobs


def test_four_workers_racing_run_every_job_exactly_once(make_app: Any) -> None:
    runs = Slowish()
    # Four processes, as on four machines: each its own app and connection pool.
    apps = [make_app(JOBS_POLL_SECONDS=POLL_SECONDS) for _ in range(4)]
    for app in apps:
        jobs.register_handler(app, "test.record", runs)
    with apps[0].app_context():
        for n in range(300):
            jobs.enqueue("test.record", {"n": n})
        db.session.commit()

    start = threading.Barrier(len(apps))

    def work(app: Any) -> None:
        worker = Worker(app, concurrency=4)
        start.wait()
        worker.run(once=True)

    threads = [threading.Thread(target=work, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert runs.overlaps == []
    assert sorted(payload["n"] for payload in runs.payloads) == list(range(300))
    with apps[0].app_context():
        assert {(job.state, job.attempts) for job in stored_jobs()} == {(JobState.DONE, 1)}
