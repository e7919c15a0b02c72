"""Email: an outbox in the app's own database, delivered by the background workers.

A feature queues a message with :func:`queue` inside the unit of work that causes it (a payment
recorded, a sign-in asked for): a change that rolls back sends nothing, and one that commits is
handed to the SMTP server by a worker within seconds, retried with backoff while the server is
away (:mod:`.outbox`). Messages are rendered from ``templates/emails/`` in their reader's
language (:mod:`.compose`); the SMTP conversation, or in development without a server the
console, is :mod:`.transport`. Each feature owns its messages and decides when to send them
(``members/emails.py``, ``billing/emails.py``, ...).

This package is of the core layer: it imports no feature.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask

from supporters import jobs
from supporters.mail.models import BouncingAddress, MessageState, OutboxMessage
from supporters.mail.outbox import (
    DELIVER,
    Delivery,
    RecentMessage,
    bouncing_addresses,
    deliver,
    delivery_of,
    exists,
    forget_bounce,
    is_bouncing,
    is_silenced,
    prune,
    queue,
    recent_messages,
    silenced,
)
from supporters.mail.transport import MailError, PermanentRefusal, TemporaryFailure

__all__ = [
    "BouncingAddress",
    "Delivery",
    "MailError",
    "MessageState",
    "OutboxMessage",
    "PermanentRefusal",
    "RecentMessage",
    "TemporaryFailure",
    "bouncing_addresses",
    "delivery_of",
    "exists",
    "forget_bounce",
    "init_app",
    "is_bouncing",
    "is_silenced",
    "queue",
    "recent_messages",
    "silenced",
]


def init_app(app: Flask) -> None:
    """Let this app's workers deliver messages, and prune the old ones daily."""
    jobs.register_handler(app, DELIVER, deliver)
    jobs.register_handler(app, "mail.prune", prune)
    jobs.register_periodic(app, "mail.prune", every=dt.timedelta(days=1), kind="mail.prune")
