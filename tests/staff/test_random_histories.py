"""Random histories, driven through billing, against a recomputation from the event log.

Hypothesis draws what happens next from what is possible now (join, renew, fail, recover,
change tier or amount or interval in the middle of a month, schedule a cancellation, cancel,
lapse unpaid, come back, refund, dispute a payment and win or lose the dispute, give once),
for members paying in euros or dollars, monthly or yearly. Each step goes through billing's services as Stripe's webhooks would. The test
keeps its own plain record (each member's state after every step, each payment), works the
figures out from that record in the most direct way (a state at a month's end, a count of
changes in a month), and compares them with the report queries; then a rebuild from the
ledger must leave every rollup as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from fractions import Fraction

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supporters.extensions import db
from supporters.members.models import Member
from supporters.staff.models import COHORT_OFFSETS, MovementKind, month_number
from supporters.staff.queries import at_risk, headline, monthly, retention
from tests.factories import make_member, make_tier
from tests.staff.driver import Driver, utc
from tests.staff.test_rollups import rebuilt_matches

K = MovementKind
COUNTED = ("active", "trialing", "past_due")
START = utc(2025, 1, 1)


@dataclasses.dataclass
class Sub:
    id: str
    member: int
    currency: str
    amount: int
    interval: str
    tier: str
    status: str = "active"
    failed_invoice: str | None = None

    @property
    def mrr(self) -> int:
        return self.amount if self.interval == "month" else self.amount // 12


@dataclasses.dataclass
class Paid:
    currency: str
    amount: int
    paid_at: dt.datetime | None
    failed_at: dt.datetime | None
    refunded: int = 0
    disputed: int = 0  # what its dispute withholds now
    gift: bool = False


@dataclasses.dataclass
class Record:
    """What the test saw happen, kept as plainly as possible."""

    subs: dict[str, Sub] = dataclasses.field(default_factory=dict)
    payments: dict[str, Paid] = dataclasses.field(default_factory=dict)
    # dispute id -> (payment key, Stripe's status, disputed amount)
    disputes: dict[str, tuple[str, str, int]] = dataclasses.field(default_factory=dict)
    # (time, member, {currency: mrr}) after every step that touched a member
    states: list[tuple[dt.datetime, int, dict[str, int]]] = dataclasses.field(default_factory=list)
    # (time, member, currency, kind, mrr change, patron change)
    changes: list[tuple[dt.datetime, int, str, MovementKind, int, int]] = dataclasses.field(
        default_factory=list
    )

    def member_mrr(self, member: int) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for sub in self.subs.values():
            if sub.member == member and sub.status in COUNTED:
                totals[sub.currency] += sub.mrr
        return dict(totals)

    def was_patron(self, member: int) -> bool:
        return any(m == member and p > 0 for _, m, _, _, _, p in self.changes)

    def note(
        self, at: dt.datetime, member: int, before: dict[str, int], churn: MovementKind
    ) -> None:
        after = self.member_mrr(member)
        self.states.append((at, member, after))
        if not before and after:
            kind = K.REACTIVATION if self.was_patron(member) else K.NEW
            for currency, mrr in after.items():
                self.changes.append((at, member, currency, kind, mrr, 1))
        elif before and not after:
            for currency, mrr in before.items():
                self.changes.append((at, member, currency, churn, -mrr, -1))
        else:
            for currency in set(before) | set(after):
                delta = after.get(currency, 0) - before.get(currency, 0)
                if delta:
                    kind = K.EXPANSION if delta > 0 else K.CONTRACTION
                    self.changes.append((at, member, currency, kind, delta, 0))

    def state_at(self, member: int, moment: dt.datetime) -> dict[str, int]:
        latest: dict[str, int] = {}
        for at, m, state in self.states:
            if m == member and at < moment:
                latest = state
        return latest


def _month_start(number: int) -> dt.datetime:
    return utc(number // 12, number % 12 + 1, 1)


def _wipe() -> None:
    db.session.rollback()
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(sa.delete(table))
    db.session.commit()


# What the bank's next word does to a dispute, and whether the disputed amount is withheld then.
DISPUTE_STEPS = {
    ("needs_response", "review"): "under_review",
    ("needs_response", "won"): "won",
    ("needs_response", "lost"): "lost",
    ("under_review", "won"): "won",
    ("under_review", "lost"): "lost",
    ("warning_needs_response", "review"): "warning_under_review",
    ("warning_needs_response", "won"): "warning_closed",
    ("warning_needs_response", "lost"): "needs_response",  # the inquiry becomes a chargeback
    ("warning_under_review", "won"): "warning_closed",
    ("warning_under_review", "lost"): "needs_response",
}
WITHHOLDING = ("needs_response", "under_review", "lost")

AMOUNTS = {("month", "reader"): 500, ("month", "supporter"): 1000}
AMOUNTS |= {("year", "reader"): 5000, ("year", "supporter"): 10000}


@settings(
    max_examples=20,
    deadline=None,
    # One app for all examples: each example starts by emptying every table (_wipe).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_reports_match_a_recomputation_from_the_record(
    app: Flask, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    _wipe()
    make_tier("reader", monthly=500, yearly=5000)
    make_tier("supporter", monthly=1000, yearly=10000)
    members = [make_member() for _ in range(3)]
    db.session.commit()
    currency_of = {m.id: data.draw(st.sampled_from(["EUR", "USD"])) for m in members}
    d = Driver(monkeypatch)
    record = Record()
    now = START
    numbers = iter(range(1, 10_000))

    for _ in range(data.draw(st.integers(min_value=4, max_value=22), label="steps")):
        now += dt.timedelta(days=data.draw(st.integers(1, 45)), hours=data.draw(st.integers(0, 23)))
        d.at(now)
        member: Member = data.draw(st.sampled_from(members))
        live = [s for s in record.subs.values() if s.member == member.id and s.status != "canceled"]
        before = record.member_mrr(member.id)
        churn = K.VOLUNTARY_CHURN
        if not live:
            action = data.draw(st.sampled_from(["join", "join", "gift"]))
        else:
            sub = live[0]
            choices = {
                "active": [
                    "renew",
                    "renew",
                    "fail",
                    "change",
                    "schedule",
                    "cancel",
                    "refund",
                    "replay",
                    "dispute",
                    "settle",
                ],
                "past_due": ["recover", "cancel", "unpaid", "replay", "dispute", "settle"],
                "unpaid": ["recover", "cancel"],
            }[sub.status]
            action = data.draw(st.sampled_from(choices))

        if action == "gift":
            amount = data.draw(st.sampled_from([300, 2000]))
            d.gift(member, amount, currency_of[member.id])
            pi = f"gift{next(numbers)}"
            record.payments[pi] = Paid(currency_of[member.id], amount, now, None, gift=True)
            continue
        if action == "join":
            interval = data.draw(st.sampled_from(["month", "year"]))
            currency = currency_of[member.id]
            tier = (
                "custom"
                if currency != "EUR"
                else data.draw(st.sampled_from(["reader", "supporter", "custom"]))
            )
            amount = AMOUNTS.get((interval, tier)) or data.draw(st.sampled_from([700, 1300, 24000]))
            sub = Sub(f"sub{next(numbers)}", member.id, currency, amount, interval, tier)
            record.subs[sub.id] = sub
            info = d.subscribe(
                member, sub.id, amount=amount, interval=interval, currency=currency, tier=tier
            )
            invoice = next(i for i in reversed(d.invoices.values()) if i.subscription_id == info.id)
            record.payments[invoice.id] = Paid(currency, amount, now, None)
        elif action == "renew":
            invoice = d.invoice(sub.id)
            record.payments[invoice.id] = Paid(sub.currency, sub.amount, now, None)
        elif action == "fail":
            invoice = d.invoice(sub.id, paid=False)
            record.payments[invoice.id] = Paid(sub.currency, sub.amount, None, now)
            sub.failed_invoice, sub.status = invoice.id, "past_due"
            d.update(sub.id, status="past_due")
        elif action == "recover":
            assert sub.failed_invoice is not None
            d.invoice(inv_id=sub.failed_invoice)
            record.payments[sub.failed_invoice].paid_at = now
            sub.status, sub.failed_invoice = "active", None
            d.update(sub.id, status="active")
        elif action == "unpaid":
            churn = K.FAILED_CHURN
            sub.status = "unpaid"
            d.update(sub.id, status="unpaid")
        elif action == "cancel":
            churn = K.FAILED_CHURN if sub.status in ("past_due", "unpaid") else K.VOLUNTARY_CHURN
            sub.status = "canceled"
            d.cancel_now(sub.id)
        elif action == "schedule":
            d.update(sub.id, cancel_at_period_end=True, canceled_at=now)
        elif action == "replay":
            d.update(sub.id)
        elif action == "change":
            if sub.currency == "EUR":
                sub.tier = data.draw(st.sampled_from(["reader", "supporter", "custom"]))
            sub.interval = data.draw(st.sampled_from(["month", "year"]))
            sub.amount = AMOUNTS.get((sub.interval, sub.tier)) or data.draw(
                st.sampled_from([700, 1300, 24000])
            )
            d.update(
                sub.id,
                amount=sub.amount,
                interval=sub.interval,
                metadata={"member_id": str(member.id), "tier": sub.tier},
            )
        elif action == "refund":
            paid = [
                (key, p)
                for key, p in record.payments.items()
                if not p.gift
                and p.paid_at
                and key in d.invoices
                and d.invoices[key].subscription_id == sub.id
                and p.refunded < p.amount
                # Stripe refuses to refund a disputed charge.
                and all(dispute[0] != key for dispute in record.disputes.values())
            ]
            if not paid:
                continue
            key, payment = data.draw(st.sampled_from(paid))
            payment.refunded = data.draw(st.integers(payment.refunded + 1, payment.amount))
            d.refund(key, payment.refunded)
        elif action == "dispute":
            disputable = [
                (key, p)
                for key, p in record.payments.items()
                if not p.gift
                and p.paid_at
                and key in d.invoices
                and d.invoices[key].subscription_id == sub.id
                and p.refunded < p.amount
                and all(dispute[0] != key for dispute in record.disputes.values())
            ]
            if not disputable:
                continue
            key, payment = data.draw(st.sampled_from(disputable))
            status = data.draw(st.sampled_from(["needs_response", "warning_needs_response"]))
            amount = data.draw(st.integers(1, payment.amount - payment.refunded))
            dispute_id = f"dp{next(numbers)}"
            d.dispute(key, dispute_id, status=status, amount=amount)
            record.disputes[dispute_id] = (key, status, amount)
            payment.disputed = amount if status in WITHHOLDING else 0
            continue
        elif action == "settle":
            undecided = sorted(
                (dispute_id, dispute)
                for dispute_id, dispute in record.disputes.items()
                if any(state == dispute[1] for state, _ in DISPUTE_STEPS)
            )
            if not undecided:
                continue
            dispute_id, (key, status, amount) = data.draw(st.sampled_from(undecided))
            word = data.draw(st.sampled_from(["review", "won", "lost"]))
            status = DISPUTE_STEPS.get((status, word), status)
            d.dispute(key, dispute_id, status=status)
            record.disputes[dispute_id] = (key, status, amount)
            record.payments[key].disputed = amount if status in WITHHOLDING else 0
            continue
        record.note(now, member.id, before, churn)

    d.at(now + dt.timedelta(days=1))
    current = month_number(d.now)
    months = list(range(month_number(START), current + 1))
    _compare(record, [m.id for m in members], months, d.now)
    rebuilt_matches()


def _compare(record: Record, members: list[int], months: list[int], now: dt.datetime) -> None:
    # Patrons and recurring revenue at each month's end, from each member's state then.
    patron_rows = monthly.patron_months(months)
    revenue = monthly.revenue_months(months)
    for row in patron_rows:
        end = _month_start(row.month + 1)
        states = [record.state_at(m, end) for m in members]
        assert row.patrons_at_end == sum(1 for s in states if s), row
        for currency in ("EUR", "USD"):
            expected = sum(s.get(currency, 0) for s in states)
            series = revenue.get(currency)
            got = next(r.mrr_at_end for r in series if r.month == row.month) if series else 0
            assert got == expected, (currency, row.month)

    # Changes counted in the month they happened.
    by_month: dict[tuple[int, MovementKind], int] = defaultdict(int)
    mrr_by: dict[tuple[int, str, MovementKind], int] = defaultdict(int)
    for at, _, currency, kind, mrr, patrons in record.changes:
        by_month[(month_number(at), kind)] += abs(patrons)
        mrr_by[(month_number(at), currency, kind)] += mrr
    for row in patron_rows:
        assert row.new == by_month[(row.month, K.NEW)]
        assert row.reactivated == by_month[(row.month, K.REACTIVATION)]
        assert row.voluntary_churn == by_month[(row.month, K.VOLUNTARY_CHURN)]
        assert row.failed_churn == by_month[(row.month, K.FAILED_CHURN)]
    for currency, series in revenue.items():
        for money in series:
            for kind in monthly.MRR_KINDS:
                assert money.movements[kind] == mrr_by[(money.month, currency, kind)], (
                    currency,
                    money.month,
                    kind,
                )

    # Money, from each payment's own record.
    for currency, series in revenue.items():
        for money in series:
            mine = [
                p
                for p in record.payments.values()
                if p.currency == currency and p.paid_at and month_number(p.paid_at) == money.month
            ]
            assert money.paid == sum(p.amount for p in mine if not p.gift)
            assert money.gifts == sum(p.amount for p in mine if p.gift)
            assert money.refunded == sum(p.refunded for p in mine)
            assert money.disputed == sum(p.disputed for p in mine)
    failures = {(f.month, f.currency): f for f in at_risk.failure_months(months)}
    for (month, currency), f in failures.items():
        failed = [
            p
            for p in record.payments.values()
            if p.currency == currency and p.failed_at and month_number(p.failed_at) == month
        ]
        assert f.recovered_count == sum(1 for p in failed if p.paid_at)
        assert f.failed_count == sum(1 for p in failed if not p.paid_at)
    assert sum(f.total_count for f in failures.values()) == sum(
        1 for p in record.payments.values() if p.failed_at
    )

    # Cohorts: who was a patron at the end of each month after their first.
    first: dict[int, int] = {}
    for at, member, _, _, _, patrons in record.changes:
        if patrons > 0:
            first.setdefault(member, month_number(at))
    for cohort in retention.cohorts(months, now):
        joined = [m for m, c in first.items() if c == cohort.month]
        assert cohort.size == len(joined)
        for k in COHORT_OFFSETS:
            if cohort.month + k >= month_number(now):
                assert cohort.retained[k] is None
                continue
            end = _month_start(cohort.month + k + 1)
            assert cohort.retained[k] == sum(1 for m in joined if record.state_at(m, end))

    figures = headline.now_figures(now)
    assert figures.patrons == sum(1 for m in members if record.member_mrr(m))
    for currency, mrr in figures.mrr.items():
        assert mrr == sum(record.member_mrr(m).get(currency, 0) for m in members)
    for value in retention.lifetime_values(figures, now):
        assert value.average_churn is None or value.average_churn >= Fraction(0)
