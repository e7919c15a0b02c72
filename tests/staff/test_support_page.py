"""The support page's funding goals read the report tables, and show what billing counts."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Flask

from supporters.billing import figures as billing_figures
from supporters.billing.models import FundingGoal, GoalMeasure
from supporters.extensions import db
from supporters.i18n import money
from tests.helpers import statements, text


def test_goals_show_the_counted_figures_without_reading_subscriptions(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["seed-demo", "--members", "120"])
    assert result.exit_code == 0, result.output
    db.session.execute(sa.update(FundingGoal).values(is_active=False))
    db.session.add_all(
        [
            FundingGoal(title="Heads", measure=GoalMeasure.PATRONS, target=1000, position=1),
            FundingGoal(
                title="Euros",
                measure=GoalMeasure.MONTHLY_REVENUE,
                target=10_000_000,
                currency="EUR",
                position=2,
            ),
        ]
    )
    db.session.commit()
    patrons, revenue = billing_figures.patron_count(), billing_figures.monthly_revenue("EUR")
    assert patrons > 10 and revenue > 0

    with app.test_request_context():
        shown_revenue = money(revenue, "EUR")
    with statements() as seen:
        page = text(app.test_client().get("/"))

    assert f"{patrons} of 1000 patrons" in page
    assert f"{shown_revenue} of" in page
    # Members entitled by a grant are checked against their own subscriptions: a read that
    # grows with the grants, never with the members.
    reads = [
        s
        for s in seen
        if re.search(r"\bFROM subscriptions\b", s) and not re.search(r"\bFROM grants\b", s)
    ]
    assert reads == [], "the support page counted subscriptions"
