"""The outbox's operations: queue a message in the caller's transaction, deliver it from a job,
remember the addresses that refuse mail, and prune.

Nothing here commits. :func:`queue` joins the caller's unit of work, so a change that rolls back
sends nothing and one that commits is delivered by a worker; :func:`deliver` is the job's
handler, whose work commits with the job's "done".
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from email.utils import make_msgid, parseaddr
from typing import Any

import sqlalchemy as sa
from flask import current_app

from supporters import audit, jobs
from supporters.db import insert_ignoring_conflicts, insert_returning, rows_matched, utcnow
from supporters.extensions import db
from supporters.jobs.models import Job, JobState
from supporters.mail import compose, transport
from supporters.mail.models import BouncingAddress, MessageState, OutboxMessage

log = logging.getLogger(__name__)

#: The job that delivers one message.
DELIVER = "mail.deliver"

_ERROR_LENGTH = 1000
_silenced: contextvars.ContextVar[bool] = contextvars.ContextVar("mail_silenced", default=False)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Queue no message inside this block: for writing history that happened elsewhere (the
    demo seeder's months of payments), which nobody must be emailed about."""
    token = _silenced.set(True)
    try:
        yield
    finally:
        _silenced.reset(token)


def is_silenced() -> bool:
    """Whether this code runs inside :func:`silenced`."""
    return _silenced.get()


