"""The public API, version 1: read-only JSON of what the support page and the polls show.

Answers are the same for every visitor and name no member. A browser may read them from the
allowed sites only (CORS); servers (the newsroom's CMS) read them from anywhere. Every answer
is cacheable (see :mod:`supporters.public.answers`). ``/api/v1/openapi.json`` describes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response, request

from supporters import web
from supporters.billing import figures as billing_figures
from supporters.kept import kept
from supporters.public import answers, figures, openapi, origins
from supporters.public.views.blueprint import bp, served_alike

PREFIX = "/api/v1"


def _json(name: str, read: Callable[[], dict[str, Any]]) -> Response:
    def make() -> answers.Answer:
        shown = read()
        return answers.Answer(
            etag=answers.etag_for(f"api.{name}", shown),
            body=json.dumps(shown, sort_keys=True, separators=(",", ":")).encode(),
            mimetype="application/json",
        )

    return answers.serve(f"api.{name}", make)


@bp.after_request
def _cross_origin(response: Response) -> Response:
    """CORS for the allowed sites alone; a shared cache keeps one answer per ``Origin``."""
    if not request.path.startswith(PREFIX + "/"):
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin", "")
    if origin and origin.lower() in kept(("origins",), origins.allowed_origins):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "ETag"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, HEAD"
            response.headers["Access-Control-Allow-Headers"] = "If-None-Match"
            response.headers["Access-Control-Max-Age"] = "86400"
    return response


@bp.get(PREFIX + "/tiers")
@served_alike
def list_tiers() -> Response:
    """The tiers offered, with their monthly and yearly prices in minor units."""
    return _json(
        "tiers",
        lambda: {"tiers": figures.tiers(), "support_url": web.external_url("billing.support")},
    )


@bp.get(PREFIX + "/goals")
@served_alike
def list_goals() -> Response:
    """Active funding goals with their progress."""
    return _json(
        "goals",
        lambda: {
            "goals": figures.goals(billing_figures.totals()),
            "support_url": web.external_url("billing.support"),
        },
    )


@bp.get(PREFIX + "/patrons")
@served_alike
def count_patrons() -> Response:
    """The number of patrons, as the staff overview counts them."""
    return _json("patrons", lambda: figures.patrons(billing_figures.totals()))


@bp.get(PREFIX + "/polls")
@served_alike
def list_polls() -> Response:
    """Open and closed polls with their options, turnout and (where shown) results."""
    return _json("polls", lambda: {"polls": figures.polls(billing_figures.totals())})


@bp.get(PREFIX + "/stories")
@served_alike
def list_stories() -> Response:
    """Topics patrons asked for that became articles ("you asked, we reported")."""
    return _json("stories", lambda: {"stories": figures.stories()})


@bp.get(PREFIX + "/openapi.json")
@served_alike
def describe_api() -> Response:
    """This API's OpenAPI 3.1 description."""
    return _json("openapi", lambda: openapi.document(web.base_url() + PREFIX))
