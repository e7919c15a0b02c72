"""Answers a cache may keep: the same for everyone, with a strong ETag made from the figures.

The ETag is a hash of what the answer shows (the figures, and for an embed the sites that may
frame it), of its language, and of the code and templates that draw it: it changes when a
payment or a ballot changes a figure, and not otherwise. A request whose ``If-None-Match``
names it is answered ``304 Not Modified``.

Each worker also keeps every answer it drew for ``PUBLIC_CACHE_SECONDS`` (``supporters.kept``)
and serves it again without asking the database; a payment or a ballot shows within that second
(which browsers and CDNs may add ``max-age`` to anyway).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Response, current_app, request
from flask_babel import get_locale

from supporters import web
from supporters.kept import kept

T = TypeVar("T")

#: Seconds a browser or a CDN may keep an answer, then keep serving it while it asks again.
MAX_AGE = 30
STALE_WHILE_REVALIDATE = 300
STALE_IF_ERROR = 86400
CACHE_CONTROL = (
    f"public, max-age={MAX_AGE}, stale-while-revalidate={STALE_WHILE_REVALIDATE}, "
    f"stale-if-error={STALE_IF_ERROR}"
)


@dataclasses.dataclass(frozen=True)
class Answer:
    """An answer as drawn once: its body, its ETag, and the sites that may frame it."""

    etag: str
    body: bytes
    mimetype: str
    frame_ancestors: tuple[str, ...] | None = None


@functools.cache
def _code_fingerprint(template_folder: str) -> str:
    """The public package's code and templates, hashed once per worker: a new release that
    draws the same figures differently gets new ETags."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    files = sorted(package.rglob("*.py")) + sorted((Path(template_folder) / "public").glob("*"))
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def etag_for(name: str, shown: Any) -> str:
    """A strong ETag for the answer ``name`` showing ``shown`` (JSON-ready values)."""
    payload = json.dumps(
        [_code_fingerprint(str(current_app.template_folder)), name, str(get_locale()), shown],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:40]


def serve(name: str, make: Callable[[], Answer]) -> Response:
    """The answer ``name`` (kept, or made now), or 304 when the client holds the same."""
    answer = kept((name, str(get_locale()), web.base_url()), make)
    if answer.frame_ancestors is not None:
        web.allow_framing(*answer.frame_ancestors)
    # If-None-Match compares weakly: a proxy that compresses may have weakened our tag.
    if request.if_none_match.contains_weak(answer.etag):
        response = Response(status=304)
    else:
        response = Response(answer.body, mimetype=answer.mimetype)
    response.set_etag(answer.etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
