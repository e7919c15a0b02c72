"""The staff's poll pages (under /polls/manage/): drafts, their settings and topics, publishing,
closing early, declining the winner, and who voted for what."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from supporters import downloads, params, web
from supporters.billing.models import Tier
from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor, staff_required
from supporters.members.forms import EmptyForm
from supporters.voting import clock, eligibility, errors, polls, results, topics
from supporters.voting.forms import (
    AddOptionForm,
    DeclineWinnerForm,
    PollForm,
    TopicForm,
    choices_of,
    poll_form,
)
from supporters.voting.models import Poll, PollState, ResultsVisibility, Weighting
from supporters.voting.views.blueprint import RenderResult, bp, error_status, load_poll, load_topic
from supporters.voting.views.public import render_poll

VOTES_PER_PAGE = 100


@bp.get("/manage/")
@staff_required
def manage_polls() -> str:
    """Every poll, drafts included, with its ballots; proposals waiting for review."""
    return render_template(
        "voting/manage_polls.html",
        rows=polls.every_poll(),
        counts=polls.ballot_counts(),
        waiting=topics.count_waiting(),
    )


def _settings(form: PollForm) -> polls.PollSettings:
    return polls.PollSettings(
        question=(form.question.data or "").strip(),
        description=(form.description.data or "").strip(),
        opens_at=form.aware(form.opens_at.data),
        closes_at=form.aware(form.closes_at.data),
        max_choices=int(form.max_choices.data or 1),
        results_visibility=ResultsVisibility(form.results_visibility.data),
        weighting=Weighting(form.weighting.data),
        weight_cap_percent=form.weight_cap_percent.data,
        is_restricted_to_tiers=bool(form.is_restricted_to_tiers.data),
        tier_rules=form.tier_rules(),
    )


@bp.route("/manage/new", methods=["GET", "POST"])
@admin_required
def create_poll() -> RenderResult | BaseResponse:
    """Start a draft poll."""
    tiers = polls.rule_tiers()
    form = poll_form(tiers)
    if form.validate_on_submit():
        try:
            poll = polls.create_poll(_settings(form), current_actor())
        except errors.VotingError as exc:
            db.session.rollback()
            form.closes_at.errors = [exc.message]
        else:
            db.session.commit()
            flash(_("Draft saved. Add the topics, then publish it."), "success")
            return redirect(url_for("voting.edit_poll", poll_id=poll.id))
    status = 400 if form.is_submitted() else 200
    return render_template("voting/edit_poll.html", form=form, poll=None, tiers=tiers), status


def _poll_form_for(poll: Poll, tiers: list[Tier]) -> PollForm:
    rules = eligibility.tier_rules(poll)
    data: dict[str, Any] = {
        "question": poll.question,
        "description": poll.description,
        "opens_at": poll.opens_at.replace(tzinfo=None) if poll.opens_at else None,
        "closes_at": poll.closes_at.replace(tzinfo=None) if poll.closes_at else None,
        "max_choices": poll.max_choices,
        "results_visibility": poll.results_visibility.value,
        "weighting": poll.weighting.value,
        "weight_cap_percent": poll.weight_cap_percent,
        "is_restricted_to_tiers": poll.is_restricted_to_tiers,
    }
    for tier in tiers:
        rule = rules.get(tier.id)
        data[f"tier_{tier.id}_may_vote"] = rule.may_vote if rule else True
        data[f"tier_{tier.id}_weight"] = rule.weight if rule else 1
    return poll_form(tiers, formdata=None, data=data)


def _render_edit(
    poll: Poll,
    form: PollForm | None = None,
    *,
    error: str | None = None,
    status: int = 200,
    add_form: AddOptionForm | None = None,
    topic_form: TopicForm | None = None,
) -> RenderResult:
    tiers = polls.rule_tiers()
    at = clock.now()
    state = clock.observed_state(poll, at)
    offered = {option.topic_id for option in poll.options}
    add_form = add_form or AddOptionForm()
    add_form.topic_id.choices = choices_of(
        (t.id, t.title) for t in topics.shortlisted_topics() if t.id not in offered
    )
    return render_template(
        "voting/edit_poll.html",
        poll=poll,
        state=state,
        form=form or _poll_form_for(poll, tiers),
        tiers=tiers,
        add_form=add_form,
        topic_form=topic_form or TopicForm(),
        action_form=EmptyForm(),
        problems=polls.publishing_problems(poll, at) if state is PollState.DRAFT else [],
        error=error,
        PollState=PollState,
    ), status


@bp.route("/manage/<int:poll_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_poll(poll_id: int) -> RenderResult | BaseResponse:
    """Change a draft's settings; a published poll's page offers closing it."""
    poll, state = load_poll(poll_id)
    if request.method == "GET":
        return _render_edit(poll)
    if state is not PollState.DRAFT:
        message = _("This poll is published: its settings and topics can no longer change.")
        return _render_edit(poll, error=message, status=409)
    form = poll_form(polls.rule_tiers())
    if not form.validate_on_submit():
        return _render_edit(poll, form, status=400)
    try:
        changed = polls.update_poll(poll, _settings(form), current_actor())
    except errors.VotingError as exc:
        db.session.rollback()
        poll, _state = load_poll(poll_id)
        return _render_edit(poll, form, error=exc.message, status=error_status(exc))
    db.session.commit()
    flash(_("Poll saved.") if changed else _("Nothing to save: no change."), "success")
    return redirect(url_for("voting.edit_poll", poll_id=poll_id))


def _poll_action(poll_id: int, action: Any, success: str) -> RenderResult | BaseResponse:
    """Run a staff action on a poll from a button form; show refusals on the edit page."""
    poll, _state = load_poll(poll_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        changed = action(poll)
    except errors.VotingError as exc:
        db.session.rollback()
        poll, _state = load_poll(poll_id)
        return _render_edit(poll, error=exc.message, status=error_status(exc))
    db.session.commit()
    if changed is False:
        flash(_("Nothing changed: it was already so."), "info")
    else:
        flash(success, "success")
    return redirect(url_for("voting.edit_poll", poll_id=poll_id))


@bp.post("/manage/<int:poll_id>/options")
@admin_required
def add_option(poll_id: int) -> RenderResult | BaseResponse:
    """Put a shortlisted topic in a draft poll."""
    poll, _state = load_poll(poll_id)
    form = AddOptionForm()
    form.topic_id.choices = choices_of((t.id, t.title) for t in topics.shortlisted_topics())
    if not form.validate_on_submit():
        return _render_edit(poll, add_form=form, status=400)
    topic = load_topic(int(form.topic_id.data))
    try:
        polls.add_option(poll, topic, current_actor())
    except errors.VotingError as exc:
        db.session.rollback()
        poll, _state = load_poll(poll_id)
        return _render_edit(poll, error=exc.message, status=error_status(exc))
    db.session.commit()
    flash(_("Topic added to the poll."), "success")
    return redirect(url_for("voting.edit_poll", poll_id=poll_id))


@bp.post("/manage/<int:poll_id>/options/new")
@admin_required
def create_option(poll_id: int) -> RenderResult | BaseResponse:
    """Write a new topic and put it in a draft poll at once."""
    poll, _state = load_poll(poll_id)
    form = TopicForm()
    if not form.validate_on_submit():
        return _render_edit(poll, topic_form=form, status=400)
    try:
        topic = topics.create_topic(form.title.data or "", form.pitch.data or "", current_actor())
        polls.add_option(poll, topic, current_actor())
    except errors.VotingError as exc:
        db.session.rollback()
        poll, _state = load_poll(poll_id)
        return _render_edit(poll, error=exc.message, status=error_status(exc))
    db.session.commit()
    flash(_("Topic written and added to the poll."), "success")
    return redirect(url_for("voting.edit_poll", poll_id=poll_id))


@bp.post("/manage/<int:poll_id>/options/<int:option_id>/remove")
@admin_required
def remove_option(poll_id: int, option_id: int) -> RenderResult | BaseResponse:
    """Take a topic out of a draft poll."""
    return _poll_action(
        poll_id,
        lambda poll: polls.remove_option(poll, option_id, current_actor()),
        _("Topic removed from the poll."),
    )


@bp.post("/manage/<int:poll_id>/publish")
@admin_required
def publish_poll(poll_id: int) -> RenderResult | BaseResponse:
    """Publish a draft: patrons see it, and it opens at its opening time."""
    return _poll_action(
        poll_id,
        lambda poll: polls.publish_poll(poll, current_actor()),
        _("The poll is published."),
    )


@bp.post("/manage/<int:poll_id>/close")
@admin_required
def close_poll(poll_id: int) -> RenderResult | BaseResponse:
    """Close a poll before its closing time."""
    return _poll_action(
        poll_id,
        lambda poll: polls.close_poll(poll, current_actor()),
        _("The poll is closed."),
    )


@bp.post("/manage/<int:poll_id>/decline")
@admin_required
def decline_winner(poll_id: int) -> RenderResult | BaseResponse:
    """Decline to cover a closed poll's winner, with a reason published on the poll."""
    poll, state = load_poll(poll_id)
    form = DeclineWinnerForm()
    outcome = results.compute_results(poll, state, clock.now(), with_turnout=False)
    form.topic_id.choices = choices_of((r.option.topic_id, r.topic.title) for r in outcome.winners)
    if not form.validate_on_submit():
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return render_poll(poll, state, error=message, status=400)
    topic = load_topic(int(form.topic_id.data))
    try:
        polls.decline_winner(poll, topic, form.reason.data or "", current_actor())
    except errors.VotingError as exc:
        db.session.rollback()
        poll, state = load_poll(poll_id)
        return render_poll(poll, state, error=exc.message, status=error_status(exc))
    db.session.commit()
    flash(_("The topic is declined; your reason is published on the poll."), "success")
    return redirect(url_for("voting.show_poll", poll_id=poll_id))


