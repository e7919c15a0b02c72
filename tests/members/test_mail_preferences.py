"""Members choose which optional mail they get, on their account page or from a link in the
mail itself that works without signing in (RFC 8058 one-click)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.extensions import db
from supporters.mail.models import OutboxMessage
from supporters.members import emails, preferences
from supporters.members.models import MailPreference, Member, Role
from tests.factories import make_member, signed_in_client
from tests.helpers import submit, text
from tests.mail.conftest import with_note_templates
from tests.site import snapshot
from tests.smtp import MailServer

TOPICS = (
    preferences.MailTopic("notes", "Notes from the newsroom", "Now and then."),
    preferences.MailTopic("gossip", "Gossip", "Rarely.", is_wanted_by_default=False),
    preferences.MailTopic("digest", "The staff digest", "Daily.", is_for_staff=True),
)


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    application = with_note_templates(make_app())
    for topic in TOPICS:
        preferences.register_topic(application, topic)
    with application.app_context():
        yield application


def _choices(member: Member) -> dict[str, bool]:
    """The member's choice of the tests' topics (the app's own features offer theirs too)."""
    return {k: v for k, v in preferences.choices_of(member).items() if k in {t.key for t in TOPICS}}


def _note(member: Member, topic: str | None = "notes") -> OutboxMessage | None:
    return emails.send_to_member(
        member,
        "emails/test/note",
        subject=f"A note about {topic}",
        kind="test.note",
        context={"name": member.name, "note": "Buses are late"},
        topic=topic,
    )


def test_the_account_page_offers_each_topic_and_keeps_the_members_choice(
    app: Flask, mail_server: MailServer
) -> None:
    member = make_member("ada@example.org")
    db.session.commit()
    client = signed_in_client(app, member)
    page = text(client.get("/account"))
    assert "Notes from the newsroom" in page and "Gossip" in page
    assert "The staff digest" not in page  # for staff only
    assert 'value="notes" checked' in page and 'value="gossip">' in page

    response = submit(client, "/account", action="/account/email-preferences", topics=["gossip"])
    assert response.status_code == 302
    assert _choices(member) == {"notes": False, "gossip": True}
    assert 'value="gossip" checked' in text(client.get("/account"))

    assert _note(member, "notes") is None
    assert _note(member, "gossip") is not None
    assert _note(member, topic=None) is not None  # what a member must know is always sent
    db.session.commit()
    assert sorted(m["Subject"] for m in mail_server.to("ada@example.org")) == [
        "A note about None",
        "A note about gossip",
    ]


def test_a_topic_that_is_not_offered_is_refused(app: Flask) -> None:
    member = make_member()
    db.session.commit()
    client = signed_in_client(app, member)
    response = submit(client, "/account", action="/account/email-preferences", topics=["digest"])
    assert response.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailPreference)) == 0


def test_staff_may_choose_the_staff_topics(app: Flask) -> None:
    editor = make_member(role=Role.STAFF)
    db.session.commit()
    client = signed_in_client(app, editor)
    assert "The staff digest" in text(client.get("/account"))
    submit(client, "/account", action="/account/email-preferences", topics=["notes", "digest"])
    assert _choices(editor) == {"notes": True, "gossip": False, "digest": True}


def test_the_unsubscribe_link_works_without_a_session_and_is_respected(
    app: Flask, mail_server: MailServer
) -> None:
    member = make_member("ben@example.org")
    db.session.commit()
    _note(member)
    db.session.commit()
    [message] = mail_server.to("ben@example.org")
    link = message["List-Unsubscribe"].strip().strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = link.removeprefix("http://localhost")

    # A visitor with no session opens it: a page that asks, and changes nothing.
    before = snapshot()
    page = app.test_client().get(path)
    assert page.status_code == 200 and "Stop emailing ben@example.org" in text(page)
    assert snapshot() == before

    # The mail program's one-click POST: no cookie, no form token.
    answer = app.test_client().post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert "will not get these emails any more" in text(answer)
    assert app.test_client().post(path).status_code == 200  # a second click changes nothing
    db.session.expire_all()
    assert _choices(member) == {"notes": False, "gossip": False}

    assert _note(member) is None
    db.session.commit()
    assert len(mail_server.to("ben@example.org")) == 1


def test_a_forged_unsubscribe_link_changes_nothing(app: Flask) -> None:
    member = make_member()
    db.session.commit()
    token = preferences.unsubscribe_token(member.id, "notes")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for path in (f"/unsubscribe/{forged}", "/unsubscribe/nonsense"):
        assert app.test_client().post(path).status_code == 404
    other_topic = preferences.unsubscribe_token(member.id, "no-such-topic")
    assert app.test_client().post(f"/unsubscribe/{other_topic}").status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailPreference)) == 0
