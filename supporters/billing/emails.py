"""What billing tells patrons by email, and when; the messages are in templates/emails/billing/.

All of it is transactional (a patron must know what happens to their money), so every message is
sent whatever their choice of optional mail. Two kinds of moment send them:

* a change, seen by the services that apply it (``payments.record_invoice``,
  ``subscriptions.sync_subscription``...) whichever path brings it (the webhook, the success
  page, reconciliation, the demo checkout): a receipt when an invoice becomes paid, a welcome
  after a member's first payment, a payment that failed or recovered, a cancellation scheduled
  or done, a new amount. They compare the row before and after, under its lock, so a replayed
  event changes nothing and sends nothing; the notices that must be once only have keys too.
* a date: the hourly ``billing.notices`` job finds the yearly renewals coming up and the failed
  payments due a reminder on the dunning days (``DUNNING_DAYS``, which admins may change on
  the email schedule page); each such notice has a key
  naming its subscription and period, or its invoice and day, so however often and by however
  many workers the job runs, it is sent once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import joinedload

from supporters import jobs, site_settings, web
from supporters.billing.membership import COUNTED_STATUSES, grace_period, renewal_due_at
from supporters.billing.models import (
    Interval,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.emails import send_to_member
from supporters.members.models import Member

log = logging.getLogger(__name__)

NOTICES = "billing.notices"

# A payment recorded later than this after it was made (reconciliation after an outage) gets
# no receipt or welcome any more: the moment for them has passed.
_FRESH = dt.timedelta(days=3)
# Statuses whose subscription was the member's support until it was cancelled.
_SUPPORTING = (*COUNTED_STATUSES, SubscriptionStatus.UNPAID, SubscriptionStatus.PAUSED)
# How long a link to fix the card works: past any dunning day.
_FIX_CARD_MAX_AGE = dt.timedelta(days=400)


def init_app(app: Flask) -> None:
    """Find the renewals and reminders due, every hour."""
    jobs.register_handler(app, NOTICES, queue_due_notices)
    jobs.register_periodic(app, NOTICES, every=dt.timedelta(hours=1), kind=NOTICES)


# -- links --------------------------------------------------------------------------------------


def _fix_card_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="supporters-fix-card")


def fix_card_token(member_id: int) -> str:
    """The signed token of a payment notice's link, naming the member it was sent to."""
    return str(_fix_card_serializer().dumps(member_id))


def fix_card_url(member_id: int) -> str:
    """The one-click link of a payment notice: the member's support page, after sign-in."""
    return web.external_url("billing.fix_card", card_token=fix_card_token(member_id))


def read_fix_card_token(token: str) -> int | None:
    """The member a payment notice's link was sent to; None when it is not ours or too old."""
    try:
        member_id = _fix_card_serializer().loads(
            token, max_age=int(_FIX_CARD_MAX_AGE.total_seconds())
        )
    except BadSignature:
        return None
    return member_id if isinstance(member_id, int) else None


def _manage_url() -> str:
    return web.external_url("billing.manage")


def _site() -> str:
    return str(current_app.config["SITE_NAME"])


# -- payments -----------------------------------------------------------------------------------


def payment_recorded(payment: Payment, previous: PaymentStatus | None) -> None:
    """Tell the member what became of an invoice whose status changed (``previous``: None when
    it was just recorded): a receipt when paid (with a welcome after their first payment, or
    as the news that a failed payment went through), the first notice when it failed."""
    if payment.member_id is None or payment.status is previous or payment.member is None:
        return
    if payment.status is PaymentStatus.PAID:
        if previous is PaymentStatus.FAILED:
            _recovered(payment, payment.member)
        elif utcnow() - (payment.paid_at or utcnow()) <= _FRESH:
            _welcome_if_first(payment, payment.member)
            _receipt(payment, payment.member)
    elif payment.status is PaymentStatus.FAILED and payment.subscription is not None:
        _payment_failed(
            payment,
            payment.subscription,
            payment.member,
            utcnow(),
            site_settings.value("DUNNING_DAYS"),
        )


