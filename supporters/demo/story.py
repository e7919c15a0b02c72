"""What every part of the demo shares: the moment the story is told from, its dice, its tallies."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

from supporters.billing.models import add_months


class Story:
    """The demo's clock and random generator, and what it has written so far."""

    def __init__(self, *, seed: int, now: dt.datetime, history_months: int) -> None:
        self.rng = random.Random(seed)
        self.now = now.replace(microsecond=0)
        self.history_months = history_months
        self.history_start = add_months(self.now, -history_months)
        self.counts: Counter[str] = Counter()

    def between(self, earliest: dt.datetime, latest: dt.datetime) -> dt.datetime:
        """A random whole second in [earliest, latest]."""
        span = int((latest - earliest).total_seconds())
        return earliest + dt.timedelta(seconds=self.rng.randint(0, max(span, 0)))
