"""The public blueprint, and what its answers to everyone share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint

from supporters import web

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("public", __name__)


def served_alike(view: F) -> F:
    """The view answers every visitor alike: no session, no cookie, no member read."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        web.serve_everyone_alike()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
