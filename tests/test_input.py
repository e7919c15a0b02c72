"""Crafted input is refused with a 400 (or a 404 for an address), never a 500, and writes nothing.

PostgreSQL refuses NUL in text and integers beyond its ``integer`` type where SQLite keeps
both: these tests mean most on PostgreSQL, where the suite runs too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from supporters.billing.models import FundingGoal, GoalMeasure, StripeEvent
from supporters.extensions import db
from supporters.members.models import Role
from supporters.voting.models import PollState, Topic
from tests.billing.fake_stripe import sign_payload
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import csrf_token, submit, text
from tests.site import snapshot
from tests.voting.factories import make_patron, make_poll

REFUSED = "characters we cannot accept"


def _client(app: Flask, role: str) -> FlaskClient:
    if role == "anonymous":
        return app.test_client()
    member = make_patron() if role == "patron" else make_member(role=Role(role))
    db.session.commit()
    return signed_in_client(app, member)


# (who, page with the form, where it posts or None for the page itself, the fields)
FORMS: dict[str, tuple[str, str, str | None, dict[str, str]]] = {
    "join: display name": (
        "anonymous",
        "/join",
        None,
        {"display_name": "Ann\x00", "email": "ann@example.org"},
    ),
    "profile: display name": (
        "member",
        "/account",
        "/account/profile",
        {"display_name": "Ann\x00"},
    ),
    "proposal: pitch": (
        "patron",
        "/polls/propose",
        None,
        {"title": "Buses", "pitch": "Why are\x00 they late?"},
    ),
    "topic: pitch": (
        "admin",
        "/polls/manage/topics",
        None,
        {"title": "Buses", "pitch": "Late\x00"},
    ),
    "poll option: title": (
        "admin",
        "/polls/manage/{poll}/edit",
        "/polls/manage/{poll}/options/new",
        {"title": "Bu\x00ses", "pitch": ""},
    ),
    "field name": ("member", "/account", "/account/profile", {"display_name": "Ann", "x\ty": ""}),
    "escape character": ("member", "/account", "/account/profile", {"display_name": "A\x1bnn"}),
    "C1 control": ("member", "/account", "/account/profile", {"display_name": "A\x85nn"}),
}


def test_a_control_character_in_a_form_is_refused_and_nothing_is_written(app: Flask) -> None:
    poll = make_poll(state=PollState.DRAFT)
    db.session.commit()
    for case, (role, page, action, fields) in FORMS.items():
        client = _client(app, role)
        page, action = page.format(poll=poll.id), (action or page).format(poll=poll.id)
        before = snapshot()
        response = submit(client, page, action, **fields)
        assert response.status_code == 400, case
        assert REFUSED in text(response), case
        assert snapshot() == before, case


def test_a_text_area_keeps_its_line_breaks_and_tabs(app: Flask) -> None:
    client = _client(app, "patron")
    pitch = "Three questions:\r\n\t1. Why?\r\n\t2. Who?"
    response = submit(client, "/polls/propose", title="Buses", pitch=pitch)
    assert response.status_code == 302
    assert db.session.scalars(sa.select(Topic.pitch)).one() == pitch


@pytest.mark.parametrize(
    "part",
    [
        b'name="display_name"\r\n\r\nAnn\xff',  # Werkzeug reads the byte as U+FFFD
        # A line break in the name ends the header early: Werkzeug reads a part named None.
        b'name="display\r\nname"\r\n\r\nAnn',
    ],
)
def test_a_multipart_form_that_is_not_clean_text_is_refused(app: Flask, part: bytes) -> None:
    client = _client(app, "member")
    token = csrf_token(client, "/account")
    before = snapshot()
    body = (
        f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'.encode()
        + b"--b\r\nContent-Disposition: form-data; "
        + part
        + b"\r\n--b--\r\n"
    )
    response = client.post(
        "/account/profile", data=body, content_type="multipart/form-data; boundary=b"
    )
    assert response.status_code == 400 and REFUSED in text(response)
    assert snapshot() == before


def _raw_get(client: FlaskClient, path: str, query: bytes) -> TestResponse:
    """A GET whose query string goes out byte for byte, as a crafted request would send it."""
    return client.get(path, environ_overrides={"QUERY_STRING": query.decode("latin-1")})


UNCLEAN_QUERIES = [
    b"action=%00",  # NUL, percent-encoded
    b"action=role%09changed",  # a tab is fine in a text area, never in an address
    b"action=%FF",  # not UTF-8: Werkzeug would read the three letters "%FF"
    b"action=\xff",  # not UTF-8 and not even encoded: Werkzeug used to fail on it
    b"act%00ion=x",  # in the name
    b"action=%ED%A0%80",  # an encoded surrogate
]


def test_a_query_string_that_is_not_clean_text_is_refused(app: Flask) -> None:
    client = _client(app, "admin")
    for query in UNCLEAN_QUERIES:
        response = _raw_get(client, "/staff/audit", query)
        assert response.status_code == 400 and REFUSED in text(response), query
    clean = client.get("/staff/audit", query_string={"action": "Київ ✓"})
    assert clean.status_code == 200


OUT_OF_RANGE = [
    ("/polls/2147483648", 404),  # one past PostgreSQL's integer
    ("/polls/99999999999999999999", 404),
    ("/staff/members/2147483648", 404),
    ("/polls/manage/2147483648/votes", 404),
    ("/polls/manage/{poll}/votes?after=99999999999999999999", 400),
    ("/polls/manage/{poll}/votes?after=-1", 400),
    ("/polls/manage/{poll}/votes?after=ten", 400),
    ("/staff/audit?before=99999999999999999999", 400),
    ("/staff/audit?before=%C2%B2", 400),  # "²" passes str.isdigit(), not int()
    ("/sign-in/confirm/%00", 404),  # no address has a control character in it
]


def test_a_number_out_of_range_is_a_clear_refusal(app: Flask) -> None:
    poll = make_poll()
    db.session.commit()
    client = _client(app, "admin")
    for path, status in OUT_OF_RANGE:
        response = client.get(path.format(poll=poll.id))
        assert response.status_code == status, path
        if status == 400:
            assert "must be a whole number" in text(response), path


def _cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


CRAFTED_POSITIONS: list[tuple[str, list[Any]]] = [
    ("name", ["Ann\x00", 1]),
    ("name", ["Ann", 99999999999999999999]),
    ("name", ["Ann", True]),
    ("email", ["a\x00@example.org"]),
    ("newest", ["2026-01-01T00:00:00+00:00", 2147483648]),
    ("newest", ["0001-01-01T00:00:00+14:00", 1]),  # before year 1 in UTC
    ("oldest", ["9999-12-31T23:59:59-14:00", 1]),  # after year 9999 in UTC
]


def test_a_members_page_link_with_a_crafted_position_is_refused(app: Flask) -> None:
    make_member(display_name="Ann")
    db.session.commit()
    client = _client(app, "staff")
    for sort, key in CRAFTED_POSITIONS:
        response = client.get("/staff/members", query_string={"sort": sort, "after": _cursor(key)})
        assert response.status_code == 400, (sort, key)
    deep = base64.urlsafe_b64encode(b"[" * 2000).decode()  # deeper than JSON's parser goes
    assert client.get("/staff/members", query_string={"after": deep}).status_code == 400


def test_a_webhook_body_that_is_not_utf8_is_refused_and_stores_nothing(
    make_app: Callable[..., Flask],
) -> None:
    secret = "whsec_input_test"
    app = make_app(STRIPE_WEBHOOK_SECRET=[secret])
    body = b'{"id": "evt_1", "type": "charge.refunded\xff", "data": {"object": {}}}'
    for header in (sign_payload(body, secret), "t=1,v1=00"):
        response = app.test_client().post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": header},
            content_type="application/json",
        )
        assert response.status_code == 400
        assert response.json == {"error": "invalid signature"}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StripeEvent)) == 0


TOO_LARGE = [
    ("/", {"tier": "custom", "amount": "1e99999999"}, "Enter an amount of at most"),
    ("/staff/tiers/new", {"monthly_amount": "99999999999"}, "Enter an amount of at most"),
    ("/staff/tiers/new", {"position": "99999999999"}, "Enter a whole number from"),
    ("/staff/goals/new", {"position": "-99999999999"}, "Enter a whole number from"),
    ("/staff/goals/new", {"target": "\u00b2"}, "Enter a whole number of patrons."),
    ("/staff/goals/new", {"target": "99999999999"}, "Enter a whole number of patrons."),
]


def test_a_number_too_large_for_its_column_is_refused_with_a_message(app: Flask) -> None:
    client = _client(app, "admin")
    defaults = {
        "tier": "custom",
        "interval": "month",
        "email": "big@example.org",
        "name": "Big",
        "slug": "big",
        "title": "Big",
        "measure": "patrons",
        "currency": "EUR",
        "monthly_amount": "5",
        "yearly_amount": "50",
        "position": "1",
    }
    before = snapshot()
    for page, fields, message in TOO_LARGE:
        action = "/support" if page == "/" else None
        response = submit(client, page, action, **(defaults | fields))
        assert response.status_code == 400, fields
        assert message in text(response), fields
    assert snapshot() == before


def test_a_date_range_may_end_on_the_calendar_s_last_day(app: Flask) -> None:
    client = _client(app, "staff")
    for url in (
        "/staff/members?joined_to=9999-12-31",
        "/staff/members.csv?joined_to=9999-12-31",
        "/staff/payments.csv?date_from=2026-01-01&date_to=9999-12-31",
    ):
        assert client.get(url).status_code == 200, url


def test_an_edit_form_posted_without_a_field_is_refused(app: Flask) -> None:
    """The form is filled from the row it edits: a field left out must not read the row's own
    value (an int of minor units) as if it had been typed."""
    goal = FundingGoal(title="A reporter", measure=GoalMeasure.PATRONS, target=100)
    db.session.add(goal)
    tier = make_tier("reader")
    db.session.commit()
    client = _client(app, "admin")
    before = snapshot()
    goal_without_target = submit(
        client, f"/staff/goals/{goal.id}", title="A reporter", measure="patrons"
    )
    assert goal_without_target.status_code == 400
    assert "Enter a whole number of patrons." in text(goal_without_target)
    tier_without_monthly_price = submit(
        client, f"/staff/tiers/{tier.id}", name="Reader", slug="reader", currency="EUR"
    )
    assert tier_without_monthly_price.status_code == 400
    assert "Enter an amount such as 5" in text(tier_without_monthly_price)
    assert snapshot() == before
