"""Polls patrons vote in, their proposals, the topics they asked for that were covered, and the
staff pages that run polls and review topics (under /polls/manage/).

Each view parses its form, calls a service, commits once and redirects (or renders with the
status code that fits: 400 bad input, 403 not allowed, 404 unknown or draft, 409 wrong state).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response as BaseResponse

from supporters import downloads, params, web
from supporters.billing.models import Subscription, Tier
from supporters.extensions import db, login_manager
from supporters.members.auth import (
    admin_required,
    current_actor,
    current_member,
    staff_required,
)
from supporters.members.forms import EmptyForm
from supporters.members.models import Member
from supporters.voting import ballots, clock, eligibility, errors, polls, results, topics
from supporters.voting.forms import (
    AddOptionForm,
    DeclineWinnerForm,
    MergeForm,
    PollForm,
    ProposalForm,
    PublishTopicForm,
    ReasonForm,
    TopicForm,
    choices_of,
    poll_form,
)
from supporters.voting.models import (
    Poll,
    PollState,
    ResultsVisibility,
    Topic,
    TopicStatus,
    Weighting,
)

bp = Blueprint("voting", __name__, url_prefix="/polls")

VOTES_PER_PAGE = 100

_STATUS: dict[type[errors.VotingError], int] = {
    errors.PollNotFound: 404,
    errors.NotEligible: 403,
    errors.InvalidBallot: 400,
    errors.InvalidPoll: 400,
    errors.PollNotOpen: 409,
    errors.TransitionRefused: 409,
}

RenderResult = str | tuple[str, int]


def _status(error: errors.VotingError) -> int:
    return _STATUS.get(type(error), 400)


@bp.app_template_filter("vote_weight")
def _format_weight(weight: Fraction | int) -> str:
    """Millionths of a vote as votes, two decimals, in the reader's locale."""
    return str(format_decimal(results.votes(weight), format="#,##0.00"))


@bp.app_template_filter("vote_percent")
def _format_percent(share: Fraction | None) -> str:
    return str(format_decimal(results.percent(share), format="#,##0.0")) + "%"


def _viewer() -> Member | None:
    return current_member() if current_user.is_authenticated else None


def _viewer_subscription() -> Subscription | None:
    return current_user.subscription if current_user.is_authenticated else None


def _load_poll(poll_id: int) -> tuple[Poll, PollState]:
    try:
        return polls.get_poll(poll_id, viewer=_viewer())
    except errors.PollNotFound:
        abort(404)


def _load_topic(topic_id: int) -> Topic:
    topic = topics.find_topic(topic_id)
    if topic is None:
        abort(404)
    return topic


# -- patrons and readers ------------------------------------------------------------------------


@bp.get("/")
def list_polls() -> str:
    """Open and past polls; drafts stay with the staff."""
    visible = polls.visible_polls()
    return render_template(
        "voting/list_polls.html",
        open_polls=[(p, s) for p, s in visible if s is not PollState.CLOSED],
        closed_polls=[(p, s) for p, s in visible if s is PollState.CLOSED],
    )


def _render_poll(
    poll: Poll,
    state: PollState,
    *,
    error: str | None = None,
    status: int = 200,
) -> RenderResult:
    viewer = _viewer()
    at = clock.now()
    ballot = ballots.get_ballot(poll.id, viewer.id) if viewer else None
    standing = eligibility.check_eligibility(poll, viewer, at, _viewer_subscription())
    show_results = results.may_see_results(poll, state, viewer, ballot is not None)
    outcome = results.compute_results(poll, state, at) if show_results else None
    decline_form = None
    if viewer is not None and viewer.is_admin and outcome is not None and outcome.winners:
        decline_form = DeclineWinnerForm()
        decline_form.topic_id.choices = choices_of(
            (r.option.topic_id, r.topic.title) for r in outcome.winners
        )
    return render_template(
        "voting/show_poll.html",
        poll=poll,
        state=state,
        ballot=ballot,
        chosen=ballots.chosen_option_ids(ballot),
        eligibility=standing,
        outcome=outcome,
        allowed_tiers=eligibility.allowed_tiers(poll),
        error=error,
        decline_form=decline_form,
        action_form=EmptyForm(),
        topic_status_label=topics.topic_status_label,
        PollState=PollState,
        Weighting=Weighting,
        ResultsVisibility=ResultsVisibility,
        TopicStatus=TopicStatus,
    ), status


