"""Answers a cache may keep: the same for everyone, with a strong ETag made from the figures.

The ETag is a hash of what the answer shows (the figures, and for an embed the sites that may
frame it), of its language, and of the code and templates that draw it: it changes when a
payment or a ballot changes a figure, and not otherwise. A request whose ``If-None-Match``
names it is answered ``304 Not Modified`` without drawing anything.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Response, current_app, make_response, request
from flask_babel import get_locale

#: Seconds a browser or a CDN may keep an answer, then keep serving it while it asks again.
MAX_AGE = 30
STALE_WHILE_REVALIDATE = 300
STALE_IF_ERROR = 86400
CACHE_CONTROL = (
    f"public, max-age={MAX_AGE}, stale-while-revalidate={STALE_WHILE_REVALIDATE}, "
    f"stale-if-error={STALE_IF_ERROR}"
)


@functools.cache
def _code_fingerprint(template_folder: str) -> str:
    """The public package's code and templates, hashed once per worker: a new release that
    draws the same figures differently gets new ETags."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    files = sorted(package.glob("*.py")) + sorted((Path(template_folder) / "public").glob("*"))
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


def cacheable(name: str, shown: Any, draw: Callable[[], Any]) -> Response:
    """``draw()`` as a cacheable answer, or 304 when the client holds the same already."""
    etag = etag_for(name, shown)
    # If-None-Match compares weakly: a proxy that compresses may have weakened our tag.
    if request.if_none_match.contains_weak(etag):
        response = Response(status=304)
    else:
        response = make_response(draw())
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
