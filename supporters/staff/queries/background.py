"""What the background-work page lists: failed and dead jobs, and webhook events that failed."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from supporters.billing.models import StripeEvent
from supporters.billing.webhooks import event_job_key
from supporters.extensions import db
from supporters.jobs.models import Job, JobState


@dataclasses.dataclass(frozen=True)
class FailedEvent:
    """A webhook event not processed after at least one attempt, and its job (if it has one)."""

    event: StripeEvent
    job_id: int | None
    job_state: JobState | None
    next_try_at: dt.datetime | None


def failed_jobs(limit: int) -> list[Job]:
    """Failed (to be tried again) and dead jobs, the latest failure first."""
    return list(
        db.session.scalars(
            sa.select(Job)
            .where(Job.state.in_((JobState.FAILED, JobState.DEAD)))
            .order_by(Job.state, Job.id.desc())
            .limit(limit)
        )
    )


def failed_events(limit: int) -> list[FailedEvent]:
    """Webhook events that failed and are not processed yet, newest first, with their jobs."""
    rows = db.session.execute(
        sa.select(StripeEvent, Job.id, Job.state, Job.run_at)
        .outerjoin(Job, Job.key == sa.literal(event_job_key("")) + StripeEvent.stripe_event_id)
        .where(StripeEvent.processed_at.is_(None), StripeEvent.error != "")
        .order_by(StripeEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        FailedEvent(
            event,
            job_id,
            state,
            run_at if state in (JobState.QUEUED, JobState.FAILED) else None,
        )
        for event, job_id, state, run_at in rows
    ]
