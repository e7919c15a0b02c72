"""Jobs: work that runs outside a request, written in the transaction that causes it, and the
schedule of periodic jobs.

A job's life: ``queued`` until its ``run_at``; ``running`` while a worker holds its lease
(``locked_until``); then ``done``, or ``failed`` with a retry at a later ``run_at``, and after
the last attempt ``dead``, kept with its error until someone retries it. A ``running`` job whose
lease has passed belongs to a worker that stopped: any worker takes it again.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from supporters.db import enum_column, utcnow
from supporters.extensions import Model


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"  # will be tried again at its run_at
    DONE = "done"
    DEAD = "dead"  # out of attempts: waits for someone to retry it


class Job(Model):
    """One piece of background work: a kind (which handler runs it) and a JSON payload."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Workers look for due jobs by state and time; the staff pages count them the same way.
        sa.Index("ix_jobs_state_run_at", "state", "run_at"),
        sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        sa.CheckConstraint("state <> 'running' OR locked_until IS NOT NULL", name="running_leased"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # Deduplicates: a second job with the same key (a Stripe event id, a schedule's period) is
    # never written. NULL for jobs that may repeat.
    key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    state: Mapped[JobState] = mapped_column(
        enum_column(JobState, "job_state"), default=JobState.QUEUED
    )
    run_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Attempts started, counting the one in hand; a worker that stops mid-job used one too.
    attempts: Mapped[int] = mapped_column(default=0)
    # The worker (host:pid) holding or last holding the job, and until when its lease runs.
    locked_by: Mapped[str] = mapped_column(sa.String(255), default="")
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]


class JobSchedule(Model):
    """A periodic job's latest period: the run of a period is queued by whichever worker moves
    ``period_at`` forward, so there is at most one per period across every worker."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # The start of the latest period whose run was queued.
    period_at: Mapped[dt.datetime]
    last_job_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
