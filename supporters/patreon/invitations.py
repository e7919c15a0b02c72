"""The invitation to move over from Patreon, and its reminders.

Each imported patron who has not moved over gets, once, a personal offer (``billing.offers``):
the tier their pledge maps to and its interval, or, for a pledge that maps to no tier and is in
the site's currency, the same amount; its first charge falls when Patreon would have charged
them next, so a paid-up patron never pays twice. The message goes through the outbox in the
same unit of work as the offer and ``invited_at``.

Inviting everyone is a job (``patreon.invite``) that writes the messages in batches, each batch
one transaction that queues the next; the hourly ``patreon.reminders`` job sends a reminder
with a fresh link on each of the ``PATREON_REMINDER_DAYS`` (days after the invitation). Both
claim a patron with a conditional UPDATE before writing anything for them (``invited_at IS
NULL``, ``reminder_day`` below the day), so however many workers run them, nobody gets two
invitations or two reminders of one day; the outbox keys say the same once more. Reminders stop
once a patron has moved over, stopped the optional mail topic, or their offer has expired.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import joinedload

from supporters import jobs, site_settings
from supporters.billing import offers
from supporters.billing.checkout import MAXIMUM_DEFERRAL
from supporters.billing.choices import make_choice
from supporters.billing.errors import BillingError
from supporters.billing.models import Interval, Offer, Tier, add_months
from supporters.db import rows_matched, utcnow
from supporters.extensions import db
from supporters.members import preferences
from supporters.members.emails import member_locale, send_to_member
from supporters.members.models import Member
from supporters.members.preferences import MailTopic, register_topic
from supporters.patreon.models import ChargeFrequency, ImportedPatron, PatronStatus
from supporters.patreon.progress import has_moved

log = logging.getLogger(__name__)

INVITE = "patreon.invite"
REMINDERS = "patreon.reminders"
INVITATION = "patreon.invitation"
REMINDER = "patreon.reminder"

TOPIC = MailTopic(
    "patreon_invitations",
    _l("Invitations to move from Patreon"),
    _l("Your invitation to support us here rather than on Patreon, and its reminders."),
)

#: Patrons written per job (and per transaction) when inviting or reminding many.
BATCH = 200
#: How long an invitation's link works: past the usual reminder days.
INVITATION_VALIDITY = dt.timedelta(days=60)
DAY = dt.timedelta(days=1)


class InvitationError(Exception):
    """A patron who cannot be invited as asked; ``message`` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def init_app(app: Flask) -> None:
    """Offer the optional mail topic, run the invitation and reminder jobs, and hear when an
    invitation's link is first opened."""
    register_topic(app, TOPIC)
    jobs.register_handler(app, INVITE, send_invitations)
    jobs.register_handler(app, REMINDERS, send_reminders)
    jobs.register_periodic(app, REMINDERS, every=dt.timedelta(hours=1), kind=REMINDERS)
    offers.on_first_opened(app, mark_opened)


# -- what the offer is -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Terms:
    """What a patron's invitation offers: a tier or an amount, its interval, its first charge."""

    tier: Tier | None
    amount: int | None
    interval: Interval
    first_charge_at: dt.datetime | None


def first_charge_at(patron: ImportedPatron, now: dt.datetime) -> dt.datetime | None:
    """When a paid-up patron would have paid Patreon next: their next charge date (or access
    expiration; failing both, a period after the last charge). None for declined and former
    patrons, and once that date has passed."""
    if patron.status is not PatronStatus.ACTIVE or patron.last_charge_status.lower() != "paid":
        return None
    ends = [d for d in (patron.next_charge_at, patron.access_expires_at) if d is not None]
    if ends:
        paid_through: dt.datetime | None = max(ends)
    elif patron.last_charge_at is not None:
        months = 12 if patron.charge_frequency is ChargeFrequency.ANNUAL else 1
        paid_through = add_months(patron.last_charge_at, months)
    else:
        paid_through = None
    if paid_through is None or paid_through <= now:
        return None
    # Checkout defers by two years at most; an annual pledge is never that far ahead.
    return min(paid_through, now + MAXIMUM_DEFERRAL - DAY)


