"""Compare our subscriptions and customers with Stripe, repair what missed webhooks left behind,
and say what differed: the report staff read when the numbers look wrong."""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa

from supporters.billing import errors, payments
from supporters.billing import stripe_gateway as gateway
from supporters.billing.membership import COUNTED_STATUSES, LIVE_STATUSES
from supporters.billing.models import Customer, Subscription, SubscriptionStatus
from supporters.billing.subscriptions import is_support, sync_subscription
from supporters.extensions import db
from supporters.members.models import Member

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DriftReport:
    customers_checked: int = 0
    subscriptions_checked: int = 0
    repaired: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)
    missing_here: list[str] = dataclasses.field(default_factory=list)
    missing_in_stripe: list[str] = dataclasses.field(default_factory=list)
    # Subscriptions of members' customers for products this installation did not make: said,
    # never stored as support. Not drift: the Dashboard or a shop may make them on purpose.
    not_support: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def is_clean(self) -> bool:
        return not (
            self.repaired
            or self.duplicates
            or self.missing_here
            or self.missing_in_stripe
            or self.errors
        )


def _snapshot(row: Subscription | None) -> tuple[object, ...] | None:
    if row is None:
        return None
    return (
        row.status,
        row.amount,
        row.interval,
        row.cancel_at_period_end,
        row.current_period_end,
        row.tier_id,
    )


def reconcile() -> DriftReport:
    """Check every member's Stripe customer; each customer is its own unit of work (committed)."""
    report = DriftReport()
    customers = db.session.execute(
        sa.select(Customer.member_id, Customer.stripe_customer_id, Member.email)
        .join(Member, Member.id == Customer.member_id)
        .order_by(Customer.id)
    ).all()
    db.session.commit()
    seen: set[str] = set()
    for member_id, customer_id, email in customers:
        report.customers_checked += 1
        try:
            reconcile_one(member_id, customer_id, email, report, seen)
            db.session.commit()
        except gateway.StripeError as exc:
            db.session.rollback()
            report.errors.append(f"customer {customer_id}: {exc}")
    stored = db.session.execute(
        sa.select(Subscription.stripe_subscription_id, Subscription.status).where(
            Subscription.stripe_subscription_id.is_not(None), Subscription.status.in_(LIVE_STATUSES)
        )
    ).all()
    for subscription_id, status in stored:
        if subscription_id not in seen:
            report.missing_in_stripe.append(
                f"{subscription_id} is {status.value} here but was not found in Stripe"
            )
    # Left after the above: rows no Stripe customer of the member accounts for.
    several = db.session.execute(
        sa.select(Subscription.member_id, sa.func.count())
        .where(Subscription.status.in_(COUNTED_STATUSES))
        .group_by(Subscription.member_id)
        .having(sa.func.count() > 1)
        .order_by(Subscription.member_id)
    ).all()
    for member_id, counted in several:
        report.duplicates.append(
            f"member {member_id} has {counted} subscriptions counted as support here:"
            " cancel all but one in Stripe"
        )
    return report


def reconcile_one(
    member_id: int, customer_id: str, email: str, report: DriftReport, seen: set[str] | None = None
) -> None:
    """Compare one member's customer with Stripe and repair it; flushes (the caller commits).

    :raises gateway.StripeError: Stripe could not be read.
    """
    seen = set() if seen is None else seen
    others = [c for c in gateway.find_customers(email) if c != customer_id]
    if others:
        report.duplicates.append(
            f"member {member_id} ({email}) has other Stripe customers: {', '.join(others)}"
        )
    subscriptions = gateway.list_subscriptions(customer_id)
    live = [
        s
        for s in subscriptions
        if s.status in {status.value for status in LIVE_STATUSES} - {"incomplete"} and is_support(s)
    ]
    for info in subscriptions:
        report.subscriptions_checked += 1
        seen.add(info.id)
        before = db.session.scalars(
            sa.select(Subscription).where(Subscription.stripe_subscription_id == info.id)
        ).first()
        snapshot = _snapshot(before)
        try:
            row = sync_subscription(info)
        except errors.ForeignProduct as exc:
            stored = f"; stored here as {before.status.value} support" if before else ""
            report.not_support.append(
                f"{info.id} ({info.status}) of member {member_id}: {exc}{stored}"
            )
            continue
        if before is None:
            if info.status in ("active", "trialing", "past_due"):
                report.missing_here.append(
                    f"{info.id} ({info.status}) of member {member_id} was missing: added"
                )
            else:
                report.repaired.append(f"{info.id} ({info.status}) of member {member_id} added")
        elif snapshot != _snapshot(row):
            report.repaired.append(
                f"{info.id} of member {member_id}: was {snapshot[0].value if snapshot else '?'}, now {row.status.value}"  # type: ignore[attr-defined]
            )
        if info.latest_invoice_id:
            payments.record_invoice(gateway.retrieve_invoice(info.latest_invoice_id))
    if len(live) > 1:
        line = f"member {member_id} had {len(live)} live subscriptions: {', '.join(s.id for s in live)}"
        # Syncing them cancelled and refunded the newer ones (subscriptions.sync_subscription).
        cancelled = {
            str(subscription_id)
            for subscription_id in db.session.scalars(
                sa.select(Subscription.stripe_subscription_id).where(
                    Subscription.stripe_subscription_id.in_([s.id for s in live]),
                    Subscription.status == SubscriptionStatus.CANCELED,
                )
            )
        }
        if cancelled:
            kept = ", ".join(s.id for s in live if s.id not in cancelled)
            line += f"; kept {kept}, cancelled and refunded {', '.join(sorted(cancelled))}"
        report.duplicates.append(line)
