"""The support page's funding goals read the report tables, and show what billing counts."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.billing import figures as billing_figures
from supporters.billing.models import FundingGoal, GoalMeasure
from supporters.extensions import db
from supporters.i18n import money
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import statements, text
from tests.voting.factories import make_patron


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


def test_readers_not_signed_in_share_one_drawing_with_their_own_form_tokens(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(PUBLIC_CACHE_SECONDS=1)
    clock = [1000.0]
    monkeypatch.setattr("supporters.kept.monotonic", lambda: clock[0])
    with app.app_context():
        make_tier("reader", name="Reader", monthly=500)
        goal = FundingGoal(title="Heads", measure=GoalMeasure.PATRONS, target=10, position=1)
        db.session.add(goal)
        db.session.commit()
        first, second = app.test_client(), app.test_client()
        drawn = text(first.get("/"))
        make_patron()
        db.session.commit()
        with statements() as seen:
            kept = text(second.get("/"))
        assert seen == []  # drawn once, within the second, for everyone

        def tokens(page: str) -> tuple[str, str]:
            csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
            attempt = re.search(r'name="attempt" type="hidden" value="([^"]+)"', page)
            assert csrf and attempt
            return csrf.group(1), attempt.group(1)

        assert "0 of 10 patrons" in kept
        assert tokens(drawn)[0] != tokens(kept)[0] and tokens(drawn)[1] != tokens(kept)[1]
        # The reader's own token is the one their session holds: the join form goes through.
        csrf, attempt = tokens(kept)
        joined = second.post(
            "/support",
            data={
                "csrf_token": csrf,
                "attempt": attempt,
                "tier": "reader",
                "interval": "month",
                "email": "new@example.org",
            },
        )
        assert joined.status_code in (302, 303), text(joined)

        # A signed-in member sees their own page; past the second, everyone sees the patron.
        member_page = text(signed_in_client(app, make_member()).get("/"))
        assert "1 of 10 patrons" in member_page
        clock[0] += 1.01
        assert "1 of 10 patrons" in text(first.get("/"))
