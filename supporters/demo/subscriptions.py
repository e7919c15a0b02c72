"""The demo's patrons: how each one's subscription goes, with an invoice for every period.

Subscriptions and their payments go in through ``billing.imports``, a chunk of members at a
time, with customers named as the demo checkout names its own.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from supporters.billing.demo_checkout import DemoBackend
from supporters.billing.imports import ImportedPayment, ImportedSubscription, import_subscriptions
from supporters.billing.models import Interval, PaymentStatus, SubscriptionStatus, add_months
from supporters.demo.billing import CURRENCY, TierSpec
from supporters.demo.story import Story
from supporters.members.imports import ImportedMember

SUBSCRIBER_SHARE = 0.8
YEARLY_SHARE = 0.18
CUSTOM_AMOUNT_SHARE = 0.08
CUSTOM_MONTHLY_AMOUNTS = (300, 700, 1500, 2000, 5000)
CUSTOM_YEARLY_AMOUNTS = (3000, 6000, 12000, 20000)
# Stripe retries a failed renewal for about two weeks before it gives up and cancels.
RETRY_WINDOW = dt.timedelta(days=14)

CANCEL_REASONS = (
    "Money is tight at the moment.",
    "I read less news these days.",
    "Moving abroad for work.",
    "I would rather give once a year.",
    "I now support another local outlet.",
    "Too many subscriptions; cutting back.",
    "I disagreed with a recent editorial.",
)
REFUND_REASONS = (
    "Signed up for the wrong amount.",
    "Meant to join as a gift for someone else.",
)
FAILURE_MESSAGES = (
    "Your card has insufficient funds.",
    "Your card was declined.",
    "Your card has expired.",
    "Your card does not support this type of purchase.",
)


class Fate(enum.Enum):
    """How a demo subscription's story goes, mirroring what Stripe would report."""

    ACTIVE = "active"
    ACTIVE_PARTLY_REFUNDED = "active, one payment partly refunded"
    ENDING = "active, cancels at period end"
    PAST_DUE = "past due: the latest renewal failed"
    CANCELED = "canceled at the end of a period"
    CANCELED_REFUNDED = "canceled at once, last payment refunded"
    CANCELED_UNPAID = "canceled after a renewal kept failing"


# Dealt from a shuffled deck, so even a small demo shows every fate in believable proportions.
FATE_DECK: tuple[tuple[Fate, int], ...] = (
    (Fate.ACTIVE, 71),
    (Fate.ACTIVE_PARTLY_REFUNDED, 1),
    (Fate.ENDING, 2),
    (Fate.PAST_DUE, 4),
    (Fate.CANCELED, 15),
    (Fate.CANCELED_REFUNDED, 1),
    (Fate.CANCELED_UNPAID, 6),
)


@dataclass(frozen=True, slots=True)
class Plan:
    """A subscription's whole story, before its member is written."""

    interval: Interval
    tier_id: int | None
    amount: int
    status: SubscriptionStatus
    started_at: dt.datetime
    period_end: dt.datetime
    cancel_at_period_end: bool
    cancel_reason: str
    canceled_at: dt.datetime | None
    ended_at: dt.datetime | None
    payments: list[ImportedPayment]


def billing_boundaries(
    start: dt.datetime, interval: Interval, now: dt.datetime
) -> list[dt.datetime]:
    """Every period start up to ``now``, then the end of the current period."""
    step = 1 if interval is Interval.MONTH else 12
    boundaries = [start]
    while boundaries[-1] <= now:
        boundaries.append(add_months(start, step * len(boundaries)))
    return boundaries


