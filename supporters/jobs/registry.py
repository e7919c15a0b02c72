"""What the workers of an app can run: a handler per job kind and the periodic jobs.

Each feature fills the registry from a function that ``create_app`` calls (a hook), never as a
side effect of importing a module, so ``jobs`` knows no feature and every app built (tests
build many) has exactly the handlers it was given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask

#: Runs one job with its payload, inside the job's own transaction: it flushes, never commits
#: (the worker commits its work together with the job's "done"). A job may run more than once
#: (a worker can stop after the work and before the commit), so a handler must be idempotent.
Handler = Callable[[dict[str, Any]], None]

#: Told of a job's failed attempt in the transaction that stores the failure (the handler's own
#: work is rolled back by then): the payload, the error, and whether the job is now dead. So a
#: feature keeps the error on its own row (a webhook event's) as the job's is kept. It flushes,
#: never commits.
FailureHandler = Callable[[dict[str, Any], str, bool], None]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EXTENSION = "supporters.jobs"


@dataclasses.dataclass(frozen=True)
class Periodic:
    """A job queued once per period: ``every`` hour, day, … counted from the Unix epoch in UTC,
    so an hourly job's periods start on the hour and a daily job's at midnight UTC."""

    name: str
    every: dt.timedelta
    kind: str
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def period_at(self, now: dt.datetime) -> dt.datetime:
        """The start of the period ``now`` falls in."""
        return now - (now - _EPOCH) % self.every


@dataclasses.dataclass
class Registry:
    """One app's job handlers by kind, and its periodic jobs by name."""

    handlers: dict[str, Handler] = dataclasses.field(default_factory=dict)
    on_failure: dict[str, FailureHandler] = dataclasses.field(default_factory=dict)
    periodic: dict[str, Periodic] = dataclasses.field(default_factory=dict)


def registry(app: Flask) -> Registry:
    """The app's registry (made on first use, so features may register in any order)."""
    found = app.extensions.get(_EXTENSION)
    if found is None:
        found = app.extensions[_EXTENSION] = Registry()
    assert isinstance(found, Registry)
    return found


def register_handler(
    app: Flask, kind: str, handler: Handler, *, on_failure: FailureHandler | None = None
) -> None:
    """Let this app's workers run jobs of ``kind`` with ``handler``, and tell ``on_failure`` of
    each failed attempt.

    :raises ValueError: another handler is registered for that kind already.
    """
    if not kind or len(kind) > 64:
        raise ValueError(f"a job kind is 1 to 64 characters, not {kind!r}")
    handlers = registry(app).handlers
    if handlers.setdefault(kind, handler) != handler:
        raise ValueError(f"jobs of kind {kind!r} already have a handler")
    if on_failure is not None:
        registry(app).on_failure[kind] = on_failure


def register_periodic(
    app: Flask,
    name: str,
    *,
    every: dt.timedelta,
    kind: str,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Queue a job of ``kind`` once per period of ``every`` (at most once across all workers).

    :raises ValueError: the name or period is unusable, or the name is taken by another schedule.
    """
    if not name or len(name) > 64:
        raise ValueError(f"a periodic job's name is 1 to 64 characters, not {name!r}")
    if every <= dt.timedelta(0):
        raise ValueError(f"the period of {name!r} must be positive")
    periodic = Periodic(name, every, kind, dict(payload or {}))
    if registry(app).periodic.setdefault(name, periodic) != periodic:
        raise ValueError(f"a periodic job named {name!r} is registered already")
