"""The voting clock: what time it is for every decision about a poll, and the state it gives one.

Every voting service reads the time from :func:`now` through this module (``clock.now()``), so
tests freeze it in one place, and a history (the demo's) is told through the same services at
the moments it happened (:func:`replaying`).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Iterator

from supporters.db import utcnow
from supporters.voting.models import Poll, PollState

_replayed_at: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar(
    "voting_clock_replayed_at", default=None
)


def now() -> dt.datetime:
    """The voting clock. Every decision about poll state reads it; tests replace it."""
    return _replayed_at.get() or utcnow()


@contextlib.contextmanager
def replaying(at: dt.datetime) -> Iterator[None]:
    """Inside, the voting services act as they would have at ``at``, a past moment: the
    topics, polls and their states they write are dated then, and checked against then.

    For telling a history through the services, in a command (the demo). The audit log still
    says when each entry was written.
    """
    token = _replayed_at.set(at)
    try:
        yield
    finally:
        _replayed_at.reset(token)


def observed_state(poll: Poll, at: dt.datetime) -> PollState:
    """The state the clock gives a published poll; drafts and closed polls keep theirs.

    Worked out on every read and never stored: no background job opens or closes polls, and a
    reader's request writes nothing (``Poll.closed_by`` is the same rule in SQL).
    """
    if poll.state in (PollState.DRAFT, PollState.CLOSED):
        return poll.state
    if poll.closes_at is not None and at >= poll.closes_at:
        return PollState.CLOSED
    if poll.opens_at is not None and at < poll.opens_at:
        return PollState.SCHEDULED
    return PollState.OPEN