@bp.get("/manage/<int:poll_id>/votes")
@staff_required
def list_votes(poll_id: int) -> str:
    """Who voted for what, a page at a time (staff only)."""
    poll, state = load_poll(poll_id)
    after = params.int_arg("after", 0)
    outcome = results.compute_results(poll, state, clock.now(), with_turnout=False)
    rows = results.ballot_rows(poll, after_id=after, limit=VOTES_PER_PAGE, cap=outcome.limit)
    return render_template(
        "voting/list_votes.html",
        poll=poll,
        state=state,
        outcome=outcome,
        rows=rows,
        after=after,
        next_after=rows[-1].vote_id if len(rows) == VOTES_PER_PAGE else None,
    )


def _exact(weight: Fraction | int) -> Decimal:
    return results.votes(weight, places=6)


@bp.get("/manage/<int:poll_id>/votes.csv")
@staff_required
def export_votes(poll_id: int) -> BaseResponse:
    """Download who voted for what as CSV (staff only; the download is audited).

    Only from this site's own pages: a link followed from elsewhere (a chat, an email, another
    site) leads to the votes page, whose download link is audited like any other. So every
    download is in the audit log, and a GET from another site writes nothing.
    """
    poll, state = load_poll(poll_id)
    if not web.is_same_origin():
        flash(
            _("Download the votes from this page: downloads are recorded in the audit log."), "info"
        )
        return redirect(url_for("voting.list_votes", poll_id=poll_id), 303)
    outcome = results.compute_results(poll, state, clock.now(), with_turnout=False)
    polls.record_export(poll, current_actor(), outcome.ballots)
    db.session.commit()
    limit = outcome.limit

    def rows() -> Iterator[tuple[object, ...]]:
        # Runs while the response streams: read the poll again in this stretch of the request.
        streamed = polls.find_poll(poll_id)
        assert streamed is not None
        for row in results.iter_ballots(streamed, limit):
            yield (
                row.member_id,
                row.name,
                row.email,
                "; ".join(row.choices),
                _exact(row.weight),
                _exact(row.counted),
                row.created_at,
                row.updated_at,
            )

    return downloads.stream_csv(
        f"poll-{poll_id}-votes.csv",
        (
            "member_id",
            "name",
            "email",
            "choices",
            "weight",
            "counted_weight",
            "cast_at",
            "updated_at",
        ),
        rows(),
    )