@bp.get("/<int:poll_id>")
def show_poll(poll_id: int) -> RenderResult:
    """A poll: its topics, how votes count, the ballot or an invitation, and the results."""
    poll, state = _load_poll(poll_id)
    return _render_poll(poll, state)


@bp.post("/<int:poll_id>/vote")
@login_required
def cast_vote(poll_id: int) -> RenderResult | BaseResponse:
    """Cast or change the signed-in patron's ballot."""
    poll, state = _load_poll(poll_id)
    # The options are checkboxes the template writes itself; the service checks what was
    # chosen against the poll (CSRFProtect has checked the token before this view runs).
    try:
        chosen = [int(value) for value in request.form.getlist("option")]
    except ValueError:
        return _render_poll(
            poll, state, error=_("That choice is not one of this poll's topics."), status=400
        )
    try:
        ballot = ballots.cast_vote(poll, current_member(), chosen, current_user.subscription)
    except errors.VotingError as exc:
        db.session.rollback()
        if isinstance(exc, errors.PollNotFound):
            abort(404)
        poll, state = _load_poll(poll_id)
        return _render_poll(poll, state, error=exc.message, status=_status(exc))
    # Translated before the commit, which expires the member whose locale it reads.
    if ballot.is_new:
        message = _("Thank you: your vote is counted.")
    else:
        message = _("Your vote is changed. You can change it again until the poll closes.")
    target = url_for("voting.show_poll", poll_id=poll_id, _anchor="results")
    db.session.commit()
    flash(message, "success")
    return redirect(target, 303)


@bp.route("/propose", methods=["GET", "POST"])
def propose_topic() -> RenderResult | BaseResponse:
    """A patron proposes a topic for a future poll."""
    viewer = _viewer()
    form = ProposalForm()
    entitled = topics.may_propose(viewer)
    if request.method == "POST":
        if viewer is None:
            return login_manager.unauthorized()  # type: ignore[no-any-return]
        if not form.validate_on_submit():
            return render_template("voting/propose_topic.html", form=form, entitled=entitled), 400
        try:
            topics.propose_topic(
                viewer,
                title=form.title.data or "",
                pitch=form.pitch.data or "",
                link_url=form.link_url.data,
            )
        except errors.NotEligible as exc:
            db.session.rollback()
            return render_template(
                "voting/propose_topic.html", form=form, entitled=entitled, error=exc.message
            ), 403
        db.session.commit()
        flash(
            _("Thank you! We read every proposal and will tell you what becomes of it."), "success"
        )
        return redirect(url_for("voting.list_proposals"))
    return render_template("voting/propose_topic.html", form=form, entitled=entitled)


@bp.get("/proposals")
@login_required
def list_proposals() -> str:
    """What became of the signed-in patron's proposals."""
    proposed = topics.proposals_of(current_member().id)
    return render_template(
        "voting/list_proposals.html",
        topics=proposed,
        polls_by_topic=topics.published_polls_by_topic([topic.id for topic in proposed]),
        topic_status_label=topics.topic_status_label,
        TopicStatus=TopicStatus,
    )


@bp.get("/reported")
def list_reported() -> str:
    """ "You asked, we reported": the topics patrons chose that became articles."""
    return render_template(
        "voting/list_reported.html", coverage=results.covered_topics(clock.now())
    )


# -- staff: polls -------------------------------------------------------------------------------


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
    poll, state = _load_poll(poll_id)
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
        poll, _state = _load_poll(poll_id)
        return _render_edit(poll, form, error=exc.message, status=_status(exc))
    db.session.commit()
    flash(_("Poll saved.") if changed else _("Nothing to save: no change."), "success")
    return redirect(url_for("voting.edit_poll", poll_id=poll_id))


