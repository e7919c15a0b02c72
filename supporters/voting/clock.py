"""The voting clock: what time it is for every decision about a poll, and the state it gives one.

Every voting service reads the time from :func:`now` through this module (``clock.now()``), so
tests freeze it in one place.
"""

from __future__ import annotations

import datetime as dt

from supporters.db import utcnow
from supporters.voting.models import Poll, PollState


def now() -> dt.datetime:
    """The voting clock. Every decision about poll state reads it; tests replace it."""
    return utcnow()


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
