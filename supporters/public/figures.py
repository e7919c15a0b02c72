"""What the embeds and the API show, as plain JSON-ready values, the same for every visitor.

Figures come from the staff report tables (patrons and recurring revenue, one read of the
rollups) and from counters (a poll's ``ballot_count``), never from counting members,
subscriptions or ballots per request. Results of a poll that shows them are SQL aggregates
over its ballots (see :mod:`supporters.voting.results`); a closed poll's are final, so each
worker keeps them once computed. Nothing here names a member.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from supporters import web
from supporters.billing import figures as billing_figures
from supporters.billing.models import FundingGoal, GoalMeasure, Tier
from supporters.extensions import db
from supporters.staff.queries import headline
from supporters.voting import clock, results
from supporters.voting.models import Poll, PollOption, PollState, Topic, TopicStatus

Json = dict[str, Any]

#: Closed polls whose results (and turnout) each worker keeps: final once a poll is closed.
_KEPT_CLOSED_POLLS = 64


def _stamp(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _percent(part: int, whole: int) -> int:
    """Whole per cent, rounded down and at most 100 (as the support page's progress bars)."""
    return min(100, part * 100 // whole) if whole > 0 else 0


# -- money and patrons ---------------------------------------------------------------------------


def patrons(totals: billing_figures.Totals) -> Json:
    """The patron count, as the staff overview shows it."""
    return {"patrons": totals.patrons}


@functools.cache
def _goals_query() -> sa.Select[Any]:
    return (
        sa.select(FundingGoal)
        .where(FundingGoal.is_active)
        .order_by(FundingGoal.position, FundingGoal.id)
    )


def goals(totals: billing_figures.Totals) -> list[Json]:
    """Active funding goals and how far each has come, as on the support page."""
    shown = []
    for goal in db.session.scalars(_goals_query()):
        progress = billing_figures.goal_value(goal, totals)
        shown.append(
            {
                "id": goal.id,
                "title": goal.title,
                "description": goal.description,
                "measure": goal.measure.value,
                "target": goal.target,
                "currency": goal.currency if goal.measure is GoalMeasure.MONTHLY_REVENUE else None,
                "progress": progress,
                "percent": _percent(progress, goal.target),
            }
        )
    return shown


def tiers() -> list[Json]:
    """The tiers offered on the support page, with their prices in minor units."""
    rows = db.session.scalars(
        sa.select(Tier).where(Tier.is_active).order_by(Tier.position, Tier.monthly_amount)
    )
    return [
        {
            "slug": tier.slug,
            "name": tier.name,
            "description": tier.description,
            "currency": tier.currency,
            "monthly_amount": tier.monthly_amount,
            "yearly_amount": tier.yearly_amount,
        }
        for tier in rows
    ]


# -- polls ---------------------------------------------------------------------------------------


@functools.cache
def _published_polls_query() -> sa.Select[Any]:
    return (
        sa.select(Poll)
        .options(joinedload(Poll.options).joinedload(PollOption.topic))
        .where(Poll.state != PollState.DRAFT, Poll.opens_at.is_not(None))
        .order_by(Poll.opens_at.desc(), Poll.id.desc())
    )


def polls(totals: billing_figures.Totals) -> list[Json]:
    """Open and closed polls, newest first, with their options, turnout and visible results."""
    now = clock.now()
    shown = []
    for poll in db.session.scalars(_published_polls_query()).unique():
        state = clock.observed_state(poll, now)
        if state in (PollState.OPEN, PollState.CLOSED):
            shown.append(_poll(poll, state, now, totals))
    return shown


def open_poll(totals: billing_figures.Totals) -> Json | None:
    """The open poll (the one opened last, if several are), or None."""
    now = clock.now()
    for poll in db.session.scalars(
        _published_polls_query().where(
            Poll.state != PollState.CLOSED,
            Poll.opens_at <= now,
            sa.or_(Poll.closes_at.is_(None), Poll.closes_at > now),
        )
    ).unique():
        return _poll(poll, PollState.OPEN, now, totals)
    return None


def _poll(poll: Poll, state: PollState, now: dt.datetime, totals: billing_figures.Totals) -> Json:
    shown_results: list[Json] | None
    if state is PollState.CLOSED:
        eligible, shown_results = _closed_poll(poll, now)
    else:
        eligible = _eligible_now(poll, totals)
        # Results shown to everyone while open only when the poll says so; never as the
        # viewer's own ("after voting"): these answers are the same for every visitor.
        visible = results.may_see_results(poll, state, None, has_voted=False)
        shown_results = _results(poll, state, now) if visible else None
    return {
        "id": poll.id,
        "question": poll.question,
        "description": poll.description,
        "state": state.value,
        "opens_at": _stamp(poll.opens_at),
        "closes_at": _stamp(poll.ends_at),
        "max_choices": poll.max_choices,
        "ballots": poll.ballot_count,
        "eligible": eligible,
        "turnout_percent": _percent(poll.ballot_count, eligible) if eligible else None,
        "url": web.external_url("voting.show_poll", poll_id=poll.id),
        "options": [
            {"id": option.id, "title": option.topic.title}
            for option in sorted(poll.options, key=lambda o: (o.position, o.id))
        ],
        "results": shown_results,
    }


def _eligible_now(poll: Poll, totals: billing_figures.Totals) -> int:
    """Patrons who may vote now, as the staff overview counts them (from the rollups)."""
    if not poll.is_restricted_to_tiers:
        return totals.patrons
    turnout = headline.current_poll_turnout(headline.now_figures())
    if turnout is not None and turnout.poll.id == poll.id and turnout.eligible is not None:
        return turnout.eligible
    return totals.patrons


def _closed_poll(poll: Poll, now: dt.datetime) -> tuple[int | None, list[Json]]:
    """A closed poll's turnout denominator and results: final, so kept by each worker."""
    kept: OrderedDict[tuple[int, int], tuple[int | None, list[Json]]] = (
        current_app.extensions.setdefault("supporters.public.closed_polls", OrderedDict())
    )
    key = (poll.id, poll.ballot_count)
    if key not in kept:
        kept[key] = (results.eligible_at_closing(poll, now), _results(poll, PollState.CLOSED, now))
        while len(kept) > _KEPT_CLOSED_POLLS:
            kept.popitem(last=False)
    return kept[key]


def _results(poll: Poll, state: PollState, now: dt.datetime) -> list[Json]:
    outcome = results.compute_results(poll, state, now, with_turnout=False)
    return [
        {
            "option_id": result.option.id,
            "title": result.topic.title,
            "ballots": result.ballots,
            "votes": float(results.votes(result.weight)),
            "percent": float(results.percent(result.share)),
            "is_winner": result.is_winner,
        }
        for result in outcome.options
    ]


# -- "you asked, we reported" --------------------------------------------------------------------


def stories() -> list[Json]:
    """Published topics with their article links, newest first."""
    rows = db.session.scalars(
        sa.select(Topic)
        .where(Topic.status == TopicStatus.PUBLISHED)
        .order_by(Topic.published_on.desc().nulls_last(), Topic.id.desc())
    )
    return [
        {
            "id": topic.id,
            "title": topic.title,
            "pitch": topic.pitch,
            "article_url": topic.article_url,
            "published_on": topic.published_on.isoformat() if topic.published_on else None,
        }
        for topic in rows
    ]
