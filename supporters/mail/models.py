"""The outbox: every message, written with the change that causes it, and the addresses that
refuse mail.

A message's life: ``queued`` until a worker hands it to the SMTP server (its job is retried with
backoff while the server is away or defers it), then ``sent``; or ``bounced`` when the server
refused it for good; ``suppressed``, an optional message to an address that bounces; or
``expired``, when its turn came too late to be of use (a sign-in code past its time).
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from supporters.db import enum_column, utcnow
from supporters.extensions import Model

ADDRESS_MAX_LENGTH = 254  # RFC 5321's limit on a forward path


class MessageState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


class OutboxMessage(Model):
    """One email: rendered in its reader's language when it is queued, delivered by a job."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.CheckConstraint("state <> 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The notice it is (a receipt of one invoice, a reminder of one renewal): a second message
    # with the same key is never written. NULL for messages that may repeat.
    key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    # Kept (SET NULL) when a member's data is deleted, until the message is pruned.
    member_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    to_address: Mapped[str] = mapped_column(sa.String(ADDRESS_MAX_LENGTH))
    subject: Mapped[str] = mapped_column(sa.String(500))
    text_body: Mapped[str] = mapped_column(sa.Text)
    html_body: Mapped[str] = mapped_column(sa.Text, default="")
    # Headers of its own: List-Unsubscribe and List-Unsubscribe-Post on optional mail.
    headers: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    locale: Mapped[str] = mapped_column(sa.String(16))
    # Optional mail (the voting loop, the staff digest) is not sent to an address that bounces.
    is_optional: Mapped[bool] = mapped_column(default=False)
    # Its body holds a secret (a sign-in code): erased once it is sent or no longer useful.
    is_sensitive: Mapped[bool] = mapped_column(default=False)
    # Fixed when it is queued: a message sent again after a worker stopped mid-delivery carries
    # the same one, which mail programs recognise.
    message_id: Mapped[str] = mapped_column(sa.String(255))
    state: Mapped[MessageState] = mapped_column(
        enum_column(MessageState, "message_state"), default=MessageState.QUEUED
    )
    # The job that delivers it: its attempts and last error while the server is unreachable.
    job_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    # The server's refusal, or why it was not sent.
    last_error: Mapped[str] = mapped_column(sa.String(1000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]


class BouncingAddress(Model):
    """An address the mail server refused for good: optional mail to it stops.

    Forgotten when a later message to it is accepted, or when staff forget it.
    """

    __tablename__ = "bouncing_addresses"
    __table_args__ = (sa.CheckConstraint("email = lower(email)", name="email_lowercase"),)

    email: Mapped[str] = mapped_column(sa.String(ADDRESS_MAX_LENGTH), primary_key=True)
    reply: Mapped[str] = mapped_column(sa.String(1000), default="")
    bounces: Mapped[int] = mapped_column(default=1)
    first_bounced_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_bounced_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
