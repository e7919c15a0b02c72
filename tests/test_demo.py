"""``flask seed-demo``: an empty database becomes a believable demo, and only an empty one does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from supporters.billing.models import (
    Interval,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member, Role
from supporters.voting.models import (
    Poll,
    PollOption,
    PollState,
    Topic,
    TopicStatus,
    Vote,
    VoteChoice,
)
from tests.factories import make_member


def seed(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["seed-demo", *args])


def row_counts() -> dict[str, int]:
    """Rows in every table of the schema."""
    return {
        table.name: int(db.session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
        for table in db.metadata.sorted_tables
    }


def test_a_running_site_loads_the_demo_command_and_not_the_seeder(tmp_path: Path) -> None:
    script = """
import sys
from supporters import create_app
app = create_app({"TESTING": True, "SECRET_KEY": "x" * 40, "DATABASE_URL": "sqlite://"})
assert "seed-demo" in app.cli.commands
print(*sorted(name for name in sys.modules if name.split(".")[:2] == ["supporters", "demo"]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "SUPPORTERS_INSTANCE_PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == ["supporters.demo", "supporters.demo.cli"]


def test_seeds_staff_who_can_sign_in(app: Flask) -> None:
    result = seed(app)

    assert result.exit_code == 0, result.output
    admin = db.session.scalars(sa.select(Member).where(Member.email == "admin@example.org")).one()
    editor = db.session.scalars(sa.select(Member).where(Member.email == "editor@example.org")).one()
    assert admin.role is Role.ADMIN and admin.display_name
    assert editor.role is Role.STAFF
    assert "Sign in as admin@example.org at http://localhost/sign-in" in result.output
    assert "members" in result.output and "payments" in result.output
    # Months of invented history email nobody.
    assert row_counts()["outbox_messages"] == 0


def test_members_look_real(app: Flask) -> None:
    assert seed(app).exit_code == 0

    members = db.session.scalars(sa.select(Member).where(Member.role == Role.MEMBER)).all()
    assert len(members) == 150
    assert len({m.email for m in members}) == len(members)
    for member in members:
        assert member.email == member.email.lower()
        assert member.email.rpartition("@")[2] in {"example.org", "example.com", "example.net"}
    assert sum(1 for m in members if m.display_name) > 100


def test_subscriptions_and_payments_tell_eighteen_months_of_history(app: Flask) -> None:
    assert seed(app).exit_code == 0

    subscriptions = db.session.scalars(sa.select(Subscription)).all()
    statuses = Counter(s.status for s in subscriptions)
    assert statuses[SubscriptionStatus.ACTIVE] > statuses[SubscriptionStatus.CANCELED] > 0
    assert statuses[SubscriptionStatus.PAST_DUE] > 0
    assert any(s.cancel_at_period_end for s in subscriptions)
    assert any(s.tier_id is None for s in subscriptions), "some custom amounts"
    assert {s.interval for s in subscriptions} == {Interval.MONTH, Interval.YEAR}
    assert {s.currency for s in subscriptions} == {"EUR"}
    now = utcnow()
    for s in subscriptions:
        assert s.started_at is not None and s.current_period_end is not None
        assert s.started_at < now
        if s.status is SubscriptionStatus.CANCELED:
            assert s.ended_at is not None and s.canceled_at is not None and s.ended_at <= now
        else:
            assert s.ended_at is None and s.current_period_end > now

    payments = db.session.scalars(sa.select(Payment)).all()
    paid = [p for p in payments if p.status is PaymentStatus.PAID]
    assert paid and all(p.paid_at is not None for p in paid)
    assert len({(p.paid_at.year, p.paid_at.month) for p in paid if p.paid_at}) > 12
    assert all(0 <= p.refunded_amount <= p.amount for p in payments)
    assert any(p.refunded_amount > 0 for p in payments)
    failed = [p for p in payments if p.status is PaymentStatus.FAILED]
    assert failed and all(p.failed_at and p.failure_message and not p.paid_at for p in failed)


def test_past_due_subscriptions_end_with_a_failed_payment(app: Flask) -> None:
    assert seed(app).exit_code == 0

    past_due = db.session.scalars(
        sa.select(Subscription).where(Subscription.status == SubscriptionStatus.PAST_DUE)
    ).all()
    assert past_due
    for subscription in past_due:
        latest = db.session.scalars(
            sa.select(Payment)
            .where(Payment.subscription_id == subscription.id)
            .order_by(Payment.created_at.desc())
            .limit(1)
        ).one()
        assert latest.status is PaymentStatus.FAILED


def test_one_open_poll_with_votes_from_active_patrons_once_each(app: Flask) -> None:
    assert seed(app).exit_code == 0

    now = utcnow()
    open_poll = db.session.scalars(sa.select(Poll).where(Poll.state == PollState.OPEN)).one()
    assert open_poll.opens_at is not None and open_poll.closes_at is not None
    assert open_poll.opens_at < now < open_poll.closes_at
    assert len(open_poll.options) >= 2
    votes = db.session.scalars(sa.select(Vote).where(Vote.poll_id == open_poll.id)).all()
    assert votes and open_poll.ballot_count == len(votes)
    for vote in votes:
        assert 1 <= len(vote.choices) <= open_poll.max_choices
        assert db.session.scalar(
            sa.select(Subscription.id).where(
                Subscription.member_id == vote.member_id,
                Subscription.status == SubscriptionStatus.ACTIVE,
            )
        ), "only active patrons vote in the open poll"

    twice = db.session.execute(
        sa.select(Vote.poll_id, Vote.member_id)
        .group_by(Vote.poll_id, Vote.member_id)
        .having(sa.func.count() > 1)
    ).all()
    assert twice == []
    assert {p.state for p in db.session.scalars(sa.select(Poll))} == {
        PollState.DRAFT,
        PollState.OPEN,
        PollState.CLOSED,
    }


def test_the_closed_polls_winner_was_published(app: Flask) -> None:
    assert seed(app).exit_code == 0

    closed = db.session.scalars(sa.select(Poll).where(Poll.state == PollState.CLOSED)).one()
    tally = db.session.execute(
        sa.select(PollOption.topic_id, sa.func.count(VoteChoice.id))
        .join(VoteChoice, VoteChoice.option_id == PollOption.id)
        .where(PollOption.poll_id == closed.id)
        .group_by(PollOption.topic_id)
        .order_by(sa.func.count(VoteChoice.id).desc())
    ).all()
    assert len(tally) >= 2 and tally[0][1] > tally[1][1]
    # Its results page shows a turnout among the patrons who could vote when it closed.
    assert closed.eligible_count is not None
    assert closed.eligible_count >= closed.ballot_count == sum(votes for _, votes in tally) > 0
    winner = db.session.get(Topic, tally[0][0])
    assert winner is not None and winner.status is TopicStatus.PUBLISHED
    assert winner.article_url and winner.published_on
    statuses = Counter(db.session.scalars(sa.select(Topic.status)))
    assert statuses[TopicStatus.PROPOSED] >= 2 and statuses[TopicStatus.DECLINED] >= 1
    proposers = db.session.scalars(
        sa.select(Topic.proposed_by_id).where(Topic.status == TopicStatus.PROPOSED)
    ).all()
    assert all(proposers), "patrons' proposals are signed by patrons"


def test_a_second_run_refuses_and_writes_nothing(app: Flask) -> None:
    assert seed(app).exit_code == 0
    before = row_counts()

    result = seed(app, "--members", "10")

    assert result.exit_code != 0
    assert "already holds" in result.output
    db.session.expire_all()
    assert row_counts() == before


def test_refuses_a_database_with_a_member(app: Flask) -> None:
    make_member("someone@example.org")
    db.session.commit()

    result = seed(app)

    assert result.exit_code != 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tier)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Member)) == 1


def test_refuses_a_site_with_a_stripe_account(make_app: Any) -> None:
    app = make_app(STRIPE_SECRET_KEY="sk_test_supporters", STRIPE_API_BASE="http://127.0.0.1:9")
    with app.app_context():
        result = seed(app)

        assert result.exit_code != 0 and "STRIPE_SECRET_KEY" in result.output
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Tier)) == 0


def test_members_option_sets_the_number_of_readers(app: Flask) -> None:
    result = seed(app, "--members", "500")

    assert result.exit_code == 0, result.output
    by_role = Counter(db.session.scalars(sa.select(Member.role)))
    assert by_role == {Role.MEMBER: 500, Role.STAFF: 1, Role.ADMIN: 1}
