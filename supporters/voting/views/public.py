"""The public voting pages: polls patrons vote in, their proposals, and the topics they asked for
that were covered (the staff's pages are in manage_polls.py and manage_topics.py)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response as BaseResponse

from supporters.extensions import db, login_manager
from supporters.members.auth import current_member
from supporters.members.forms import EmptyForm
from supporters.voting import ballots, clock, eligibility, errors, polls, results, topics
from supporters.voting.forms import DeclineWinnerForm, ProposalForm, choices_of
from supporters.voting.models import Poll, PollState, ResultsVisibility, TopicStatus, Weighting
from supporters.voting.views.blueprint import (
    RenderResult,
    bp,
    current_viewer,
    error_status,
    load_poll,
    viewer_subscription,
)


@bp.get("/")
def list_polls() -> str:
    """Open and past polls; drafts stay with the staff."""
    visible = polls.visible_polls()
    return render_template(
        "voting/list_polls.html",
        open_polls=[(p, s) for p, s in visible if s is not PollState.CLOSED],
        closed_polls=[(p, s) for p, s in visible if s is PollState.CLOSED],
    )


def render_poll(
    poll: Poll,
    state: PollState,
    *,
    error: str | None = None,
    status: int = 200,
) -> RenderResult:
    """The poll page: its topics, the viewer's ballot or invitation, and results they may see."""
    viewer = current_viewer()
    at = clock.now()
    ballot = ballots.get_ballot(poll.id, viewer.id) if viewer else None
    standing = eligibility.check_eligibility(poll, viewer, at, viewer_subscription())
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
    poll, state = load_poll(poll_id)
    return render_poll(poll, state)


@bp.post("/<int:poll_id>/vote")
@login_required
def cast_vote(poll_id: int) -> RenderResult | BaseResponse:
    """Cast or change the signed-in patron's ballot."""
    poll, state = load_poll(poll_id)
    # The options are checkboxes the template writes itself; the service checks what was
    # chosen against the poll (CSRFProtect has checked the token before this view runs).
    try:
        chosen = [int(value) for value in request.form.getlist("option")]
    except ValueError:
        return render_poll(
            poll, state, error=_("That choice is not one of this poll's topics."), status=400
        )
    try:
        ballot = ballots.cast_vote(poll, current_member(), chosen, current_user.subscription)
    except errors.VotingError as exc:
        db.session.rollback()
        if isinstance(exc, errors.PollNotFound):
            abort(404)
        poll, state = load_poll(poll_id)
        return render_poll(poll, state, error=exc.message, status=error_status(exc))
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
    viewer = current_viewer()
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
