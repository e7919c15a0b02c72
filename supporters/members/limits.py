"""Sign-in rate limits: per IP on the forms, and per inbox on the messages actually sent.

A form post counts against its IP address whatever it holds. A message counts against the
address it goes to, as stored (normalised: every spelling of one inbox is one address), and
only once it is about to be sent: a form that fails validation or is refused counts nothing.
That count is kept twice: by the rate limiter (shared by the workers through Redis in
production) and in the database, which also holds when the limiter's storage was reset or each
worker counts alone. Messages to one address are counted one at a time, so requests arriving
together cannot pass the cap together.
"""

from __future__ import annotations

import datetime as dt
import math
import time

import sqlalchemy as sa
from flask import current_app
from flask_babel import ngettext
from limits import RateLimitItem, parse_many

from supporters.db import utcnow
from supporters.extensions import db, limiter
from supporters.members.models import SignInRequest


def _limit(setting: str) -> str:
    return str(current_app.config[setting])


ip_limit = limiter.shared_limit(
    lambda: _limit("SIGN_IN_LIMIT_PER_IP"), scope="sign-in-ip", methods=["POST"]
)
attempt_limit = limiter.shared_limit(
    lambda: _limit("SIGN_IN_ATTEMPT_LIMIT_PER_IP"), scope="sign-in-attempt", methods=["POST"]
)

# Namespace of the PostgreSQL advisory locks taken per address ("SI").
_ADDRESS_LOCKS = 0x5349


class TooManyMessages(Exception):
    """The address had as many sign-in messages as it may for now; nothing was sent.

    ``message`` is fit to show on the form; ``retry_after`` is in seconds.
    """

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        minutes = math.ceil(self.retry_after / 60)
        self.message = ngettext(
            "We have sent as many messages to this address as we can for now. Use the code in "
            "the latest one (check the spam folder too), or ask again in %(num)d minute.",
            "We have sent as many messages to this address as we can for now. Use the code in "
            "the latest one (check the spam folder too), or ask again in %(num)d minutes.",
            minutes,
        )
        super().__init__(self.message)


def message_limits() -> list[RateLimitItem]:
    """The per-address limits (``SIGN_IN_LIMIT_PER_EMAIL``), shortest window first."""
    return sorted(parse_many(_limit("SIGN_IN_LIMIT_PER_EMAIL")))


def longest_message_window() -> dt.timedelta:
    """How far back the per-address count looks: sign-in requests are kept at least this long."""
    return dt.timedelta(seconds=max(item.get_expiry() for item in message_limits()))


def lock_address(email: str) -> None:
    """Make other requests for this address wait until this transaction ends.

    PostgreSQL takes an advisory lock; SQLite has one writer, which the INSERT of the request
    that follows (before :func:`admit_message` counts) makes this transaction.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(_ADDRESS_LOCKS, sa.func.hashtext(email)))
        )


def admit_message(email: str) -> None:
    """Count the message to ``email`` whose sign-in request was just flushed, or refuse it.

    Call it after :func:`lock_address` and the flush, inside the transaction that stores the
    request; when it raises, the caller rolls back, so a refusal leaves nothing behind.

    :raises TooManyMessages: the database or the rate limiter holds enough messages already.
    """
    items = message_limits()
    now = utcnow()
    longest = max(item.get_expiry() for item in items)
    sent = sorted(
        db.session.scalars(
            sa.select(SignInRequest.created_at).where(
                SignInRequest.email == email,
                SignInRequest.created_at > now - dt.timedelta(seconds=longest),
            )
        )
    )
    for item in items:
        window = dt.timedelta(seconds=item.get_expiry())
        recent = [at for at in sent if at > now - window]
        if len(recent) > item.amount:
            # The new request is the latest: one more is allowed once enough earlier ones age out.
            frees_at = recent[len(recent) - 1 - item.amount] + window
            raise TooManyMessages((frees_at - now).total_seconds())
    if not limiter.enabled:
        return
    keys = [k for k in (current_app.config.get("RATELIMIT_KEY_PREFIX"), "email:" + email) if k]
    for item in items:
        if not limiter.limiter.hit(item, *keys, "sign-in-email"):
            stats = limiter.limiter.get_window_stats(item, *keys, "sign-in-email")
            raise TooManyMessages(stats.reset_time - time.time())
