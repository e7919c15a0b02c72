"""Billing's background work: each recorded webhook event's job, and the hourly reconciliation.

Reconciliation asks Stripe about every member's customer, two or more calls each: one hourly
job (``billing.reconcile``, every ``RECONCILE_MINUTES``) queues a job per customer
(``billing.reconcile_customer``), spread over the first half of the period, so no job runs for long, any number of workers share them, and
the webhook events that arrive meanwhile are not kept waiting behind a long queue. Each
customer's job is idempotent (it upserts what Stripe says now) and keyed by its hour, so a
second run of the hourly job queues nothing twice.

A failed event's job retries it with backoff (``JOBS_*``), for an hour or two; should Stripe be
unreachable for longer, the job dies, and the hourly ``billing.revive_events`` queues it again
for three days from its arrival, as Stripe would have retried it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask

from supporters import audit, jobs
from supporters.billing import reconcile, webhooks
from supporters.billing.models import Customer
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member

log = logging.getLogger(__name__)

RECONCILE = "billing.reconcile"
RECONCILE_CUSTOMER = "billing.reconcile_customer"
REVIVE_EVENTS = "billing.revive_events"
#: Stripe retries a webhook it got no 2xx for over three days; an event whose job died (Stripe
#: was down for longer than the job's backoff) is tried again for as long, once an hour.
_REVIVE_WITHIN = dt.timedelta(days=3)


def init_app(app: Flask) -> None:
    """Register the jobs; only with a Stripe key is there anything to reconcile."""
    jobs.register_handler(
        app, webhooks.EVENT_JOB, webhooks.run_event_job, on_failure=webhooks.store_job_failure
    )
    jobs.register_handler(app, RECONCILE_CUSTOMER, reconcile_customer)
    jobs.register_handler(app, REVIVE_EVENTS, revive_events)
    jobs.register_periodic(app, REVIVE_EVENTS, every=dt.timedelta(hours=1), kind=REVIVE_EVENTS)
    jobs.register_handler(app, RECONCILE, queue_reconciliation)
    minutes = app.config["RECONCILE_MINUTES"]
    if app.config["STRIPE_SECRET_KEY"] and minutes:
        every = dt.timedelta(minutes=minutes)
        jobs.register_periodic(
            app, RECONCILE, every=every, kind=RECONCILE, payload={"minutes": minutes}
        )


def queue_reconciliation(payload: dict[str, Any]) -> None:
    """Queue one job per member's customer, spread over the first half of the period."""
    every = dt.timedelta(minutes=float(payload.get("minutes", 60)))
    ids = list(db.session.scalars(sa.select(Customer.stripe_customer_id).order_by(Customer.id)))
    now = utcnow()
    period = jobs.Periodic(RECONCILE, every, RECONCILE).period_at(now)
    step = every / 2 / max(len(ids), 1)
    queued = 0
    for index, customer_id in enumerate(ids):
        job = jobs.enqueue(
            RECONCILE_CUSTOMER,
            {"customer": customer_id},
            run_at=now + step * index,
            key=f"reconcile:{customer_id}:{period.isoformat()}",
        )
        queued += job is not None
    log.info("queued the reconciliation of %d customer(s)", queued)


def revive_events(payload: dict[str, Any]) -> None:
    """Queue again the events of the last three days whose jobs died (their attempts reset)."""
    queued = webhooks.queue_unprocessed(
        audit.SYSTEM, dead_only=True, received_since=utcnow() - _REVIVE_WITHIN
    )
    if queued:
        log.warning("queued %d failed Stripe event(s) again", queued)


def reconcile_customer(payload: dict[str, Any]) -> None:
    """Compare one customer with Stripe and repair what differs; drift is logged.

    :raises stripe_gateway.StripeError: Stripe could not be read (the job tries again).
    """
    row = db.session.execute(
        sa.select(Customer.member_id, Customer.stripe_customer_id, Member.email)
        .join(Member, Member.id == Customer.member_id)
        .where(Customer.stripe_customer_id == str(payload["customer"]))
    ).one_or_none()
    if row is None:
        return  # the member was deleted since
    report = reconcile.DriftReport(customers_checked=1)
    reconcile.reconcile_one(row.member_id, row.stripe_customer_id, row.email, report)
    for line in (*report.repaired, *report.missing_here, *report.duplicates):
        log.warning("reconciliation: %s", line)