def terms_for(patron: ImportedPatron, now: dt.datetime) -> Terms | None:
    """The patron's offer, or None when nothing here matches their pledge (a pledge in another
    currency that maps to no tier, an amount outside the site's limits, a retired tier)."""
    interval = (
        Interval.YEAR if patron.charge_frequency is ChargeFrequency.ANNUAL else Interval.MONTH
    )
    charge_at = first_charge_at(patron, now)
    if patron.tier is not None:
        if not patron.tier.is_active:
            return None
        return Terms(patron.tier, None, interval, charge_at)
    if patron.currency != current_app.config["CURRENCY"] or patron.pledge_amount <= 0:
        return None
    try:
        make_choice(tier_slug="", amount=patron.pledge_amount, interval=interval.value)
    except BillingError:
        return None
    return Terms(None, patron.pledge_amount, interval, charge_at)


# -- the invitation ----------------------------------------------------------------------------


def _site() -> str:
    return str(current_app.config["SITE_NAME"])


def _invitable() -> Any:
    return sa.and_(ImportedPatron.invited_at.is_(None), ~has_moved())


def _patrons(where: Any, after_id: int, limit: int) -> Sequence[ImportedPatron]:
    return db.session.scalars(
        sa.select(ImportedPatron)
        .options(
            joinedload(ImportedPatron.member),
            joinedload(ImportedPatron.tier),
            joinedload(ImportedPatron.offer),
        )
        .where(where, ImportedPatron.id > after_id)
        .order_by(ImportedPatron.id)
        .limit(limit)
    ).all()


def invitable_count() -> int:
    """How many imported patrons an invitation to everyone would be for (at most)."""
    return int(
        db.session.scalar(
            sa.select(sa.func.count()).select_from(ImportedPatron).where(_invitable())
        )
        or 0
    )