def gift_recorded(gift: Payment) -> None:
    """Thank the member for a one-time gift just recorded, with its receipt."""
    if gift.member is None:
        return
    send_to_member(
        gift.member,
        "emails/billing/gift_receipt",
        subject=_l("Your receipt from %(site)s: thank you for your gift", site=_site()),
        kind="billing.gift_receipt",
        context={"payment": gift, "receipt_url": gift.receipt_url, "manage_url": _manage_url()},
        key=f"billing.receipt:{gift.stripe_payment_intent_id or gift.id}",
    )


def _receipt_context(payment: Payment) -> dict[str, Any]:
    subscription = payment.subscription
    return {
        "payment": payment,
        "subscription": subscription,
        "tier_name": subscription.tier.name if subscription and subscription.tier else None,
        "receipt_url": payment.receipt_url,
        "manage_url": _manage_url(),
    }


def _receipt(payment: Payment, member: Member) -> None:
    send_to_member(
        member,
        "emails/billing/receipt",
        subject=_l("Your receipt from %(site)s", site=_site()),
        kind="billing.receipt",
        context=_receipt_context(payment),
        key=f"billing.receipt:{payment.stripe_invoice_id or payment.id}",
    )


def _welcome_if_first(payment: Payment, member: Member) -> None:
    """Welcome a member after their first payment for support (once, ever)."""
    if payment.kind is not PaymentKind.SUBSCRIPTION:
        return
    paid = db.session.scalar(
        sa.select(sa.func.count()).where(
            Payment.member_id == member.id,
            Payment.kind == PaymentKind.SUBSCRIPTION,
            Payment.status == PaymentStatus.PAID,
        )
    )
    if paid != 1:
        return
    send_to_member(
        member,
        "emails/billing/welcome",
        subject=_l("Welcome to %(site)s, patron!", site=_site()),
        kind="billing.welcome",
        context={
            "subscription": payment.subscription,
            "polls_url": web.external_url("voting.list_polls"),
            "manage_url": _manage_url(),
        },
        key=f"billing.welcome:{member.id}",
    )


def _recovered(payment: Payment, member: Member) -> None:
    """A failed payment went through after all: the news, with its receipt (one message)."""
    send_to_member(
        member,
        "emails/billing/payment_recovered",
        subject=_l("Your payment to %(site)s went through", site=_site()),
        kind="billing.payment_recovered",
        context=_receipt_context(payment),
        key=f"billing.receipt:{payment.stripe_invoice_id or payment.id}",
    )


def _payment_failed(
    payment: Payment,
    subscription: Subscription,
    member: Member,
    now: dt.datetime,
    dunning_days: list[int],
) -> None:
    """The notice of the latest dunning day that has come for a failed renewal, unless sent.

    Days are counted from when the renewal was due, as the grace period is; only the latest
    day that has come is sent, so a worker that was away does not send the ones it missed.
    """
    if subscription.status not in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID):
        return
    due = renewal_due_at(subscription)
    days = [day for day in dunning_days if due + dt.timedelta(days=day) <= now]
    if not days:
        return
    day = max(days)
    grace_ends_at = due + grace_period()
    send_to_member(
        member,
        "emails/billing/payment_failed",
        subject=(
            _l("Your payment to %(site)s did not go through", site=_site())
            if day == min(dunning_days)
            else _l("Reminder: your payment to %(site)s did not go through", site=_site())
        ),
        kind="billing.payment_failed",
        context={
            "payment": payment,
            "subscription": subscription,
            "day": day,
            "grace_ends_at": grace_ends_at,
            "is_paused": now >= grace_ends_at
            or subscription.status is not SubscriptionStatus.PAST_DUE,
            "fix_url": fix_card_url(member.id),
        },
        key=f"billing.payment-failed:{payment.stripe_invoice_id or payment.id}:{day}",
    )


# -- subscriptions ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Before:
    """What a subscription's row said before a sync changed it."""

    status: SubscriptionStatus
    cancel_at_period_end: bool
    amount: int
    interval: Interval

    @classmethod
    def of(cls, row: Subscription) -> Before:
        """What the row says now, before the sync writes to it."""
        return cls(row.status, row.cancel_at_period_end, row.amount, row.interval)


