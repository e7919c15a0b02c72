"""The queue's operations on the jobs table: enqueue in the caller's transaction, claim with a
lease, finish or fail under that lease, retry, count and prune.

Nothing here commits. ``enqueue`` and ``retry`` join the caller's unit of work; the worker
commits its claims, and a job's "done" together with the handler's work.

Every claimed job carries a fence: the worker that claimed it and the attempt's number. A worker
finishes or fails a job only while both still match, so a worker that lost its lease (it was
stopped for longer than the lease, and another worker took the job) changes nothing: its work
is rolled back and the job's new owner decides.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import random
from collections.abc import Callable, Collection, Mapping
from typing import Any

import sqlalchemy as sa

from supporters import audit
from supporters.db import UTCDateTime, insert_returning, rows_matched, utcnow
from supporters.extensions import db
from supporters.jobs.models import Job, JobState

#: Stored as a job's error when a worker takes it from one that stopped holding it.
LEASE_EXPIRED = "Its worker stopped before finishing it (the lease expired)."

_WAITING = (JobState.QUEUED, JobState.FAILED)
_ERROR_LENGTH = 4000


class NotRetryable(Exception):
    """The job does not exist, or is neither failed nor dead (it is queued, running or done)."""


@dataclasses.dataclass(frozen=True)
class Claimed:
    """A job a worker holds: what to run, and the fence that proves it still holds it."""

    id: int
    kind: str
    payload: dict[str, Any]
    worker: str
    attempt: int


@dataclasses.dataclass(frozen=True)
class Backoff:
    """When a failed job is tried again: exponential backoff with equal jitter, capped.

    The n-th retry waits a random time between half and all of ``base * 2**(n-1)`` seconds,
    never more than ``cap``: a storm of jobs failing together (Stripe down for a minute) comes
    back spread out, not all at once, and no retry follows its failure at once (full jitter
    may draw a wait near zero, which is no backoff). After ``max_attempts`` attempts a job is
    dead.
    """

    base: float
    cap: float
    max_attempts: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Backoff:
        """The app's ``JOBS_RETRY_*`` and ``JOBS_MAX_ATTEMPTS`` settings."""
        return cls(
            base=float(config["JOBS_RETRY_BASE_SECONDS"]),
            cap=float(config["JOBS_RETRY_CAP_SECONDS"]),
            max_attempts=int(config["JOBS_MAX_ATTEMPTS"]),
        )

    def delay(self, attempt: int, jitter: Callable[[], float] = random.random) -> dt.timedelta:
        """How long to wait after failed attempt number ``attempt`` (1 for the first)."""
        ceiling = min(self.cap, self.base * 2 ** min(attempt - 1, 64))
        return dt.timedelta(seconds=ceiling * (1 + jitter()) / 2)

    def retry_at(
        self, attempt: int, now: dt.datetime, jitter: Callable[[], float] = random.random
    ) -> dt.datetime | None:
        """When to try again after failed attempt ``attempt``; None when it was the last."""
        if attempt >= self.max_attempts:
            return None
        return now + self.delay(attempt, jitter)


@dataclasses.dataclass(frozen=True)
class QueueStats:
    """The figures an operator watches: how much is waiting, for how long, and what failed."""

    due: int  # waiting for a worker now, including jobs whose worker stopped
    oldest_due_at: dt.datetime | None
    later: int  # queued or failed, due at a later time
    running: int
    failed: int  # failed at least once, to be tried again (counted in due or later too)
    dead: int

    def lag(self, now: dt.datetime) -> dt.timedelta:
        """How long the oldest due job has waited for a worker (zero when none is due)."""
        if self.oldest_due_at is None:
            return dt.timedelta(0)
        return max(now - self.oldest_due_at, dt.timedelta(0))


def enqueue(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    run_at: dt.datetime | None = None,
    key: str | None = None,
) -> Job | None:
    """Add a job to the current unit of work: it runs once the caller commits, never otherwise.

    ``key`` deduplicates: when a job with the same key exists already, none is added and None is
    returned (the database decides, so two requests racing with one key make one job).
    """
    return insert_returning(
        Job,
        {
            "kind": kind,
            "payload": dict(payload or {}),
            "key": key,
            "state": JobState.QUEUED,
            "run_at": run_at or utcnow(),
            "attempts": 0,
            "locked_by": "",
            "last_error": "",
            "created_at": utcnow(),
        },
        conflict_on=("key",),
    )


