"""Embeds: small pages the newsroom's own sites frame (the funding goals, the open poll, the
patron count), and the scripts that let a host page size its frame to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Response, render_template, send_file

from supporters import web
from supporters.billing import figures as billing_figures
from supporters.public import answers, figures, origins
from supporters.public.views.blueprint import bp, served_alike

SCRIPTS = Path(__file__).resolve().parent.parent.parent / "static" / "js"

#: The embeds: endpoint, title for the admin page, height before the frame sizes itself.
EMBEDS = (
    ("public.embed_goals", "goals", 420),
    ("public.embed_poll", "poll", 420),
    ("public.embed_patrons", "patrons", 200),
)


def _embed(name: str, read: Callable[[], dict[str, Any]]) -> Response:
    """An embed page, framable by the allowed sites (and this one, for the admin's preview)."""

    def make() -> answers.Answer:
        shown = read()
        allowed = origins.allowed_origins()
        support_url = web.external_url("billing.support", _anchor="join")
        page = render_template(f"public/embed_{name}.html", support_url=support_url, **shown)
        return answers.Answer(
            etag=answers.etag_for(
                f"embed.{name}", {"shown": shown, "origins": allowed, "support_url": support_url}
            ),
            body=page.encode(),
            mimetype="text/html",
            frame_ancestors=tuple(allowed),
        )

    return answers.serve(f"embed.{name}", make)


@bp.get("/embed/goals")
@served_alike
def embed_goals() -> Response:
    """The funding goals with their progress, and a "support us" button."""
    return _embed("goals", lambda: {"goals": figures.goals(billing_figures.totals())})


@bp.get("/embed/poll")
@served_alike
def embed_poll() -> Response:
    """The open poll: its question, options and turnout, and a "vote" button."""
    return _embed("poll", lambda: {"poll": figures.open_poll(billing_figures.totals())})


@bp.get("/embed/patrons")
@served_alike
def embed_patrons() -> Response:
    """How many patrons support the newsroom, and a "support us" button."""
    return _embed("patrons", lambda: figures.patrons(billing_figures.totals()))


def _script(name: str) -> Response:
    response = send_file(SCRIPTS / name, mimetype="text/javascript", conditional=True, etag=True)
    response.headers["Cache-Control"] = answers.CACHE_CONTROL
    return response


@bp.get("/embed/frame.js")
@served_alike
def frame_script() -> Response:
    """Inside an embed: tells the host page the embed's height (optional, no cookies)."""
    return _script("embed-frame.js")


@bp.get("/embed/resize.js")
@served_alike
def resize_script() -> Response:
    """On the host page: sizes each embed's frame to the height it reports (optional)."""
    return _script("embed-resize.js")