def subscription_changed(row: Subscription, before: Before, *, has_other_support: bool) -> None:
    """Tell the member about a change to their subscription: a cancellation scheduled, support
    ended, or a new amount. ``has_other_support``: the member has another subscription that
    counts (this one was a duplicate, cancelled by the system: nothing ended for them)."""
    if row.status is SubscriptionStatus.CANCELED:
        if before.status in _SUPPORTING and not has_other_support:
            send_to_member(
                row.member,
                "emails/billing/support_ended",
                subject=_l("Your support of %(site)s has ended", site=_site()),
                kind="billing.support_ended",
                context={"subscription": row, "support_url": web.external_url("billing.support")},
                key=f"billing.support-ended:{row.id}",
            )
        return
    if row.status not in COUNTED_STATUSES:
        return
    if row.cancel_at_period_end and not before.cancel_at_period_end:
        send_to_member(
            row.member,
            "emails/billing/cancellation_scheduled",
            subject=_l("Your support of %(site)s will end", site=_site()),
            kind="billing.cancellation_scheduled",
            context={"subscription": row, "manage_url": _manage_url()},
        )
    if before.status in COUNTED_STATUSES and (row.amount, row.interval) != (
        before.amount,
        before.interval,
    ):
        send_to_member(
            row.member,
            "emails/billing/amount_changed",
            subject=_l("Your support of %(site)s has a new amount", site=_site()),
            kind="billing.amount_changed",
            context={"subscription": row, "before": before, "manage_url": _manage_url()},
        )


# -- the hourly job -----------------------------------------------------------------------------


def queue_due_notices(payload: dict[str, Any]) -> None:
    """The job: queue the renewal notices and payment reminders whose day has come."""
    now = utcnow()
    renewals = _renewal_notices(now)
    reminders = _payment_reminders(now)
    log.info("checked %d renewal(s) and %d failed payment(s) for notices", renewals, reminders)


def _renewal_notices(now: dt.datetime) -> int:
    """Tell patrons of yearly plans, ``RENEWAL_NOTICE_DAYS`` ahead, when and for how much their
    support renews (automatic-renewal laws ask for it), once per renewal."""
    ahead = dt.timedelta(days=int(site_settings.value("RENEWAL_NOTICE_DAYS")))
    coming = db.session.scalars(
        sa.select(Subscription)
        .options(joinedload(Subscription.member), joinedload(Subscription.tier))
        .where(
            Subscription.interval == Interval.YEAR,
            Subscription.status.in_((SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)),
            Subscription.cancel_at_period_end.is_(False),
            Subscription.current_period_end > now,
            Subscription.current_period_end <= now + ahead,
        )
        .order_by(Subscription.id)
    ).all()
    for subscription in coming:
        assert subscription.current_period_end is not None  # selected so
        send_to_member(
            subscription.member,
            "emails/billing/renewal_notice",
            subject=_l("Your support of %(site)s renews soon", site=_site()),
            kind="billing.renewal_notice",
            context={"subscription": subscription, "manage_url": _manage_url()},
            key=(
                f"billing.renewal:{subscription.id}:"
                f"{subscription.current_period_end.date().isoformat()}"
            ),
        )
    return len(coming)


def _payment_reminders(now: dt.datetime) -> int:
    """Send the dunning day's notice of each renewal still unpaid (its latest failed invoice)."""
    days = site_settings.value("DUNNING_DAYS")
    if not days:
        return 0
    # Past the last dunning day (and a day to spare), there is nothing left to send.
    window = dt.timedelta(days=max(days) + 1)
    failed = db.session.execute(
        sa.select(Payment, Subscription)
        .join(Subscription, Subscription.id == Payment.subscription_id)
        .options(joinedload(Payment.member))
        .where(
            Payment.status == PaymentStatus.FAILED,
            Payment.kind == PaymentKind.SUBSCRIPTION,
            Payment.failed_at > now - window,
            Subscription.status.in_((SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)),
        )
        .order_by(Payment.failed_at.desc(), Payment.id.desc())
    ).all()
    seen: set[int] = set()
    for payment, subscription in failed:
        if subscription.id in seen or payment.member is None:
            continue
        seen.add(subscription.id)
        if now > renewal_due_at(subscription) + window:
            continue
        _payment_failed(payment, subscription, payment.member, now, days)
    return len(seen)
