"""A site with a member of every role and a row behind every URL argument, for the tests that
walk the whole URL map (access rules, crafted input, what a GET may write).

Two ways to open a route: :meth:`Site.url` makes new rows behind its arguments for every
request (what one POST changes cannot decide what the next one finds); :func:`furnish` makes
one set of rows, and :func:`urls` opens every route with those, for a walk that compares the
database before and after.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from supporters import jobs
from supporters.audit import SYSTEM, record_action
from supporters.billing import offers
from supporters.billing.demo_checkout import CUSTOM_PRODUCT, DemoBackend
from supporters.billing.emails import fix_card_token
from supporters.billing.grants import grant_membership
from supporters.billing.models import (
    FundingGoal,
    GoalMeasure,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from supporters.billing.provider import CheckoutRequest, NewPrice
from supporters.extensions import db
from supporters.jobs.models import JobState
from supporters.members import preferences
from supporters.members import services as member_services
from supporters.members.models import Member, Role
from supporters.staff import exports
from supporters.voting.models import WEIGHT_SCALE, Poll, PollState, TopicStatus, Vote, VoteChoice
from tests.factories import make_member, signed_in_client
from tests.voting.factories import (
    make_patron,
    make_poll,
    make_subscription,
    make_tier,
    make_topic,
)

ROLES = ("anonymous", "member", "patron", "staff", "admin")
#: Routes after which the browser is no longer signed in as it was.
ENDS_THE_SESSION = {
    "members.sign_out",
    "members.sign_out_everywhere",
    "members.confirm_sign_in",
    "billing.open_offer",  # signs in as the offer's member
}


def _poll_id(site: Site, role: str) -> int:
    return make_poll().id


def _option_id(site: Site, role: str) -> int:
    return make_poll().options[0].id


def _topic_id(site: Site, role: str) -> int:
    return make_topic(status=TopicStatus.PROPOSED, proposed_by_id=make_member().id).id


def _member_id(site: Site, role: str) -> int:
    return make_member().id


def _tier_id(site: Site, role: str) -> int:
    return make_tier().id


def _goal_id(site: Site, role: str) -> int:
    goal = FundingGoal(title="A reporter", measure=GoalMeasure.PATRONS, target=100)
    db.session.add(goal)
    db.session.flush()
    return goal.id


def _job_id(site: Site, role: str) -> int:
    job = jobs.enqueue("test.dead")
    assert job is not None
    job.state, job.last_error, job.finished_at = JobState.DEAD, "Gone", job.run_at
    db.session.flush()
    return job.id


def _demo_checkout(member: Member, key: str) -> str:
    """The id of a demo checkout of the member's (its page's address needs a request context)."""
    checkout = DemoBackend().create_checkout_session(
        CheckoutRequest(
            customer_id=f"cus_demo_{member.id}",
            mode="subscription",
            price_id=None,
            new_price=NewPrice(
                amount=700, currency="EUR", interval="month", product_id=CUSTOM_PRODUCT
            ),
            metadata={"member_id": str(member.id)},
            client_reference_id=str(member.id),
            success_url="http://localhost/support/welcome?session_id={CHECKOUT_SESSION_ID}",
            cancel_url="http://localhost/support/cancelled",
            idempotency_key=key,
        )
    )
    return checkout.id


def _session_id(site: Site, role: str) -> str:
    """A demo checkout of the member asking (the patron's, for a visitor)."""
    member = site.people.get(role, site.people["patron"])
    return _demo_checkout(member, f"site-{member.id}")


def _token(site: Site, role: str) -> str:
    return member_services.request_sign_in(make_member().email).token


def _offer_id(site: Site, role: str) -> int:
    """An offer of the member asking (the member's, for a visitor)."""
    member = site.people.get(role, site.people["member"])
    return offers.create_offer(member, amount=700)[0].id


def _offer_token(site: Site, role: str) -> str:
    """The token of a new member's offer link."""
    return offers.create_offer(make_member(), amount=700)[1].rsplit("/", 1)[1]


def _unsubscribe_token(site: Site, role: str) -> str:
    """A link stopping the first kind of optional mail the app offers, for the patron."""
    topic = next((topic.key for topic in preferences.all_topics()), "polls")
    return preferences.unsubscribe_token(site.people["patron"].id, topic)


def _grant_id(site: Site, role: str) -> int:
    tier = db.session.scalars(sa.select(Tier).limit(1)).one()
    return grant_membership(make_member(), tier, ends_at=None, reason="", actor=SYSTEM).id


#: How to make the row behind each URL argument: a route with a new argument needs a line here.
URL_ARGUMENTS: dict[str, Callable[[Site, str], Any]] = {
    "poll_id": _poll_id,
    "option_id": _option_id,
    "topic_id": _topic_id,
    "member_id": _member_id,
    "tier_id": _tier_id,
    "goal_id": _goal_id,
    "grant_id": _grant_id,
    "job_id": _job_id,
    "session_id": _session_id,
    "token": _token,
    "unsubscribe_token": _unsubscribe_token,
    "card_token": lambda site, role: fix_card_token(site.people["patron"].id),
    "offer_id": _offer_id,
    "offer_token": _offer_token,
    "name": lambda site, role: "patrons",
    "filename": lambda site, role: "favicon.svg",
}


@dataclasses.dataclass
class Site:
    app: Flask
    people: dict[str, Member]

    def client(self, role: str) -> FlaskClient:
        """A new browser, signed in as the role's member (with a session of its own)."""
        if role == "anonymous":
            return self.app.test_client()
        return signed_in_client(self.app, self.people[role])

    def url(self, rule: Rule, role: str, **fixed: Any) -> str:
        """The rule's address with new rows behind its arguments, unless given in ``fixed``.

        New rows for every request keep what one request changes (a poll closed, a topic
        merged) from deciding what the next one finds.
        """
        values = dict(fixed)
        with self.app.test_request_context():
            for name in rule.arguments - values.keys():
                make = URL_ARGUMENTS.get(name)
                assert make, f"{rule.rule}: add <{name}> to tests.site.URL_ARGUMENTS"
                values[name] = make(self, role)
            db.session.commit()
            return url_for(rule.endpoint, **values)


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: what a refused request must not change.

    It commits first, so that a new transaction sees what the requests committed.
    """
    db.session.commit()
    return {
        table.name: [
            tuple(row)
            for row in db.session.execute(sa.select(table).order_by(*table.primary_key.columns))
        ]
        for table in db.metadata.sorted_tables
    }


def build_site(app: Flask) -> Site:
    """One member of each role: a patron supports through a tier; staff and admins do not."""
    people = {
        "member": make_member(display_name="Mem Ber"),
        "patron": make_patron(make_tier("Reader"), display_name="Pat Ron"),
        "staff": make_member(role=Role.STAFF, display_name="Sta Ff"),
        "admin": make_member(role=Role.ADMIN, display_name="Ad Min"),
    }
    db.session.commit()
    return Site(app, people)


def _ballot(poll: Poll, member: Member, option: int) -> None:
    """A ballot written as the poll's own casting would have, while it was open."""
    vote = Vote(poll_id=poll.id, member_id=member.id, weight=WEIGHT_SCALE)
    vote.choices.append(VoteChoice(poll_id=poll.id, option_id=option))
    db.session.add(vote)
    poll.ballot_count += 1


def furnish(site: Site, now: dt.datetime) -> dict[str, list[Any]]:
    """Something on every page, committed; the values to open each route argument with.

    Polls: open, past its closing time (which nobody has closed: the clock did), a draft, and
    one staff closed early; with the patron's ballots, topics on their way (proposed by the
    patron, published), a funding goal, payments, a patron whose renewal failed, an audit
    entry, a sign-in link and a demo checkout of the patron.
    """
    patron, admin = site.people["patron"], site.people["admin"]
    subscription = db.session.scalars(
        sa.select(Subscription).where(Subscription.member_id == patron.id)
    ).one()
    failing = make_member(display_name="Fay Failing")
    make_subscription(
        failing,
        subscription.tier,
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
                amount=subscription.amount,
                currency=subscription.currency,
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
    polls = [
        make_poll(opens_at=now - day, closes_at=now + 7 * day),
        # Published as open and past its closing time: nobody closed it, the clock did.
        make_poll(("Schools", "Housing"), opens_at=now - 10 * day, closes_at=now - day),
        make_poll(state=PollState.DRAFT, opens_at=now + day, closes_at=now + 8 * day),
        make_poll(
            state=PollState.CLOSED,
            opens_at=now - 20 * day,
            closes_at=now + day,
            closed_at=now - 15 * day,
            eligible_count=3,
        ),
    ]
    polls[1].options[0].topic = published
    for poll in polls:
        if poll.state is not PollState.DRAFT:
            _ballot(poll, patron, poll.options[0].id)
    record_action(
        "tier.created", actor_id=admin.id, target_type="tier", target_id=subscription.tier_id
    )
    db.session.flush()
    token = member_services.request_sign_in(site.people["member"].email).token
    with site.app.test_request_context():
        checkout_id = _demo_checkout(patron, "walk")
        offer, offer_link = offers.create_offer(site.people["member"], amount=700, note="Hello")
    db.session.commit()
    return {
        "poll_id": [poll.id for poll in polls],
        "option_id": [polls[0].options[0].id],
        "topic_id": [proposed.id, published.id],
        "member_id": [patron.id],
        "tier_id": [subscription.tier_id],
        "goal_id": [goal.id],
        "grant_id": [_grant_id(site, "admin")],
        "name": list(exports.DATASETS),
        "token": [token],
        "unsubscribe_token": [_unsubscribe_token(site, "patron")],
        "card_token": [fix_card_token(patron.id)],
        "session_id": [checkout_id],
        "offer_id": [offer.id],
        "offer_token": [offer_link.rsplit("/", 1)[1]],
        "filename": ["css/site.css"],
    }


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