class Subscriptions:
    """Plans and writes the demo's subscriptions and payments."""

    def __init__(self, story: Story, tiers: Sequence[tuple[int, TierSpec]]) -> None:
        self.story = story
        self.tiers = tiers
        self.fates: list[Fate] = []
        self.subscription_number = 0
        self.invoice_number = 0
        self.provider = DemoBackend()

    def _deal_fate(self) -> Fate:
        if not self.fates:
            self.fates = [fate for fate, share in FATE_DECK for _ in range(share)]
            self.story.rng.shuffle(self.fates)
        return self.fates.pop()

    def _pick_price(self, interval: Interval) -> tuple[int | None, int]:
        """A tier (id, its price) or, now and then, a custom amount (None, amount)."""
        rng = self.story.rng
        if rng.random() < CUSTOM_AMOUNT_SHARE:
            amounts = (
                CUSTOM_MONTHLY_AMOUNTS if interval is Interval.MONTH else CUSTOM_YEARLY_AMOUNTS
            )
            return None, rng.choice(amounts)
        tier_id, spec = rng.choices(self.tiers, weights=[s.popularity for _, s in self.tiers])[0]
        return tier_id, spec.monthly_amount if interval is Interval.MONTH else spec.yearly_amount

    def plan(self) -> Plan | None:
        """A new reader's subscription (one per billing period paid), or None: most subscribe."""
        rng = self.story.rng
        if rng.random() >= SUBSCRIBER_SHARE:
            return None
        fate = self._deal_fate()
        now = self.story.now
        history_start = self.story.history_start
        interval = Interval.YEAR if rng.random() < YEARLY_SHARE else Interval.MONTH
        if fate in (Fate.PAST_DUE, Fate.CANCELED_UNPAID):
            interval = Interval.MONTH
        step = 1 if interval is Interval.MONTH else 12

        if fate is Fate.PAST_DUE:
            # The latest renewal was a few days ago and failed; Stripe is still retrying.
            renewal = now - dt.timedelta(days=rng.randint(1, 12), seconds=rng.randint(0, 86_399))
            start = add_months(renewal, -rng.randint(1, self.story.history_months - 1))
        else:
            latest = now - dt.timedelta(hours=1)
            if fate in (Fate.CANCELED, Fate.CANCELED_REFUNDED):
                latest = add_months(now, -step) - dt.timedelta(days=1)
            elif fate is Fate.CANCELED_UNPAID:
                latest = add_months(now, -1) - RETRY_WINDOW - dt.timedelta(days=8)
            start = self.story.between(history_start, max(latest, history_start))
        boundaries = billing_boundaries(start, interval, now)
        invoiced = len(boundaries) - 1  # periods begun so far, each with its invoice

        status = SubscriptionStatus.ACTIVE
        paid = invoiced
        failed_at_index: int | None = None
        refund: tuple[int, int] | None = None  # (payment index, refunded amount)
        period_end = boundaries[invoiced]
        cancel_at_period_end = False
        canceled_at: dt.datetime | None = None
        ended_at: dt.datetime | None = None
        cancel_reason = ""
        tier_id, amount = self._pick_price(interval)

        if fate is Fate.PAST_DUE:
            status = SubscriptionStatus.PAST_DUE
            paid = invoiced - 1
            failed_at_index = invoiced - 1
        elif fate is Fate.CANCELED and invoiced >= 2:
            last = rng.randint(1, invoiced - 1)
            status, paid, period_end, ended_at = (
                SubscriptionStatus.CANCELED,
                last,
                boundaries[last],
                boundaries[last],
            )
            canceled_at = max(
                boundaries[last - 1] + dt.timedelta(hours=1),
                ended_at - dt.timedelta(days=rng.randint(1, 20)),
            )
            cancel_reason = rng.choice(CANCEL_REASONS) if rng.random() < 0.7 else ""
        elif fate is Fate.CANCELED_REFUNDED:
            candidates = [i for i in range(invoiced) if boundaries[i] + dt.timedelta(days=8) <= now]
            if candidates:
                last = rng.choice(candidates)
                status, paid, period_end = (
                    SubscriptionStatus.CANCELED,
                    last + 1,
                    boundaries[last + 1],
                )
                ended_at = canceled_at = boundaries[last] + dt.timedelta(
                    days=rng.randint(1, 7), hours=rng.randint(0, 23)
                )
                refund = (last, amount)
                cancel_reason = rng.choice(REFUND_REASONS)
        elif fate is Fate.CANCELED_UNPAID:
            candidates = [
                i
                for i in range(1, invoiced)
                if boundaries[i] + RETRY_WINDOW + dt.timedelta(days=4) <= now
            ]
            if candidates:
                failed = rng.choice(candidates)
                status, paid, failed_at_index = SubscriptionStatus.CANCELED, failed, failed
                period_end = boundaries[failed + 1]
                ended_at = canceled_at = (
                    boundaries[failed] + RETRY_WINDOW + dt.timedelta(hours=rng.randint(0, 72))
                )
        elif fate is Fate.ENDING:
            cancel_at_period_end = True
            canceled_at = self.story.between(
                max(boundaries[invoiced - 1], now - dt.timedelta(days=20)), now
            )
            cancel_reason = rng.choice(CANCEL_REASONS)
        elif fate is Fate.ACTIVE_PARTLY_REFUNDED:
            refund = (rng.randrange(invoiced), amount // 2)

        payments = [self._payment(boundaries[i], amount, i == 0) for i in range(paid)]
        if refund is not None:
            index, refunded = refund
            payments[index] = payments[index]._replace(refunded_amount=refunded)
        if failed_at_index is not None:
            payments.append(self._failed_payment(boundaries[failed_at_index], amount))
        return Plan(
            interval=interval,
            tier_id=tier_id,
            amount=amount,
            status=status,
            started_at=start,
            period_end=period_end,
            cancel_at_period_end=cancel_at_period_end,
            cancel_reason=cancel_reason,
            canceled_at=canceled_at,
            ended_at=ended_at,
            payments=payments,
        )

    def _payment(self, period_start: dt.datetime, amount: int, is_first: bool) -> ImportedPayment:
        self.invoice_number += 1
        # The first invoice is paid at checkout; Stripe finalizes renewals about an hour late.
        delay = self.story.rng.randint(5, 60) if is_first else self.story.rng.randint(3_600, 4_200)
        return ImportedPayment(
            stripe_invoice_id=f"in_demo_{self.invoice_number}",
            amount=amount,
            status=PaymentStatus.PAID,
            created_at=period_start,
            paid_at=min(period_start + dt.timedelta(seconds=delay), self.story.now),
        )

    def _failed_payment(self, period_start: dt.datetime, amount: int) -> ImportedPayment:
        attempt = self._payment(period_start, amount, is_first=False)
        return attempt._replace(
            status=PaymentStatus.FAILED,
            failure_message=self.story.rng.choice(FAILURE_MESSAGES),
            paid_at=None,
            failed_at=attempt.paid_at,
        )

    def add(
        self, patrons: Iterable[tuple[int, ImportedMember, Plan]]
    ) -> Sequence[ImportedSubscription]:
        """Write the subscriptions of a chunk of new members (id, account, plan); them."""
        subscriptions = []
        for member_id, account, plan in patrons:
            self.subscription_number += 1
            customer_id = self.provider.create_customer(
                email=account.email, name=account.display_name, member_id=member_id
            )
            subscriptions.append(
                ImportedSubscription(
                    member_id=member_id,
                    stripe_customer_id=customer_id,
                    stripe_subscription_id=f"sub_demo_{self.subscription_number}",
                    tier_id=plan.tier_id,
                    interval=plan.interval,
                    amount=plan.amount,
                    currency=CURRENCY,
                    status=plan.status,
                    started_at=plan.started_at,
                    current_period_start=plan.interval.after(plan.period_end, -1),
                    current_period_end=plan.period_end,
                    cancel_at_period_end=plan.cancel_at_period_end,
                    cancel_reason=plan.cancel_reason,
                    canceled_at=plan.canceled_at,
                    ended_at=plan.ended_at,
                    payments=plan.payments,
                )
            )
        import_subscriptions(subscriptions)
        self._count(subscriptions)
        return subscriptions

    def _count(self, subscriptions: Sequence[ImportedSubscription]) -> None:
        counts = self.story.counts
        for subscription in subscriptions:
            counts[f"subscriptions {subscription.status}"] += 1
            counts["ending"] += subscription.cancel_at_period_end
            for payment in subscription.payments:
                counts[f"payments {payment.status}"] += 1
                counts["refunded"] += payment.refunded_amount > 0
            counts["payments"] += len(subscription.payments)
        counts["subscriptions"] += len(subscriptions)
