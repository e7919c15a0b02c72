"""Voting fixtures: a clock the tests move by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from supporters.db import utcnow
from supporters.voting import clock as voting_clock


class Clock:
    """The voting clock, frozen at a moment the test chooses."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> dt.datetime:
        self.at += dt.timedelta(**delta)
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock(utcnow().replace(microsecond=0))
    monkeypatch.setattr(voting_clock, "now", frozen)
    return frozen