def _poll_action(poll_id: int, action: Any, success: str) -> RenderResult | BaseResponse:
    """Run a staff action on a poll from a button form; show refusals on the edit page."""
    poll, _state = _load_poll(poll_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        changed = action(poll)
    except errors.VotingError as exc:
        db.session.rollback()
        poll, _state = _load_poll(poll_id)
        return _render_edit(poll, error=exc.message, status=_status(exc))
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
    poll, _state = _load_poll(poll_id)
    form = AddOptionForm()
    form.topic_id.choices = choices_of((t.id, t.title) for t in topics.shortlisted_topics())
    if not form.validate_on_submit():
        return _render_edit(poll, add_form=form, status=400)
    topic = _load_topic(int(form.topic_id.data))
    try:
        polls.add_option(poll, topic, current_actor())
    except errors.VotingError as exc:
        db.session.rollback()
        poll, _state = _load_poll(poll_id)
        return _render_edit(poll, error=exc.message, status=_status(exc))
    db.session.commit()
    flash(_("Topic added to the poll."), "success")
    return redirect(url_for("voting.edit_poll", poll_id=poll_id))


@bp.post("/manage/<int:poll_id>/options/new")
@admin_required
def create_option(poll_id: int) -> RenderResult | BaseResponse:
    """Write a new topic and put it in a draft poll at once."""
    poll, _state = _load_poll(poll_id)
    form = TopicForm()
    if not form.validate_on_submit():
        return _render_edit(poll, topic_form=form, status=400)
    try:
        topic = topics.create_topic(form.title.data or "", form.pitch.data or "", current_actor())
        polls.add_option(poll, topic, current_actor())
    except errors.VotingError as exc:
        db.session.rollback()
        poll, _state = _load_poll(poll_id)
        return _render_edit(poll, error=exc.message, status=_status(exc))
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
    poll, state = _load_poll(poll_id)
    form = DeclineWinnerForm()
    outcome = results.compute_results(poll, state, clock.now(), with_turnout=False)
    form.topic_id.choices = choices_of((r.option.topic_id, r.topic.title) for r in outcome.winners)
    if not form.validate_on_submit():
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _render_poll(poll, state, error=message, status=400)
    topic = _load_topic(int(form.topic_id.data))
    try:
        polls.decline_winner(poll, topic, form.reason.data or "", current_actor())
    except errors.VotingError as exc:
        db.session.rollback()
        poll, state = _load_poll(poll_id)
        return _render_poll(poll, state, error=exc.message, status=_status(exc))
    db.session.commit()
    flash(_("The topic is declined; your reason is published on the poll."), "success")
    return redirect(url_for("voting.show_poll", poll_id=poll_id))


@bp.get("/manage/<int:poll_id>/votes")
@staff_required
def list_votes(poll_id: int) -> str:
    """Who voted for what, a page at a time (staff only)."""
    poll, state = _load_poll(poll_id)
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
    poll, state = _load_poll(poll_id)
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


# -- staff: topics ------------------------------------------------------------------------------


@bp.get("/manage/topics")
@admin_required
def manage_topics() -> str:
    """Proposals to review and every topic on its way to publication."""
    return _render_topics()


def _render_topics(form: TopicForm | None = None) -> str:
    return render_template(
        "voting/manage_topics.html",
        by_status=topics.topics_by_status(),
        form=form or TopicForm(),
        TopicStatus=TopicStatus,
        topic_status_label=topics.topic_status_label,
    )


@bp.post("/manage/topics")
@admin_required
def create_topic() -> RenderResult | BaseResponse:
    """Staff write a topic; it is shortlisted at once."""
    form = TopicForm()
    if not form.validate_on_submit():
        return _render_topics(form), 400
    topic = topics.create_topic(form.title.data or "", form.pitch.data or "", current_actor())
    db.session.commit()
    flash(_("Topic added to the shortlist."), "success")
    return redirect(url_for("voting.review_topic", topic_id=topic.id))


def _render_review(
    topic: Topic, *, error: str | None = None, status: int = 200, **forms: Any
) -> RenderResult:
    merge_form = forms.get("merge_form") or MergeForm()
    merge_form.into.choices = choices_of(
        (t.id, t.title) for t in topics.merge_targets(excluding=topic.id)
    )
    return render_template(
        "voting/review_topic.html",
        topic=topic,
        polls=topics.polls_offering(topic.id),
        actions=topics.allowed_actions(topic),
        action_form=EmptyForm(),
        reject_form=forms.get("reject_form") or ReasonForm(prefix="reject"),
        decline_form=forms.get("decline_form") or ReasonForm(prefix="decline"),
        merge_form=merge_form,
        publish_form=forms.get("publish_form")
        or PublishTopicForm(article_url=topic.article_url, published_on=topic.published_on),
        error=error,
        topic_status_label=topics.topic_status_label,
        TopicStatus=TopicStatus,
    ), status


@bp.get("/manage/topics/<int:topic_id>")
@admin_required
def review_topic(topic_id: int) -> RenderResult:
    """One topic: its story so far and what can happen to it next."""
    return _render_review(_load_topic(topic_id))


def _topic_action(
    topic_id: int, action: Any, success: str, form: Any = None, form_name: str = ""
) -> RenderResult | BaseResponse:
    topic = _load_topic(topic_id)
    form = form or EmptyForm()
    if not form.validate_on_submit():
        if isinstance(form, EmptyForm):
            abort(400)
        return _render_review(topic, status=400, **{form_name: form})
    try:
        changed = action(topic, form)
    except errors.VotingError as exc:
        db.session.rollback()
        return _render_review(
            _load_topic(topic_id), error=exc.message, status=_status(exc), **{form_name: form}
        )
    db.session.commit()
    if changed is False:
        flash(_("Nothing changed: it was already so."), "info")
    else:
        flash(success, "success")
    return redirect(url_for("voting.review_topic", topic_id=topic_id))


@bp.post("/manage/topics/<int:topic_id>/approve")
@admin_required
def approve_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Shortlist a proposal."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.approve_topic(topic, current_actor()),
        _("The proposal is shortlisted: it can now be put to a vote."),
    )


