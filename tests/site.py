"""A site with a member of every role and a row behind every URL argument, for the tests that
walk the whole URL map (access rules, crafted input).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from supporters.billing.demo_checkout import CUSTOM_PRODUCT, DemoBackend
from supporters.billing.models import FundingGoal, GoalMeasure
from supporters.billing.stripe_gateway import NewPrice
from supporters.extensions import db
from supporters.members import services as member_services
from supporters.members.models import Member, Role
from supporters.voting.models import TopicStatus
from tests.factories import make_member, signed_in_client
from tests.voting.factories import make_patron, make_poll, make_tier, make_topic

ROLES = ("anonymous", "member", "patron", "staff", "admin")
#: Routes after which the browser is no longer signed in as it was.
ENDS_THE_SESSION = {"members.sign_out", "members.sign_out_everywhere", "members.confirm_sign_in"}


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


def _session_id(site: Site, role: str) -> str:
    """A demo checkout of the member asking (the patron's, for a visitor)."""
    member = site.people.get(role, site.people["patron"])
    checkout = DemoBackend().create_checkout_session(
        customer_id=f"cus_demo_{member.id}",
        mode="subscription",
        price_id=None,
        new_price=NewPrice(amount=700, currency="EUR", interval="month", product_id=CUSTOM_PRODUCT),
        metadata={"member_id": str(member.id)},
        client_reference_id=str(member.id),
        success_url="http://localhost/support/welcome?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://localhost/support/cancelled",
        idempotency_key=f"site-{member.id}",
    )
    return checkout.id


def _token(site: Site, role: str) -> str:
    return member_services.request_sign_in(make_member().email).token


#: How to make the row behind each URL argument: a route with a new argument needs a line here.
URL_ARGUMENTS: dict[str, Callable[[Site, str], Any]] = {
    "poll_id": _poll_id,
    "option_id": _option_id,
    "topic_id": _topic_id,
    "member_id": _member_id,
    "tier_id": _tier_id,
    "goal_id": _goal_id,
    "session_id": _session_id,
    "token": _token,
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
    """Every row of every table, in primary-key order: what a refused request must not change."""
    db.session.expire_all()
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
