"""Fixtures of the jobs tests: an app whose workers poll often, a clock the test moves, and a
handler that records what it ran."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.models import Job

# An idle worker looks for due jobs this often (seconds): tests wait on it, never for long.
POLL_SECONDS = 0.02


class FakeClock:
    """The time as workers see it, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class Runs:
    """A job handler that records each payload it runs, and any two runs of one job at once."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.overlaps: list[dict[str, Any]] = []
        self._running: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, payload: dict[str, Any]) -> None:
        with self._lock:
            if payload in self._running:
                self.overlaps.append(payload)
            self._running.append(payload)
            self.payloads.append(payload)
        try:
            self.work(payload)
        finally:
            with self._lock:
                self._running.remove(payload)

    def work(self, payload: dict[str, Any]) -> None:
        """What the job does beyond being recorded (nothing, unless a test says otherwise)."""


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    application = make_app(JOBS_POLL_SECONDS=POLL_SECONDS)
    with application.app_context():
        yield application


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runs() -> Runs:
    return Runs()


def stored_jobs() -> list[Job]:
    """The jobs of the tests' kinds (not the app's own periodic jobs) as stored now, in order."""
    db.session.expire_all()
    return list(
        db.session.scalars(sa.select(Job).where(Job.kind.startswith("test.")).order_by(Job.id))
    )