@bp.post("/manage/topics/<int:topic_id>/reject")
@admin_required
def reject_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Turn a proposal down, with a reason the proposer reads."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.reject_topic(topic, form.reason.data or "", current_actor()),
        _("The proposal is rejected; the patron will see your reason."),
        ReasonForm(prefix="reject"),
        "reject_form",
    )


@bp.post("/manage/topics/<int:topic_id>/merge")
@admin_required
def merge_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Fold a proposal into an existing topic."""
    form = MergeForm()
    form.into.choices = choices_of((t.id, t.title) for t in topics.merge_targets())
    return _topic_action(
        topic_id,
        lambda topic, form: topics.merge_topic(topic, _load_topic(form.into.data), current_actor()),
        _("The proposal is merged."),
        form,
        "merge_form",
    )


@bp.post("/manage/topics/<int:topic_id>/commission")
@admin_required
def commission_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Mark a topic as commissioned: a reporter is on it."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.commission_topic(topic, current_actor()),
        _("The topic is commissioned."),
    )


@bp.post("/manage/topics/<int:topic_id>/publish")
@admin_required
def publish_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Record the published article: its address and date."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.publish_topic(
            topic, form.article_url.data or "", form.published_on.data, current_actor()
        ),
        _("The topic is marked as published."),
        PublishTopicForm(),
        "publish_form",
    )


@bp.post("/manage/topics/<int:topic_id>/decline")
@admin_required
def decline_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Decide not to cover a topic, with a public reason."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.decline_topic(topic, form.reason.data or "", current_actor()),
        _("The topic is declined; your reason is public."),
        ReasonForm(prefix="decline"),
        "decline_form",
    )
