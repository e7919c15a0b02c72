"""The outbox: a message is written with the change that causes it and delivered by a worker,
once, over SMTP; retried while the server is away; an address refused for good gets no more
optional mail."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import mail
from supporters.extensions import db
from supporters.jobs.models import Job, JobState
from supporters.jobs.worker import Worker
from supporters.mail.models import BouncingAddress, MessageState, OutboxMessage
from tests.helpers import PRODUCTION
from tests.jobs.conftest import FakeClock
from tests.mail.conftest import with_note_templates
from tests.smtp import MailServer, body


def _note(to: str, note: str = "Buses are late", **fields: Any) -> OutboxMessage | None:
    return mail.queue(
        to,
        "emails/test/note",
        subject=f"A note for {to}",
        kind="test.note",
        locale="en",
        context={"name": "Ada", "note": note},
        **fields,
    )


def _messages() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_rolled_back_change_sends_nothing_and_a_committed_one_sends_both_parts_once(
    app: Flask, mail_server: MailServer
) -> None:
    _note("rolled@example.org")
    db.session.rollback()
    queued = _note("reader@example.org", note="Bins <weekly>")
    db.session.commit()
    assert queued is not None and queued.state is MessageState.QUEUED

    [message] = mail_server.messages
    mail_server.deliver()  # a second worker run, or the same job run twice, sends nothing more
    assert mail_server.received == [message]
    assert message["To"] == "reader@example.org"
    assert message["Subject"] == "A note for reader@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert "Your note: Bins <weekly>" in body(message)
    assert body(message).rstrip().endswith("The Test Gazette")
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "<p>Bins &lt;weekly&gt;</p>" in html.get_content()
    assert 'lang="en"' in html.get_content()
    # Transactional mail carries no unsubscribe header.
    assert message["List-Unsubscribe"] is None
    [row] = _messages()
    assert (row.state, row.message_id, row.last_error) == (
        MessageState.SENT,
        message["Message-ID"],
        "",
    )
    assert row.sent_at is not None


def test_a_key_makes_a_notice_once_and_silenced_queues_nothing(
    app: Flask, mail_server: MailServer
) -> None:
    assert _note("reader@example.org", key="test:1") is not None
    db.session.commit()
    assert _note("reader@example.org", key="test:1") is None
    with mail.silenced():
        assert _note("seeded@example.org") is None
    db.session.commit()
    assert [m["To"] for m in mail_server.messages] == ["reader@example.org"]


def test_an_smtp_outage_keeps_messages_queued_and_a_later_run_sends_each_once(
    app: Flask, mail_server: MailServer, clock: FakeClock
) -> None:
    for n in range(3):
        _note(f"reader{n}@example.org")
    db.session.commit()
    port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = _closed_port()
    clock.advance(seconds=5)
    Worker(app, clock=clock).run(once=True)

    assert mail_server.received == []
    assert [m.state for m in _messages()] == [MessageState.QUEUED] * 3
    jobs = db.session.scalars(sa.select(Job).where(Job.kind == "mail.deliver")).all()
    assert {job.state for job in jobs} == {JobState.FAILED}
    assert all("ConnectionRefusedError" in job.last_error for job in jobs)

    app.config["SMTP_PORT"] = port  # the server is back
    clock.advance(hours=1)
    Worker(app, clock=clock).run(once=True)
    Worker(app, clock=clock).run(once=True)

    assert sorted(m["To"] for m in mail_server.received) == [
        f"reader{n}@example.org" for n in range(3)
    ]
    assert [m.state for m in _messages()] == [MessageState.SENT] * 3


def test_a_deferred_recipient_is_tried_again_later(
    app: Flask, mail_server: MailServer, clock: FakeClock
) -> None:
    mail_server.refuse("busy@example.org", "451 4.7.1 Greylisted, try again later")
    _note("busy@example.org")
    db.session.commit()
    clock.advance(seconds=5)
    Worker(app, clock=clock).run(once=True)
    [row] = _messages()
    assert row.state is MessageState.QUEUED
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BouncingAddress)) == 0

    mail_server.accept("busy@example.org")
    clock.advance(hours=1)
    Worker(app, clock=clock).run(once=True)
    assert [m["To"] for m in mail_server.received] == ["busy@example.org"]


def test_a_permanent_refusal_marks_the_address_and_stops_optional_mail_to_it(
    app: Flask, mail_server: MailServer
) -> None:
    mail_server.refuse("gone@example.org", "550 5.1.1 <gone@example.org>: no such user")
    _note("Gone@example.org")
    db.session.commit()
    assert mail_server.messages == []
    [refused] = _messages()
    assert refused.state is MessageState.BOUNCED
    assert "550" in refused.last_error and "no such user" in refused.last_error
    # Not retried: the job is done, with nothing left to try.
    assert db.session.get(Job, refused.job_id).state is JobState.DONE  # type: ignore[union-attr]
    [bounce] = mail.bouncing_addresses()
    assert (bounce.email, bounce.bounces) == ("gone@example.org", 1)
    assert mail.is_bouncing("GONE@example.org")

    # Optional mail is no longer sent there; a transactional message is still tried.
    mail_server.accept("gone@example.org")
    _note("gone@example.org", unsubscribe_url="http://localhost/unsubscribe/x")
    db.session.commit()
    assert mail_server.messages == []
    assert _messages()[-1].state is MessageState.SUPPRESSED
    _note("gone@example.org", note="Your receipt")
    db.session.commit()
    [accepted] = mail_server.messages
    assert "Your receipt" in body(accepted)
    # Taken again: optional mail may go there again.
    assert not mail.is_bouncing("gone@example.org")


def test_optional_mail_carries_one_click_unsubscribe_headers(
    app: Flask, mail_server: MailServer
) -> None:
    _note(
        "reader@example.org",
        unsubscribe_url="http://localhost/unsubscribe/token",
        preferences_url="http://localhost/account#email",
    )
    db.session.commit()
    [message] = mail_server.messages
    assert message["List-Unsubscribe"] == "<http://localhost/unsubscribe/token>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Stop these emails: http://localhost/unsubscribe/token" in body(message)
    html = message.get_body(preferencelist=("html",))
    assert html is not None and 'href="http://localhost/unsubscribe/token"' in html.get_content()


def test_a_secret_is_erased_once_sent_and_an_expired_message_is_not_sent(
    app: Flask, mail_server: MailServer, clock: FakeClock
) -> None:
    _note("reader@example.org", note="Code 123456", is_sensitive=True)
    _note("late@example.org", note="Code 654321", is_sensitive=True, expires_at=clock())
    db.session.commit()
    [message] = mail_server.messages
    assert "Code 123456" in body(message)
    sent, expired = _messages()
    assert (sent.state, sent.text_body, sent.html_body) == (MessageState.SENT, "", "")
    assert (expired.state, expired.text_body, expired.html_body) == (MessageState.EXPIRED, "", "")


def test_in_development_without_smtp_the_message_is_printed(
    make_app: Any, capsys: pytest.CaptureFixture[str], mail_server: MailServer
) -> None:
    app = with_note_templates(make_app(SMTP_HOST=""))
    with app.app_context():
        _note("reader@example.org", note="Code 123456")
        db.session.commit()
        mail_server.deliver()
        [row] = _messages()
        assert row.state is MessageState.SENT
    printed = capsys.readouterr().out
    assert "To: reader@example.org" in printed and "Code 123456" in printed
    assert mail_server.received == []


def test_production_never_prints_a_message(
    make_app: Any, capsys: pytest.CaptureFixture[str], mail_server: MailServer
) -> None:
    app = with_note_templates(make_app(**PRODUCTION))
    # Start-up refuses production without SMTP; should the setting go missing all the same,
    # a sign-in code must not end up in the console log: the message waits.
    app.config["SMTP_HOST"] = ""
    with app.app_context():
        _note("reader@example.org", note="Code 123456")
        db.session.commit()
        mail_server.deliver()
        [row] = _messages()
        assert row.state is MessageState.QUEUED
    captured = capsys.readouterr()
    assert "123456" not in captured.out + captured.err
    assert mail_server.received == []
