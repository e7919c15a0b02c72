"""Every report figure against a small history worked out by hand.

Five people, January to mid-June 2026, in euros and dollars:

* Alice joins on 10 Jan at €5 a month (Reader), pays each month, and moves up to €10
  (Supporter) on 20 Mar: an upgrade in the middle of a month.
* Bob joins on 20 Jan on a yearly €100 plan (Supporter): €8.33 a month, rounded down. €20 of
  his payment is refunded on 5 Feb. On 1 Apr he schedules his cancellation for the end of
  the year: still a patron, but at risk.
* Carol joins on 3 Feb at $7 a month. Her bank disputes her March payment on 20 Mar; the
  newsroom loses on 30 Apr. Her April renewal fails on 3 Apr and succeeds on 8 Apr
  (recovered); her May renewal fails on 3 May and Stripe cancels on 17 May (failed payment).
* Dan joins on 10 Feb at €5, cancels, and his subscription ends on 10 Mar (voluntary). He comes
  back on 5 May at €10 with a new subscription (a reactivation, not a new patron).
* Eve gives €20 once on 15 Mar and is never a patron.

"Now" is 15 Jun 2026, 12:00 UTC.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from flask import Flask

from supporters import numbers
from supporters.billing import figures as billing_figures
from supporters.extensions import db
from supporters.staff import rollups
from supporters.staff.models import MovementKind, month_number
from supporters.staff.queries import at_risk, headline, monthly, retention
from supporters.staff.rebuild import rebuild
from tests.factories import make_member, make_tier
from tests.staff.driver import Driver, utc

NOW = utc(2026, 6, 15, 12)
JAN, FEB, MAR, APR, MAY, JUN = range(month_number(utc(2026, 1, 1)), month_number(NOW) + 1)
MONTHS = [JAN, FEB, MAR, APR, MAY, JUN]
K = MovementKind


@pytest.fixture
def history(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Driver:
    make_tier("reader", monthly=500, yearly=5000)
    make_tier("supporter", monthly=1000, yearly=10000)
    alice = make_member("alice@example.org")
    bob = make_member("bob@example.org")
    carol = make_member("carol@example.org")
    dan = make_member("dan@example.org")
    eve = make_member("eve@example.org")
    db.session.commit()
    d = Driver(monkeypatch)

    d.at(utc(2026, 1, 10, 9)).subscribe(alice, "sub_alice", amount=500, tier="reader")
    d.at(utc(2026, 1, 20, 9)).subscribe(
        bob, "sub_bob", amount=10000, interval="year", tier="supporter"
    )
    bob_invoice = next(iter(i for i in d.invoices.values() if i.subscription_id == "sub_bob"))
    d.at(utc(2026, 2, 3, 9)).subscribe(carol, "sub_carol", amount=700, currency="USD")
    d.at(utc(2026, 2, 5, 9)).refund(bob_invoice.id, 2000)
    d.at(utc(2026, 2, 10, 9)).invoice("sub_alice")
    d.at(utc(2026, 2, 10, 10)).subscribe(dan, "sub_dan", amount=500, tier="reader")
    d.at(utc(2026, 2, 25, 9)).update("sub_dan", cancel_at_period_end=True, canceled_at=d.now)
    carol_march = d.at(utc(2026, 3, 3, 9)).invoice("sub_carol")
    d.at(utc(2026, 3, 10, 9)).invoice("sub_alice")
    d.at(utc(2026, 3, 10, 10)).update("sub_dan", status="canceled", ended_at=d.now)
    d.at(utc(2026, 3, 15, 9)).gift(eve, 2000)
    d.at(utc(2026, 3, 20, 9)).update(
        "sub_alice", amount=1000, metadata={"member_id": str(alice.id), "tier": "supporter"}
    )
    d.dispute(carol_march.id, "dp_carol", reason="subscription_canceled")
    d.at(utc(2026, 4, 1, 9)).update("sub_bob", cancel_at_period_end=True)
    failed = d.at(utc(2026, 4, 3, 13)).invoice("sub_carol", paid=False)
    d.update("sub_carol", status="past_due")
    d.at(utc(2026, 4, 8, 13)).invoice(inv_id=failed.id)
    d.update("sub_carol", status="active")
    d.at(utc(2026, 4, 10, 9)).invoice("sub_alice")
    d.at(utc(2026, 4, 30, 9)).dispute(carol_march.id, "dp_carol", status="lost")
    d.at(utc(2026, 5, 3, 13)).invoice("sub_carol", paid=False)
    d.update("sub_carol", status="past_due")
    d.at(utc(2026, 5, 5, 9)).subscribe(dan, "sub_dan2", amount=1000, tier="supporter")
    d.at(utc(2026, 5, 10, 9)).invoice("sub_alice")
    d.at(utc(2026, 5, 17, 9)).cancel_now("sub_carol")
    d.at(utc(2026, 6, 10, 9)).invoice("sub_alice")
    d.at(NOW)
    return d


def test_patrons_per_month(history: Driver) -> None:
    months = monthly.patron_months(MONTHS)
    table = [
        (m.patrons_at_start, m.new, m.reactivated, m.voluntary_churn, m.failed_churn)
        for m in months
    ]
    assert table == [
        (0, 2, 0, 0, 0),  # Jan: Alice, Bob
        (2, 2, 0, 0, 0),  # Feb: Carol, Dan
        (4, 0, 0, 1, 0),  # Mar: Dan ends
        (3, 0, 0, 0, 0),  # Apr: Carol past due for five days, still a patron
        (3, 0, 1, 0, 1),  # May: Dan is back, Carol's payment failed for good
        (3, 0, 0, 0, 0),  # Jun
    ]
    assert [m.churn_rate for m in months] == [
        None,
        Fraction(0),
        Fraction(1, 4),
        Fraction(0),
        Fraction(1, 3),
        Fraction(0),
    ]
    assert months[-1].patrons_at_end == 3


def test_recurring_revenue_and_its_movements_per_currency(history: Driver) -> None:
    revenue = monthly.revenue_months(MONTHS)
    assert set(revenue) == {"EUR", "USD"}
    eur, usd = revenue["EUR"], revenue["USD"]
    assert [m.mrr_at_end for m in eur] == [1333, 1833, 1833, 1833, 2833, 2833]
    assert [m.mrr_at_end for m in usd] == [0, 700, 700, 700, 0, 0]
    assert eur[0].movements[K.NEW] == 500 + 833  # a yearly €100 is €8.33, rounded down
    assert eur[1].movements[K.NEW] == 500
    assert eur[2].movements[K.EXPANSION] == 500  # Alice, mid-March
    assert eur[2].movements[K.VOLUNTARY_CHURN] == -500  # Dan
    assert eur[4].movements[K.REACTIVATION] == 1000  # Dan again
    assert usd[1].movements[K.NEW] == 700
    assert usd[4].movements[K.FAILED_CHURN] == -700  # Carol
    for series in revenue.values():
        for m in series:  # every other cell is zero
            expected = {k: v for k, v in m.movements.items() if v}
            assert sum(expected.values()) == m.net_movement


def test_money_received_per_month(history: Driver) -> None:
    revenue = monthly.revenue_months(MONTHS)
    eur = [(m.paid, m.gifts, m.refunded, m.received) for m in revenue["EUR"]]
    assert eur == [
        (10500, 0, 2000, 8500),  # Alice 5 + Bob 100, of which 20 refunded later (in Feb)
        (1000, 0, 0, 1000),
        (500, 2000, 0, 2500),  # Alice, and Eve's gift
        (1000, 0, 0, 1000),
        (2000, 0, 0, 2000),  # Alice, Dan
        (1000, 0, 0, 1000),
    ]
    assert [m.paid for m in revenue["USD"]] == [0, 700, 700, 700, 0, 0]
    # Carol's March payment, lost to her bank's dispute: not a refund, and not received.
    assert [m.disputed for m in revenue["USD"]] == [0, 0, 700, 0, 0, 0]
    assert [m.refunded for m in revenue["USD"]] == [0] * 6
    assert [m.received for m in revenue["USD"]] == [0, 700, 0, 700, 0, 0]
    assert all(m.disputed == 0 for m in revenue["EUR"])


def test_failed_payments_recovered_and_not(history: Driver) -> None:
    failures = at_risk.failure_months(MONTHS)
    assert [(f.month, f.currency, f.recovered_count, f.failed_count) for f in failures] == [
        (APR, "USD", 1, 0),
        (MAY, "USD", 0, 1),
    ]
    assert failures[0].recovered_amount == 700 and failures[1].failed_amount == 700
    assert failures[0].recovery_rate == 1
    assert at_risk.failed_payments_in(MAY) == (1, {"USD": 700})
    assert at_risk.past_due_count() == 0


def test_now_and_thirty_days_ago(history: Driver) -> None:
    now = headline.now_figures(NOW)
    assert now.patrons == 3  # Alice, Bob, Dan
    assert now.mrr == {"EUR": 2833, "USD": 0}
    # On 16 May Carol still counted (past due): one more patron, $7 more.
    assert now.patrons_30_days_ago == 4
    assert now.mrr_30_days_ago == {"EUR": 2833, "USD": 700}
    assert [(t.name, t.currency, t.subscriptions, t.mrr) for t in now.by_tier] == [
        ("Supporter", "EUR", 3, 2833)
    ]
    assert now.average_revenue("EUR") == Fraction(2833, 3)
    assert now.average_revenue("USD") is None
    # The same figures as billing's own (public) ones.
    assert now.patrons == billing_figures.patron_count()


def test_cohort_retention(history: Driver) -> None:
    cohorts = {c.month: c for c in retention.cohorts(MONTHS, NOW)}
    assert cohorts[JAN].size == 2
    assert cohorts[JAN].retained == {1: 2, 3: 2, 6: None, 12: None}
    assert cohorts[FEB].size == 2
    # End of March: Carol yes, Dan gone. End of May: Carol gone, Dan back.
    assert cohorts[FEB].retained == {1: 1, 3: 1, 6: None, 12: None}
    assert cohorts[FEB].share(1) == Fraction(1, 2)
    assert cohorts[MAY].size == 0  # Dan came back; he belongs to February


def test_lifetime_value(history: Driver) -> None:
    values = {v.currency: v for v in retention.lifetime_values(headline.now_figures(NOW), NOW)}
    # Churn of the complete months with patrons at their start: Feb 0, Mar 1/4, Apr 0, May 1/3.
    assert values["EUR"].average_churn == Fraction(7, 48)
    assert values["EUR"].estimate == Fraction(2833, 3) / Fraction(7, 48)
    assert numbers.round_half_up(values["EUR"].estimate) == 6475  # €64.75
    # 140 euros received net of refunds, from three patrons who paid in euros.
    assert values["EUR"].received_per_patron == Fraction(14000, 3)
    assert values["USD"].received_per_patron == 1400  # $21 paid, $7 of it lost to a dispute
    assert values["USD"].estimate is None


def test_at_risk_and_goal_progress(history: Driver) -> None:
    risky = at_risk.at_risk()
    assert [(r.reason, r.subscription.member.email) for r in risky] == [
        ("ending", "bob@example.org")
    ]


def test_rebuild_changes_nothing(history: Driver) -> None:
    before = rollups.snapshot()
    report = rebuild()
    db.session.commit()
    assert (report.backfilled, report.corrected, report.ended, report.movements_added) == (
        0,
        0,
        0,
        0,
    )
    assert rollups.snapshot() == before
