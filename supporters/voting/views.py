"""Polls patrons vote in, and the topics they asked for that were covered."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template

from supporters.extensions import db
from supporters.voting.models import Poll, PollState

bp = Blueprint("voting", __name__, url_prefix="/polls")


@bp.get("/")
def list_polls() -> str:
    """Open and past polls; drafts stay with the staff."""
    polls = db.session.scalars(
        sa.select(Poll).where(Poll.state != PollState.DRAFT).order_by(Poll.opens_at.desc())
    ).all()
    return render_template("voting/list_polls.html", polls=polls)
