"""Test data for voting: tiers, subscriptions, patrons, topics and polls, flushed, uncommitted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from flask.testing import FlaskClient

from supporters.billing.models import Interval, Subscription, SubscriptionStatus, Tier
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members import services as member_services
from supporters.members.models import Member
from supporters.voting.models import Poll, PollOption, PollState, PollTierRule, Topic, TopicStatus
from tests.factories import make_member

_counter = iter(range(1, 10**9))


def make_tier(name: str | None = None, *, monthly: int = 500, **fields: Any) -> Tier:
    n = next(_counter)
    tier = Tier(
        slug=fields.pop("slug", f"tier-{n}"),
        name=name or f"Tier {n}",
        monthly_amount=monthly,
        yearly_amount=fields.pop("yearly", monthly * 10),
        currency=fields.pop("currency", "EUR"),
        position=fields.pop("position", n),
        **fields,
    )
    db.session.add(tier)
    db.session.flush()
    return tier


def make_subscription(
    member: Member,
    tier: Tier | None = None,
    *,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    amount: int | None = None,
    interval: Interval = Interval.MONTH,
    currency: str = "EUR",
    **fields: Any,
) -> Subscription:
    if amount is None:
        amount = tier.amount_for(interval) if tier else 500
    subscription = Subscription(
        member_id=member.id,
        tier_id=tier.id if tier else None,
        interval=interval,
        amount=amount,
        currency=currency,
        status=status,
        started_at=fields.pop("started_at", utcnow() - dt.timedelta(days=60)),
        **fields,
    )
    db.session.add(subscription)
    db.session.flush()
    return subscription


def make_patron(
    tier: Tier | None = None,
    *,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    amount: int | None = None,
    **fields: Any,
) -> Member:
    """A member with one subscription (active unless told otherwise)."""
    member = make_member(**fields)
    make_subscription(member, tier, status=status, amount=amount)
    return member


def make_topic(
    title: str | None = None, *, status: TopicStatus = TopicStatus.SHORTLISTED, **fields: Any
) -> Topic:
    n = next(_counter)
    topic = Topic(
        title=title or f"Topic {n}",
        pitch=fields.pop("pitch", f"Pitch {n}"),
        status=status,
        **fields,
    )
    db.session.add(topic)
    db.session.flush()
    return topic


def make_poll(
    titles: Sequence[str] = ("Schools", "Housing", "Transport"),
    *,
    state: PollState = PollState.OPEN,
    opens_at: dt.datetime | None = None,
    closes_at: dt.datetime | None = None,
    tier_rules: Sequence[tuple[Tier, bool, int]] = (),
    **fields: Any,
) -> Poll:
    """A poll with one shortlisted topic per title; open from a day ago for a week by default."""
    at = utcnow()
    poll = Poll(
        question=fields.pop("question", "What should we investigate next?"),
        state=state,
        opens_at=opens_at or at - dt.timedelta(days=1),
        closes_at=closes_at or at + dt.timedelta(days=7),
        options=[PollOption(topic=make_topic(title), position=i) for i, title in enumerate(titles)],
        tier_rules=[
            PollTierRule(tier_id=tier.id, may_vote=may_vote, weight=weight)
            for tier, may_vote, weight in tier_rules
        ],
        **fields,
    )
    db.session.add(poll)
    db.session.flush()
    return poll


def option_ids(poll: Poll) -> list[int]:
    return [option.id for option in poll.options]


def sign_in(client: FlaskClient, member: Member) -> FlaskClient:
    """Give the client a live session for the member (committing it), as sign-in would."""
    row = member_services.start_session(member)
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = row.id
        session["_fresh"] = True
    return client
