"""Periodic jobs: each period's run queued once, by whichever worker gets there first.

Every worker's loop calls :func:`queue_run` when a period begins. The schedule's row holds the
latest period queued; moving it forward is one conditional UPDATE (or the row's first INSERT),
so of any number of workers on any number of machines exactly one moves it, and that one queues
the run in the same transaction. Missed periods (no worker was running) are not made up: the
next worker queues the current period's run only.
"""

from __future__ import annotations

import datetime as dt
import functools

import sqlalchemy as sa

from supporters.db import UTCDateTime, insert_ignoring_conflicts, rows_matched
from supporters.extensions import db
from supporters.jobs.models import Job, JobSchedule
from supporters.jobs.queue import enqueue
from supporters.jobs.registry import Periodic


def queue_run(periodic: Periodic, *, now: dt.datetime) -> Job | None:
    """Queue the run of the period ``now`` falls in, unless a worker has; the caller commits.

    The new job, or None when this period's run was queued already.
    """
    period_at = periodic.period_at(now)
    values = {"name": periodic.name, "period_at": period_at}
    if not insert_ignoring_conflicts(JobSchedule, values):
        moved = db.session.execute(
            _advance_statement(), {"schedule": periodic.name, "period": period_at}
        )
        if rows_matched(moved) != 1:
            return None
    job = enqueue(
        periodic.kind,
        periodic.payload,
        run_at=now,
        key=f"schedule:{periodic.name}:{period_at.isoformat()}",
    )
    if job is not None:
        db.session.execute(
            sa.update(JobSchedule)
            .where(JobSchedule.name == periodic.name)
            .values(last_job_id=job.id)
            .execution_options(synchronize_session=False)
        )
    return job


@functools.cache
def _advance_statement() -> sa.Update:
    """Move a schedule to a later period; matches nothing when another worker got there first.

    On PostgreSQL a second worker's UPDATE waits for the first one's row lock, then reads the
    committed period and matches nothing.
    """
    period = sa.bindparam("period", type_=UTCDateTime())
    return (
        sa.update(JobSchedule)
        .where(JobSchedule.name == sa.bindparam("schedule"), JobSchedule.period_at < period)
        .values(period_at=period)
        .execution_options(synchronize_session=False)
    )
