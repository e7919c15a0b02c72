"""Members' background work: the daily prune of expired sign-in requests and ended sessions."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Flask

from supporters import jobs
from supporters.members import services

log = logging.getLogger(__name__)

PRUNE = "members.prune"


def init_app(app: Flask) -> None:
    """Prune once a day, on whichever worker gets there first."""
    jobs.register_handler(app, PRUNE, prune)
    jobs.register_periodic(app, PRUNE, every=dt.timedelta(days=1), kind=PRUNE)


def prune(payload: dict[str, Any]) -> None:
    """Delete expired sign-in requests and ended sessions (as ``members prune`` does)."""
    requests, sessions = services.prune()
    log.info("deleted %d expired sign-in request(s) and %d ended session(s)", requests, sessions)
