"""A job is written with the change that causes it: rolled back with it, or committed and run
once; its key makes it once only; its handler's work commits with its "done"."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import audit, jobs
from supporters.extensions import db
from supporters.jobs.models import JobState
from supporters.jobs.worker import Worker
from tests.jobs.conftest import FakeClock, Runs, stored_jobs


def test_a_job_queued_in_a_change_that_rolls_back_never_runs_and_a_committed_one_runs_once(
    app: Flask, runs: Runs
) -> None:
    jobs.register_handler(app, "test.record", runs)

    audit.record_action("tier.change", actor_id=None, details={"n": 1})
    jobs.enqueue("test.record", {"n": 1})
    db.session.rollback()
    audit.record_action("tier.change", actor_id=None, details={"n": 2})
    jobs.enqueue("test.record", {"n": 2})
    db.session.commit()

    Worker(app).run(once=True)
    Worker(app).run(once=True)

    assert runs.payloads == [{"n": 2}]
    [job] = stored_jobs()
    assert (job.state, job.attempts, job.last_error) == (JobState.DONE, 1, "")


def test_a_key_queued_twice_makes_one_job(app: Flask, runs: Runs) -> None:
    jobs.register_handler(app, "test.record", runs)

    first = jobs.enqueue("test.record", {"event": "evt_1"}, key="stripe:evt_1")
    db.session.commit()
    again_in_another_change = jobs.enqueue("test.record", {"event": "evt_1"}, key="stripe:evt_1")
    db.session.commit()
    Worker(app).run(once=True)
    after_it_ran = jobs.enqueue("test.record", {"event": "evt_1"}, key="stripe:evt_1")
    db.session.commit()
    Worker(app).run(once=True)

    assert first is not None and again_in_another_change is None and after_it_ran is None
    assert runs.payloads == [{"event": "evt_1"}]
    assert len(stored_jobs()) == 1


def test_the_handlers_work_commits_with_done_and_rolls_back_when_it_fails(
    app: Flask, clock: FakeClock
) -> None:
    def note_then_maybe_fail(payload: dict[str, Any]) -> None:
        audit.record_action("job.note", actor_id=None, details=payload)
        db.session.flush()
        if payload["fail"]:
            raise RuntimeError("the mail server hung up")

    jobs.register_handler(app, "test.note", note_then_maybe_fail)
    jobs.enqueue("test.note", {"fail": False}, run_at=clock())
    jobs.enqueue("test.note", {"fail": True}, run_at=clock())
    db.session.commit()

    Worker(app, clock=clock).run(once=True)

    notes = db.session.scalars(
        sa.select(audit.AuditEntry.details).where(audit.AuditEntry.action == "job.note")
    ).all()
    assert notes == [{"fail": False}]
    done, failed = stored_jobs()
    assert done.state is JobState.DONE
    assert failed.state is JobState.FAILED
    assert failed.last_error == "RuntimeError: the mail server hung up"


def test_a_job_of_a_kind_without_a_handler_fails_clearly_and_runs_once_a_worker_has_one(
    app: Flask, clock: FakeClock, runs: Runs
) -> None:
    jobs.enqueue("test.newer_code", {"n": 1}, run_at=clock())
    db.session.commit()

    Worker(app, clock=clock).run(once=True)
    [job] = stored_jobs()
    assert job.state is JobState.FAILED
    assert "no handler for jobs of kind 'test.newer_code'" in job.last_error

    # A worker running the new code takes it on the retry.
    jobs.register_handler(app, "test.newer_code", runs)
    clock.advance(seconds=app.config["JOBS_RETRY_BASE_SECONDS"])
    Worker(app, clock=clock).run(once=True)
    assert runs.payloads == [{"n": 1}]
    [job] = stored_jobs()
    assert (job.state, job.attempts) == (JobState.DONE, 2)


def test_one_kind_has_one_handler(app: Flask, runs: Runs) -> None:
    # A feature's hook run twice is harmless, even when it registers a method.
    jobs.register_handler(app, "test.record", runs.work)
    jobs.register_handler(app, "test.record", runs.work)

    with pytest.raises(ValueError, match="already have a handler"):
        jobs.register_handler(app, "test.record", Runs().work)