def retry(job_id: int, actor: audit.Actor) -> Job:
    """Queue a failed or dead job to run now, with a fresh count of attempts; audited.

    :raises NotRetryable: no such job, or it is queued, running or done.
    """
    before = db.session.execute(
        sa.select(Job.state, Job.attempts).where(Job.id == job_id).with_for_update()
    ).one_or_none()
    # Conditional all the same: SQLite locks no row, and a worker may claim a failed job now.
    requeued = db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.state.in_((JobState.FAILED, JobState.DEAD)))
        .values(
            state=JobState.QUEUED,
            run_at=utcnow(),
            attempts=0,
            locked_until=None,
            finished_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if before is None or rows_matched(requeued) != 1:
        raise NotRetryable(
            f"job {job_id} does not exist"
            if before is None
            else f"job {job_id} is not failed or dead any more"
        )
    job = db.session.get(Job, job_id, populate_existing=True)
    assert job is not None
    audit.record(
        "job.retry", actor, job, kind=job.kind, state=before.state.value, attempts=before.attempts
    )
    db.session.flush()
    return job


def claim_jobs(worker: str, limit: int, *, now: dt.datetime, lease: dt.timedelta) -> list[Claimed]:
    """Take up to ``limit`` due jobs for ``worker``, oldest first, leased until ``now + lease``.

    Due: queued or failed with ``run_at`` passed, or running with the lease passed (its worker
    stopped). One statement: on PostgreSQL the rows another worker is claiming are skipped
    (``FOR UPDATE SKIP LOCKED``); SQLite has one writer at a time.
    """
    rows = db.session.execute(
        _claim_statement(db.session.get_bind().dialect.name),
        {"now": now, "limit": limit, "worker": worker, "lease_until": now + lease},
    ).all()
    claimed = [Claimed(row.id, row.kind, row.payload, worker, row.attempts) for row in rows]
    return sorted(claimed, key=lambda job: job.id)


@functools.cache
def _claim_statement(dialect: str) -> sa.Update:
    """The claiming UPDATE … RETURNING, built once per dialect."""
    now = sa.bindparam("now", type_=UTCDateTime())
    due = (
        sa.select(Job.id)
        .where(
            sa.or_(
                sa.and_(Job.state.in_(_WAITING), Job.run_at <= now),
                sa.and_(Job.state == JobState.RUNNING, Job.locked_until <= now),
            )
        )
        .order_by(Job.run_at, Job.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return (
        sa.update(Job)
        .where(Job.id.in_(due.scalar_subquery()))
        .values(
            state=JobState.RUNNING,
            attempts=Job.attempts + 1,
            locked_by=sa.bindparam("worker", type_=sa.String()),
            locked_until=sa.bindparam("lease_until", type_=UTCDateTime()),
            last_error=sa.case(
                (Job.state == JobState.RUNNING, LEASE_EXPIRED), else_=Job.last_error
            ),
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts)
        .execution_options(synchronize_session=False)
    )


def _fenced(job: Claimed) -> sa.ColumnElement[bool]:
    return sa.and_(
        Job.id == job.id,
        Job.state == JobState.RUNNING,
        Job.locked_by == job.worker,
        Job.attempts == job.attempt,
    )


def finish_job(job: Claimed, *, now: dt.datetime) -> bool:
    """Mark a held job done in the current transaction; False when the worker lost it."""
    result = db.session.execute(
        sa.update(Job)
        .where(_fenced(job))
        .values(state=JobState.DONE, finished_at=now, locked_until=None, last_error="")
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result) == 1


def fail_job(job: Claimed, error: str, *, now: dt.datetime, retry_at: dt.datetime | None) -> bool:
    """Record a held job's failure: failed until ``retry_at``, or dead when None.

    False when the worker lost the job (its new owner decides).
    """
    values: dict[str, Any] = {"last_error": error[:_ERROR_LENGTH], "locked_until": None}
    if retry_at is None:
        values.update(state=JobState.DEAD, finished_at=now)
    else:
        values.update(state=JobState.FAILED, run_at=retry_at)
    result = db.session.execute(
        sa.update(Job)
        .where(_fenced(job))
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result) == 1


def release_job(job: Claimed, *, now: dt.datetime) -> bool:
    """Hand back a held job that was never started: due now, the attempt not counted."""
    result = db.session.execute(
        sa.update(Job)
        .where(_fenced(job))
        .values(state=JobState.QUEUED, run_at=now, attempts=Job.attempts - 1, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result) == 1


def extend_leases(
    job_ids: Collection[int], worker: str, *, now: dt.datetime, lease: dt.timedelta
) -> int:
    """Extend the leases ``worker`` holds on these jobs to ``now + lease``; how many it held."""
    if not job_ids:
        return 0
    result = db.session.execute(
        sa.update(Job)
        .where(
            Job.id.in_(sorted(job_ids)),
            Job.state == JobState.RUNNING,
            Job.locked_by == worker,
        )
        .values(locked_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


def stats(now: dt.datetime) -> QueueStats:
    """Count the jobs that are not done, by what an operator needs to know of them."""
    due = sa.or_(
        sa.and_(Job.state.in_(_WAITING), Job.run_at <= now),
        sa.and_(Job.state == JobState.RUNNING, Job.locked_until <= now),
    )
    # A running job is due again from the moment its lease passed, not from its run_at.
    due_since = sa.case((Job.state == JobState.RUNNING, Job.locked_until), else_=Job.run_at)
    row = db.session.execute(
        sa.select(
            sa.func.count().filter(due),
            sa.func.min(due_since).filter(due),
            sa.func.count().filter(Job.state.in_(_WAITING), Job.run_at > now),
            sa.func.count().filter(Job.state == JobState.RUNNING, Job.locked_until > now),
            sa.func.count().filter(Job.state == JobState.FAILED),
            sa.func.count().filter(Job.state == JobState.DEAD),
        ).where(Job.state.in_((*_WAITING, JobState.RUNNING, JobState.DEAD)))
    ).one()
    return QueueStats(*row)


def prune_jobs(*, now: dt.datetime, keep: dt.timedelta) -> int:
    """Delete the jobs done before ``now - keep``; how many. Dead jobs stay until retried."""
    result = db.session.execute(
        sa.delete(Job)
        .where(Job.state == JobState.DONE, Job.finished_at < now - keep)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)