def _claim_invitation(patron: ImportedPatron, now: dt.datetime) -> bool:
    claimed = db.session.execute(
        sa.update(ImportedPatron)
        .where(ImportedPatron.id == patron.id, ImportedPatron.invited_at.is_(None))
        .values(invited_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(claimed) == 1


def invite_patron(
    patron: ImportedPatron, now: dt.datetime, *, checked: bool = False
) -> Offer | None:
    """Invite one imported patron: make their offer and queue its message (the caller commits).

    ``checked``: the caller has just found that they want the topic. None when they are not
    invited: nothing to offer, they stopped the topic, or they were invited already (another
    worker got there first).
    """
    terms = terms_for(patron, now)
    if terms is None or not patron.member.email:
        return None
    if not checked and not preferences.wants(patron.member, TOPIC.key):
        return None
    if not _claim_invitation(patron, now):
        return None
    with force_locale(member_locale(patron.member)):
        note = _(
            "Moving over from Patreon? Remember to cancel your pledge on Patreon, so that you "
            "are not charged twice."
        )
    offer, link = offers.create_offer(
        patron.member,
        tier=terms.tier,
        amount=terms.amount,
        interval=terms.interval,
        first_charge_at=terms.first_charge_at,
        note=note,
        valid_for=INVITATION_VALIDITY,
    )
    db.session.execute(
        sa.update(ImportedPatron)
        .where(ImportedPatron.id == patron.id)
        .values(offer_id=offer.id)
        .execution_options(synchronize_session=False)
    )
    _send(patron, offer, link, kind=INVITATION, key=f"{INVITATION}:{patron.id}")
    return offer


def _send(patron: ImportedPatron, offer: Offer, link: str, *, kind: str, key: str) -> None:
    is_reminder = kind == REMINDER
    send_to_member(
        patron.member,
        "emails/patreon/reminder" if is_reminder else "emails/patreon/invitation",
        subject=(
            _l("Reminder: your invitation to support %(site)s directly", site=_site())
            if is_reminder
            else _l("Support %(site)s directly, without Patreon", site=_site())
        ),
        kind=kind,
        context={
            "patron": patron,
            "offer": offer,
            "terms": offers.offer_terms(offer),
            "link": link,
        },
        topic=TOPIC.key,
        key=key,
        checked=True,
    )


def invite_one(email: str, now: dt.datetime | None = None) -> Offer:
    """Invite the imported patron with this address now (staff, from the progress page).

    :raises InvitationError: no imported patron has it, they were invited or moved over
        already, their pledge matches nothing here, or they stopped this mail.
    """
    now = now or utcnow()
    patron = db.session.scalars(
        sa.select(ImportedPatron)
        .join(Member, Member.id == ImportedPatron.member_id)
        .where(Member.email == email.strip().lower())
    ).first()
    if patron is None:
        raise InvitationError(_("No patron imported from Patreon has that address."))
    if patron.invited_at is not None:
        raise InvitationError(_("That patron was invited already."))
    if db.session.scalar(sa.select(has_moved()).where(ImportedPatron.id == patron.id)):
        raise InvitationError(_("That patron has moved over already."))
    if terms_for(patron, now) is None:
        raise InvitationError(
            _("Nothing here matches that patron's pledge: map their Patreon tier to a tier.")
        )
    offer = invite_patron(patron, now)
    if offer is None:
        raise InvitationError(_("That patron has stopped this kind of email."))
    return offer


def send_invitations(payload: dict[str, Any]) -> None:
    """The job: invite a batch of the patrons not invited yet, and queue the next batch."""
    after_id = int(payload.get("after_id", 0))
    now = utcnow()
    batch = _patrons(_invitable(), after_id, BATCH)
    wanted = preferences.wanting(TOPIC.key, [p.member_id for p in batch])
    sent = sum(
        invite_patron(patron, now, checked=True) is not None
        for patron in batch
        if patron.member_id in wanted
    )
    log.info("invited %d of %d patron(s) after #%d", sent, len(batch), after_id)
    if len(batch) == BATCH:
        jobs.enqueue(INVITE, {"after_id": batch[-1].id})


def mark_opened(offer: Offer) -> None:
    """The invitation's link was followed for the first time: the patron opened it."""
    db.session.execute(
        sa.update(ImportedPatron)
        .where(ImportedPatron.offer_id == offer.id, ImportedPatron.opened_at.is_(None))
        .values(opened_at=offer.opened_at or utcnow())
        .execution_options(synchronize_session=False)
    )


# -- reminders ---------------------------------------------------------------------------------


def reminder_days() -> list[int]:
    """The days after the invitation on which reminders go out, as staff set them."""
    return sorted(int(day) for day in site_settings.value("PATREON_REMINDER_DAYS") if day > 0)


def _claim_reminder(patron: ImportedPatron, day: int) -> bool:
    claimed = db.session.execute(
        sa.update(ImportedPatron)
        .where(
            ImportedPatron.id == patron.id,
            sa.func.coalesce(ImportedPatron.reminder_day, 0) < day,
        )
        .values(reminder_day=day)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(claimed) == 1


def send_reminders(payload: dict[str, Any]) -> None:
    """The job: remind, with a fresh link, each invited patron whose reminder day has come
    (only the latest day that has come, once), in batches."""
    days = reminder_days()
    if not days:
        return
    after_id = int(payload.get("after_id", 0))
    now = utcnow()
    due = sa.and_(
        ImportedPatron.invited_at <= now - min(days) * DAY,
        sa.func.coalesce(ImportedPatron.reminder_day, 0) < max(days),
        ImportedPatron.offer.has(sa.and_(Offer.used_at.is_(None), Offer.expires_at > now)),
        ~has_moved(),
    )
    batch = _patrons(due, after_id, BATCH)
    wanted = preferences.wanting(TOPIC.key, [p.member_id for p in batch])
    sent = 0
    for patron in batch:
        assert patron.invited_at is not None and patron.offer is not None  # selected so
        day = max(d for d in days if patron.invited_at + d * DAY <= now)
        if patron.member_id not in wanted or day <= (patron.reminder_day or 0):
            continue
        if not _claim_reminder(patron, day):
            continue  # another worker sent it
        link = offers.offer_url(patron.offer)
        _send(patron, patron.offer, link, kind=REMINDER, key=f"{REMINDER}:{patron.id}:{day}")
        sent += 1
    log.info("sent %d reminder(s) to move from Patreon", sent)
    if len(batch) == BATCH:
        jobs.enqueue(REMINDERS, {"after_id": batch[-1].id})
