"""The staff's daily digest by email (templates/emails/staff/): new patrons, cancellations,
failed payments and proposals waiting for review.

Optional mail for staff only, off until a staff member turns it on on their account page. A
daily job sends it after midnight UTC, about the day before; its key names the day and the
member, so it is sent once however many workers run. A quiet day sends nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import lazy_gettext as _l

from supporters import jobs, web
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.emails import members_wanting, send_to_member
from supporters.members.models import Member, Role
from supporters.members.preferences import MailTopic, register_topic
from supporters.staff.queries.digest import digest

log = logging.getLogger(__name__)

DIGEST = "staff.digest"

DIGEST_TOPIC = MailTopic(
    "staff_digest",
    _l("A daily digest for staff"),
    _l("New patrons, cancellations, failed payments and proposals to review, each morning."),
    is_wanted_by_default=False,
    is_for_staff=True,
)


def init_app(app: Flask) -> None:
    """Offer staff the digest, and send it once a day."""
    register_topic(app, DIGEST_TOPIC)
    jobs.register_handler(app, DIGEST, send_digest)
    jobs.register_periodic(app, DIGEST, every=dt.timedelta(days=1), kind=DIGEST)


def send_digest(payload: dict[str, Any]) -> None:
    """The job: send yesterday's digest (UTC) to each staff member who asked for it."""
    until = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    day = digest(until - dt.timedelta(days=1), until)
    if day.is_quiet:
        log.info("digest of %s: a quiet day, nothing sent", day.since.date())
        return
    staff = db.session.scalars(
        sa.select(Member.id).where(Member.role.in_((Role.STAFF, Role.ADMIN)))
    ).all()
    recipients = members_wanting(DIGEST_TOPIC.key, staff)
    for member in recipients:
        send_to_member(
            member,
            "emails/staff/digest",
            subject=_l("Yesterday at %(site)s", site=current_app.config["SITE_NAME"]),
            kind=DIGEST,
            context={
                "digest": day,
                "overview_url": web.external_url("staff.overview"),
                "failed_url": web.external_url("staff.failed_payments"),
                "proposals_url": web.external_url("voting.manage_topics"),
            },
            topic=DIGEST_TOPIC.key,
            key=f"{DIGEST}:{day.since.date().isoformat()}:{member.id}",
            checked=True,
        )
    log.info("digest of %s sent to %d staff member(s)", day.since.date(), len(recipients))