def queue(
    to: str,
    template: str,
    *,
    subject: Any,
    kind: str,
    locale: str,
    context: Mapping[str, Any] | None = None,
    member_id: int | None = None,
    key: str | None = None,
    unsubscribe_url: str | None = None,
    preferences_url: str | None = None,
    is_sensitive: bool = False,
    expires_at: dt.datetime | None = None,
) -> OutboxMessage | None:
    """Render a message and add it, with the job that delivers it, to the current unit of work.

    ``unsubscribe_url`` makes it optional mail: it carries the RFC 8058 one-click headers, and
    is not sent to an address that bounces. ``key`` makes it once only: None is returned when a
    message with that key exists (or inside :func:`silenced`).
    """
    if is_silenced() or (key is not None and exists(key)):
        return None
    letter = compose.render(
        template,
        subject=subject,
        locale=locale,
        context=context or {},
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
    )
    headers = {}
    if unsubscribe_url:
        headers = {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    now = utcnow()
    message = insert_returning(
        OutboxMessage,
        {
            "key": key,
            "kind": kind,
            "member_id": member_id,
            "to_address": to,
            "subject": letter.subject[:500],
            "text_body": letter.text,
            "html_body": letter.html,
            "headers": headers,
            "locale": locale,
            "is_optional": unsubscribe_url is not None,
            "is_sensitive": is_sensitive,
            "message_id": _new_message_id(),
            "state": MessageState.QUEUED,
            "last_error": "",
            "created_at": now,
            "expires_at": expires_at,
        },
        conflict_on=("key",),
    )
    if message is None:  # a concurrent change queued the same notice first
        return None
    job = jobs.enqueue(DELIVER, {"message_id": message.id})
    message.job_id = job.id if job is not None else None
    db.session.flush()
    return message


def exists(key: str) -> bool:
    """Whether the notice ``key`` was queued already (one indexed read)."""
    found = db.session.scalar(sa.select(OutboxMessage.id).where(OutboxMessage.key == key))
    return found is not None


def _new_message_id() -> str:
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    return make_msgid(domain=domain)


def deliver(payload: dict[str, Any]) -> None:
    """The job: hand one queued message to the mail server, once.

    A message that is no longer queued was dealt with by an earlier run of this job. A
    temporary failure propagates: the job is retried with backoff and the message stays queued.

    :raises transport.TemporaryFailure: the server was unreachable or deferred the message.
    """
    message = db.session.scalars(
        sa.select(OutboxMessage)
        .where(OutboxMessage.id == int(payload["message_id"]))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if message is None or message.state is not MessageState.QUEUED:
        return
    now = utcnow()
    if message.expires_at is not None and message.expires_at <= now:
        _close(message, MessageState.EXPIRED, "Not sent: its turn came after it expired.")
        return
    if message.is_optional and is_bouncing(message.to_address):
        _close(message, MessageState.SUPPRESSED, "Not sent: the address bounces.")
        return
    email = transport.build_message(
        to=message.to_address,
        subject=message.subject,
        text=message.text_body,
        html=message.html_body,
        message_id=message.message_id,
        headers=message.headers,
    )
    try:
        transport.send(email)
    except transport.PermanentRefusal as exc:
        _close(message, MessageState.BOUNCED, str(exc))
        mark_bouncing(message.to_address, str(exc), now)
        log.warning(
            "Mail to %s refused for good: message %d (%s): %s",
            message.to_address,
            message.id,
            message.kind,
            exc,
        )
        return
    message.sent_at = now
    _close(message, MessageState.SENT, "")
    # The server takes mail for the address again: optional mail may go there again.
    forget_bounce(message.to_address)
    log.info("Mail sent to %s: message %d (%s)", message.to_address, message.id, message.kind)


def _close(message: OutboxMessage, state: MessageState, error: str) -> None:
    message.state = state
    message.last_error = error[:_ERROR_LENGTH]
    if message.is_sensitive:
        message.text_body = message.html_body = ""
    db.session.flush()


def is_bouncing(address: str) -> bool:
    """Whether the mail server refused ``address`` for good (and took nothing for it since)."""
    found = db.session.scalar(
        sa.select(BouncingAddress.email).where(BouncingAddress.email == address.lower())
    )
    return found is not None


def mark_bouncing(address: str, reply: str, now: dt.datetime) -> None:
    """Remember that the server refused ``address`` for good (again)."""
    email = address.lower()
    values = {"reply": reply[:_ERROR_LENGTH], "last_bounced_at": now}
    if insert_ignoring_conflicts(
        BouncingAddress, {"email": email, "bounces": 1, "first_bounced_at": now, **values}
    ):
        return
    db.session.execute(
        sa.update(BouncingAddress)
        .where(BouncingAddress.email == email)
        .values(bounces=BouncingAddress.bounces + 1, **values)
        .execution_options(synchronize_session=False)
    )


def forget_bounce(address: str, actor: audit.Actor | None = None) -> bool:
    """Let optional mail go to ``address`` again; audited when staff do it. True if it bounced."""
    result = db.session.execute(
        sa.delete(BouncingAddress)
        .where(BouncingAddress.email == address.lower())
        .execution_options(synchronize_session=False)
    )
    forgotten = rows_matched(result) == 1
    if forgotten and actor is not None:
        audit.record_action(
            "mail.bounce_forgotten",
            actor_id=actor.member_id,
            target_type="address",
            target_id=address.lower(),
            ip_address=actor.ip_address,
        )
    return forgotten


@dataclasses.dataclass(frozen=True)
class Delivery:
    """Where one message stands, as a page may tell its reader."""

    state: MessageState
    #: Still queued, and the mail server failed at least once: the worker keeps trying.
    is_retrying: bool
    error: str  # the server's refusal, or the last temporary failure


def delivery_of(key: str) -> Delivery | None:
    """Where the message queued with ``key`` stands (None: no such message)."""
    row = db.session.execute(
        sa.select(OutboxMessage.state, OutboxMessage.last_error, Job.state, Job.last_error)
        .outerjoin(Job, Job.id == OutboxMessage.job_id)
        .where(OutboxMessage.key == key)
    ).first()
    if row is None:
        return None
    state, error, job_state, job_error = row
    retrying = state is MessageState.QUEUED and job_state in (JobState.FAILED, JobState.DEAD)
    return Delivery(state, retrying, error or (job_error if retrying else ""))


@dataclasses.dataclass(frozen=True)
class RecentMessage:
    """A message as staff see it: never its body."""

    message: OutboxMessage
    job_state: JobState | None
    attempts: int
    job_error: str


def recent_messages(*, limit: int = 100, before_id: int | None = None) -> list[RecentMessage]:
    """The latest messages, newest first, with their delivery job's standing."""
    query = (
        sa.select(OutboxMessage, Job.state, Job.attempts, Job.last_error)
        .outerjoin(Job, Job.id == OutboxMessage.job_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(OutboxMessage.id < before_id)
    return [
        RecentMessage(message, job_state, attempts or 0, job_error or "")
        for message, job_state, attempts, job_error in db.session.execute(query)
    ]


def bouncing_addresses(limit: int = 500) -> Sequence[BouncingAddress]:
    """Addresses that refuse mail, the latest refusal first."""
    return db.session.scalars(
        sa.select(BouncingAddress).order_by(BouncingAddress.last_bounced_at.desc()).limit(limit)
    ).all()


def prune(payload: dict[str, Any]) -> None:
    """The daily job: close the queued messages that expired (erasing a secret they held), and
    delete the messages finished more than ``MAIL_KEEP_DAYS`` ago."""
    now = utcnow()
    expired = db.session.execute(
        sa.update(OutboxMessage)
        .where(
            OutboxMessage.state == MessageState.QUEUED,
            OutboxMessage.expires_at <= now,
        )
        .values(
            state=MessageState.EXPIRED,
            last_error="Not sent before it expired.",
            text_body=sa.case((OutboxMessage.is_sensitive, ""), else_=OutboxMessage.text_body),
            html_body=sa.case((OutboxMessage.is_sensitive, ""), else_=OutboxMessage.html_body),
        )
        .execution_options(synchronize_session=False)
    )
    keep = dt.timedelta(days=float(current_app.config["MAIL_KEEP_DAYS"]))
    deleted = db.session.execute(
        sa.delete(OutboxMessage)
        .where(
            OutboxMessage.state != MessageState.QUEUED,
            OutboxMessage.created_at < now - keep,
        )
        .execution_options(synchronize_session=False)
    )
    log.info(
        "expired %d queued message(s); deleted %d older than %s",
        rows_matched(expired),
        rows_matched(deleted),
        keep,
    )
