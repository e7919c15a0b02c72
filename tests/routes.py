"""Every route in the URL map, opened with real arguments, and the people who open them.

For the tests that walk the whole site (what a GET may write; who may open what): build the
rows once with :func:`make_site`, then take the routes of a method from :func:`urls`. A route
with an argument this module does not know fails the walk at once, so a new route is walked
from the day it is added. Query strings are not walked: a route is opened bare.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from supporters.audit import record_action
from supporters.billing.demo_checkout import CUSTOM_PRODUCT, DemoBackend
from supporters.billing.models import (
    FundingGoal,
    GoalMeasure,
    Payment,
    PaymentStatus,
    SubscriptionStatus,
)
from supporters.billing.stripe_gateway import NewPrice
from supporters.extensions import db
from supporters.members import services as member_services
from supporters.members.models import Member, Role
from supporters.staff import exports
from supporters.voting.models import WEIGHT_SCALE, Poll, PollState, TopicStatus, Vote, VoteChoice
from tests.factories import make_member
from tests.voting.factories import make_poll, make_subscription, make_tier, make_topic

ROLES = ("anonymous", "member", "patron", "staff", "admin")


@dataclass(frozen=True)
class Site:
    """The rows the walk opens the site with."""

    people: dict[str, Member | None]  # role -> member (None: a visitor who is not signed in)
    arguments: dict[str, list[Any]]  # a route argument's name -> the values to open it with
    polls: dict[str, Poll]


def _ballot(poll: Poll, member: Member, option: int) -> None:
    """A ballot written as the poll's own casting would have, while it was open."""
    vote = Vote(poll_id=poll.id, member_id=member.id, weight=WEIGHT_SCALE)
    vote.choices.append(VoteChoice(poll_id=poll.id, option_id=option))
    db.session.add(vote)
    poll.ballot_count += 1


def make_site(now: dt.datetime) -> Site:
    """Someone of every role and something on every page, committed.

    Polls: open, past its closing time (which nobody has closed: the clock did), a draft, and
    one staff closed early; with ballots, topics on their way (proposed by the patron,
    shortlisted, published), a tier, a funding goal, payments, a patron whose renewal failed,
    an audit entry, a sign-in link and a demo checkout of the patron.
    """
    tier = make_tier("Friend", monthly=500)
    staff = make_member(role=Role.STAFF, display_name="Sam Staff")
    admin = make_member(role=Role.ADMIN, display_name="Ada Admin")
    member = make_member(display_name="Mo Member")
    patron = make_member(display_name="Pat Patron")
    subscription = make_subscription(
        patron,
        tier,
        current_period_start=now - dt.timedelta(days=10),
        current_period_end=now + dt.timedelta(days=20),
        stripe_subscription_id="sub_walk_patron",
    )
    failing = make_member(display_name="Fay Failing")
    make_subscription(
        failing,
        tier,
        status=SubscriptionStatus.PAST_DUE,
        current_period_start=now - dt.timedelta(days=2),
        current_period_end=now + dt.timedelta(days=28),
    )
    db.session.add_all(
        [
            Payment(
                member_id=patron.id,
                subscription_id=subscription.id,
                stripe_invoice_id="in_walk_paid",
                amount=500,
                currency="EUR",
                status=PaymentStatus.PAID,
                paid_at=now - dt.timedelta(days=10),
            ),
            Payment(
                member_id=failing.id,
                stripe_invoice_id="in_walk_failed",
                amount=500,
                currency="EUR",
                status=PaymentStatus.FAILED,
                failed_at=now - dt.timedelta(days=2),
            ),
        ]
    )
    goal = FundingGoal(title="A reporter", measure=GoalMeasure.PATRONS, target=100)
    db.session.add(goal)

    proposed = make_topic("Bus lanes", status=TopicStatus.PROPOSED, proposed_by_id=patron.id)
    published = make_topic(
        "Empty shops",
        status=TopicStatus.PUBLISHED,
        article_url="https://news.example/empty-shops",
        published_on=(now - dt.timedelta(days=3)).date(),
    )
    day = dt.timedelta(days=1)
    polls = {
        "open": make_poll(opens_at=now - day, closes_at=now + 7 * day),
        # Published as open and past its closing time: nobody closed it, the clock did.
        "past closing": make_poll(
            ("Schools", "Housing"), opens_at=now - 10 * day, closes_at=now - day
        ),
        "draft": make_poll(state=PollState.DRAFT, opens_at=now + day, closes_at=now + 8 * day),
        "closed by staff": make_poll(
            state=PollState.CLOSED,
            opens_at=now - 20 * day,
            closes_at=now + day,
            closed_at=now - 15 * day,
            eligible_count=3,
        ),
    }
    polls["past closing"].options[0].topic = published
    for poll in polls.values():
        if poll.state is not PollState.DRAFT:
            _ballot(poll, patron, poll.options[0].id)
    record_action("tier.created", actor_id=admin.id, target_type="tier", target_id=tier.id)
    db.session.flush()

    sign_in_link = member_services.request_sign_in(member.email).token
    with current_app.test_request_context():  # its payment page's address is built
        checkout = DemoBackend().create_checkout_session(
            customer_id=f"cus_demo_{patron.id}",
            mode="subscription",
            price_id=None,
            new_price=NewPrice(
                amount=500, currency="EUR", interval="month", product_id=CUSTOM_PRODUCT
            ),
            metadata={"member_id": str(patron.id)},
            client_reference_id=str(patron.id),
            success_url="http://localhost/support/welcome?session_id={CHECKOUT_SESSION_ID}",
            cancel_url="http://localhost/support/cancelled",
            idempotency_key="walk",
        )
    db.session.commit()
    return Site(
        people={
            "anonymous": None,
            "member": member,
            "patron": patron,
            "staff": staff,
            "admin": admin,
        },
        arguments={
            "poll_id": [poll.id for poll in polls.values()],
            "topic_id": [proposed.id, published.id],
            "member_id": [patron.id],
            "tier_id": [tier.id],
            "goal_id": [goal.id],
            "name": list(exports.DATASETS),
            "token": [sign_in_link],
            "session_id": [checkout.id],
            "filename": ["css/site.css"],
        },
        polls=polls,
    )


def urls(
    app: Flask, arguments: Mapping[str, Sequence[Any]], method: str = "GET"
) -> Iterator[tuple[str, str]]:
    """(endpoint, path) of every route that answers ``method``, once per set of arguments.

    :raises LookupError: a route takes an argument that ``arguments`` has no value for.
    """
    adapter = app.url_map.bind("localhost")
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if method not in (rule.methods or ()):
            continue
        names = sorted(rule.arguments)
        unknown = [name for name in names if not arguments.get(name)]
        if unknown:
            raise LookupError(f"{rule.rule}: no value to open it with for {', '.join(unknown)}")
        for values in itertools.product(*(arguments[name] for name in names)):
            yield rule.endpoint, adapter.build(rule.endpoint, dict(zip(names, values, strict=True)))
